// SPDX-License-Identifier: MIT
/*
 * Garbage collection. Runs in the background thread (one pass at a time,
 * st->gclock) when the number of empty data zones falls to the reserve.
 * Victim: the FULL data zone with the lowest live bytes (ties: the oldest
 * filled). Each record of the victim is checked under its epoch's lock: it
 * is copied only if its slot (chunk table, epoch marker, drop entry) still
 * names this very location, into the open page of the SAME epoch, keeping
 * its sequence number. The victim's live bytes then reach zero and the next
 * sync resets it after making the copies durable.
 */
#include <errno.h>

#include "slab/slab_int.h"

/* Owner of the DROP record at (ZONE, OFF) in the drop table (root locked). */
static struct slab_drop *drop_owner(struct slab_store *st, const struct slab_rec *r,
                                    uint32_t zone, uint32_t off)
{
	for (uint32_t i = 0; i < st->ndrops; i++) {
		struct slab_drop *d = &st->drops[i];

		if (d->epoch == r->parent && d->loc.zone == zone && d->loc.off == off)
			return d;
	}
	return NULL;
}

/* Copy one record of the victim if it is still live. */
static int gc_record(struct slab_store *st, const struct slab_page_hdr *ph,
                     const uint8_t *rec, const struct slab_rec *r, uint32_t zone,
                     uint32_t off)
{
	bool is_drop = r->rtype == SLAB_REC_DROP;
	struct slab_epoch *e =
	    slab_epoch_lock(st, is_drop ? SLAB_EPOCH_ROOT : slab_handle_epoch(r->handle));
	struct slab_loc *owner = NULL, nloc;
	uint16_t *lenp = NULL;
	uint32_t nlen;
	int ret = 0;

	if (!e)
		return 0; /* dropped or closing epoch: dead */
	if (is_drop) {
		struct slab_drop *d = drop_owner(st, r, zone, off);

		if (d) {
			owner = &d->loc;
			lenp = &d->len;
		}
	} else {
		owner = slab_rec_owner(st, e, r, &lenp);
		if (owner && (owner->zone != zone || owner->off != off))
			owner = NULL;
	}
	if (!owner)
		goto out;
	ret = slab_page_append_raw(st, e, rec, r->len, ph->def_uid, ph->def_gid, true,
	                           &nloc, &nlen);
	if (ret)
		goto out;
	slab_loc_kill(st, e, *owner, r->len);
	*owner = nloc;
	if (lenp)
		*lenp = (uint16_t)nlen;
	atomic_fetch_add(&st->c_gc_moved, nlen);
out:
	pthread_mutex_unlock(&e->lock);
	return ret;
}

static int gc_zone(struct slab_store *st, uint32_t zone, uint64_t wp)
{
	struct slab_zscan zs;
	struct slab_page_hdr ph;
	const uint8_t *page;
	uint64_t poff;
	int ret = slab_zscan_init(&zs, st->dev, zone, wp);

	if (ret)
		return ret;
	zs.st = st;
	while ((ret = slab_zscan_next(&zs, &page, &ph, &poff)) > 0) {
		for (uint32_t off = SLAB_PAGE_HDR; off < ph.used;) {
			struct slab_rec r;

			if (slab_rec_decode(page + off, ph.used - off, ph.def_uid,
			                    ph.def_gid, &r)) {
				/* the zone keeps the live bytes GC could not move, so
				 * it is never reset; the damage is reported */
				slab_damage_report(st, zone, poff + off,
				                   "collecting garbage");
				break;
			}
			ret = gc_record(st, &ph, page + off, &r, zone,
			                (uint32_t)(poff + off));
			if (ret)
				goto out;
			off += r.len;
		}
	}
	if (ret == 0 && zs.torn) {
		bool damage = false;
		uint64_t next;

		if (slab_damage_classify(st->dev, zone, zs.pos, wp, true, &damage,
		                         &next) == 0 &&
		    damage)
			slab_damage_report(st, zone, zs.pos, "collecting garbage");
	}
out:
	slab_zscan_fini(&zs);
	return ret;
}

/* Lowest live ratio among FULL data zones that would yield space. */
static int pick_victim(struct slab_store *st, uint64_t *wp)
{
	int best = -1;
	uint64_t cap = st->geo.zone_capacity;

	pthread_mutex_lock(&st->zlock);
	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		struct slab_zone *zn = &st->zones[z];
		uint64_t live = atomic_load(&zn->live);

		if (zn->state != ZS_FULL || zn->ro || live + SLAB_PAGE_SIZE >= cap)
			continue;
		if (best < 0) {
			best = (int)z;
			continue;
		}
		uint64_t blive = atomic_load(&st->zones[best].live);

		if (live < blive ||
		    (live == blive && zn->filled_seq < st->zones[best].filled_seq))
			best = (int)z;
	}
	if (best >= 0) {
		st->zones[best].state = ZS_GC;
		*wp = st->zones[best].wp;
	}
	pthread_mutex_unlock(&st->zlock);
	return best;
}

/* Victim V (picked, ZS_GC) is an ordinary full zone again; COPIED: a GC run
 * went over it. */
static void victim_release(struct slab_store *st, uint32_t v, bool copied)
{
	pthread_mutex_lock(&st->zlock);
	st->zones[v].state = ZS_FULL;
	pthread_mutex_unlock(&st->zlock);
	if (copied)
		atomic_fetch_add(&st->c_gc_runs, 1);
}

uint64_t slab_dead_bytes(struct slab_store *st)
{
	uint64_t dead = 0;

	pthread_mutex_lock(&st->zlock);
	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		uint64_t live = atomic_load(&st->zones[z].live);

		if (st->zones[z].state == ZS_FULL && st->zones[z].wp > live)
			dead += st->zones[z].wp - live;
	}
	pthread_mutex_unlock(&st->zlock);
	return dead;
}

static void gc_give_up(struct slab_store *st)
{
	st->gc_dead_mark = slab_dead_bytes(st);
	st->gc_gave_up = true;
}

/*
 * Collect victims until more than the reserve of zones is empty. Gives up
 * (until enough new dead space appears, see gc_needed()) when no victim
 * exists, when less than a zone of dead space is left in full zones (live
 * data then really fills the device), or after GC_STALL_MAX victims in a
 * row that did not add an empty zone. A victim 60-80 % live costs most of
 * a destination zone, so on a device well below full several victims in a
 * row may gain nothing in zone counts while the dead space still shrinks;
 * giving up after four of them failed writes at 64 % live (test_gc_full,
 * seen under CPU load).
 */
#define GC_STALL_MAX 16u
/*
 * Empty zones plus the empty zones user writes took so far: what a GC pass
 * has won back shows in it even when a writer it unblocked takes a freed
 * zone at once, and GC's own destination zones count against it.
 */
static uint64_t gc_progress(struct slab_store *st)
{
	return atomic_load(&st->zones_free) + atomic_load(&st->c_user_opens);
}

int slab_gc_pass(struct slab_store *st)
{
	uint64_t best = gc_progress(st);
	uint32_t stalled = 0;
	int ret = 0;

	pthread_mutex_lock(&st->gclock);
	while (atomic_load(&st->zones_free) <= st->reserve && !st->ro) {
		uint64_t wp = 0;
		int v = pick_victim(st, &wp);

		if (v < 0) {
			gc_give_up(st);
			break;
		}
		ret = gc_zone(st, (uint32_t)v, wp);
		victim_release(st, (uint32_t)v, true);
		if (ret)
			break;
		ret = slab_sync_all(st, false);
		if (ret)
			break;
		uint64_t now = gc_progress(st);

		if (now > best) {
			best = now;
			stalled = 0;
		} else if (atomic_load(&st->zones[v].live) != 0 ||
		           slab_dead_bytes(st) < st->geo.zone_capacity ||
		           ++stalled >= GC_STALL_MAX) {
			gc_give_up(st);
			break;
		}
	}
	pthread_mutex_unlock(&st->gclock);
	return ret;
}

int slab_gc_run(struct slab_store *st, uint32_t max_zones, uint32_t *done)
{
	int ret = 0;

	*done = 0;
	pthread_mutex_lock(&st->gclock);
	while (*done < max_zones && !st->ro) {
		uint64_t wp = 0;
		int v = pick_victim(st, &wp);

		if (v < 0)
			break;
		/* Worth a copy only when an eighth of the zone is dead: the
		 * copies fill zones of their own, which must not qualify in
		 * turn (a run ends). */
		if (wp - atomic_load(&st->zones[v].live) < st->geo.zone_capacity / 8) {
			victim_release(st, (uint32_t)v, false);
			break;
		}
		ret = gc_zone(st, (uint32_t)v, wp);
		victim_release(st, (uint32_t)v, true);
		if (!ret)
			ret = slab_sync_all(st, false);
		if (ret)
			break;
		(*done)++;
	}
	pthread_mutex_unlock(&st->gclock);
	return st->ro && !ret ? -EROFS : ret;
}
