// SPDX-License-Identifier: MIT
/*
 * Zone placement and accounting.
 *
 * States (st->zlock): FREE (empty) -> OPEN (receiving pages; counted in
 * st->active, at most st->budget of them are opened from FREE) -> FULL
 * (finished, full, torn, or read-only) -> FREE again by slab_zone_reset(),
 * which only happens to zones with zero live bytes that no epoch writes to.
 * GC marks its victim ZS_GC while copying it.
 *
 * Placement for an epoch that needs a zone, in order of preference:
 *   1. an OPEN zone no epoch currently writes to (epochs follow each other:
 *      an idle or dropped epoch's partly filled zone is continued),
 *   2. a FREE zone, while the active budget allows (user writes leave the
 *      last free zone to GC),
 *   3. the OPEN zone with the fewest writers (pages stay single-epoch),
 *   4. finish the fullest OPEN zone to make an active slot for a FREE one.
 * Steps 1-3 take only zones of the asker's side: the root epoch writes to
 * zones it opened itself, data epochs to the others; only when neither
 * side has a zone left do they mix (5).
 * Page writes, finishes and resets of one zone are serialised by the zone's
 * wlock, so every write starts exactly at the write pointer. st->zlock is
 * never held across a device call (lock rules: slab_int.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "slab/slab_cache.h"
#include "slab/slab_int.h"

static uint64_t zcap(const struct slab_store *st)
{
	return st->geo.zone_capacity;
}

/*
 * Take zone Z out of the OPEN state (zlock held; the caller holds Z's wlock
 * or knows no write is in flight). Returns true when the device still has
 * to finish it: the zone then keeps its place in st->active (dev_open) until
 * zone_finish_dev() has finished it, outside zlock, so that no new zone is
 * opened on the device before an old one is closed.
 */
static bool zone_close_locked(struct slab_store *st, uint32_t z)
{
	struct slab_zone *zn = &st->zones[z];
	bool was_open = zn->state == ZS_OPEN;

	tslab_mutex_assert_held(&st->zlock);

	zn->state = ZS_FULL;
	if (was_open && zn->wp < zcap(st) && zn->wp > 0) {
		zn->dev_open = true;
		return true;
	}
	if (was_open)
		st->active--;
	return false;
}

/* Finish Z on the device (its wlock held, zlock not) and release its place
 * in st->active. */
static void zone_finish_dev(struct slab_store *st, uint32_t z)
{
	struct slab_zone *zn = &st->zones[z];

	tslab_mutex_assert_held(&zn->wlock);

	slab_dev_finish(st, z);
	pthread_mutex_lock(&st->zlock);
	if (zn->dev_open) {
		zn->dev_open = false;
		st->active--;
	}
	pthread_mutex_unlock(&st->zlock);
}

static int pick_free(struct slab_store *st, bool gc, bool root)
{
	uint32_t nfree = atomic_load(&st->zones_free);

	tslab_mutex_assert_held(&st->zlock);

	if (nfree == 0 || (!gc && nfree <= 1))
		return -1;
	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		struct slab_zone *zn = &st->zones[z];

		if (zn->state != ZS_FREE)
			continue;
		zn->state = ZS_OPEN;
		zn->root = root;
		zn->filled_seq = atomic_load(&st->page_seq);
		st->active++;
		atomic_fetch_sub(&st->zones_free, 1);
		if (!gc)
			atomic_fetch_add(&st->c_user_opens, 1);
		return (int)z;
	}
	return -1;
}

/*
 * Close the fullest OPEN zone that no write is using right now. Returns
 * false if there is none; otherwise, when the device must still finish it,
 * *FIN is that zone, with its wlock held, for zone_finish_dev().
 */
static bool make_active_room(struct slab_store *st, int *fin)
{
	int best = -1;

	tslab_mutex_assert_held(&st->zlock);

	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		struct slab_zone *zn = &st->zones[z];

		if (zn->state == ZS_OPEN && (best < 0 || zn->wp > st->zones[best].wp))
			best = (int)z;
	}
	if (best < 0 || pthread_mutex_trylock(&st->zones[best].wlock))
		return false;
	if (zone_close_locked(st, (uint32_t)best)) {
		*fin = best;
		return true;
	}
	pthread_mutex_unlock(&st->zones[best].wlock);
	return true;
}

/* An OPEN zone with room for LEN on the given side: one no epoch writes to
 * (ANY_WRITERS false), else the one with the fewest writers; -1 if none. */
static int pick_open(struct slab_store *st, uint32_t len, int side, bool any_writers)
{
	int best = -1;

	tslab_mutex_assert_held(&st->zlock);

	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		struct slab_zone *zn = &st->zones[z];

		if (zn->state != ZS_OPEN || zn->wp + len > zcap(st) ||
		    (side >= 0 && zn->root != (side == 1)))
			continue;
		if (!any_writers) {
			if (zn->writers == 0)
				return (int)z;
		} else if (best < 0 || zn->writers < st->zones[best].writers) {
			best = (int)z;
		}
	}
	return best;
}

/* A zone for a page of LEN bytes, or -1. When the only way is to close an
 * OPEN zone that the device must finish first, *FIN is set (see
 * make_active_room()) and -1 returned: the caller finishes it and asks again. */
static int pick_zone(struct slab_store *st, uint32_t len, bool gc, bool root, int *fin)
{
	int side = root ? 1 : 0, best = pick_open(st, len, side, false);

	tslab_mutex_assert_held(&st->zlock);

	if (best >= 0)
		return best;
	if (st->active < st->budget) {
		best = pick_free(st, gc, root);
		if (best >= 0)
			return best;
	}
	best = pick_open(st, len, side, true);
	if (best >= 0)
		return best;
	if (st->active >= st->budget && make_active_room(st, fin)) {
		if (*fin >= 0)
			return -1;
		best = pick_free(st, gc, root);
		if (best >= 0)
			return best;
	}
	return pick_open(st, len, -1, true);
}

void slab_zone_detach(struct slab_store *st, struct slab_epoch *e)
{
	pthread_mutex_lock(&st->zlock);
	if (e->cur_zone != SLAB_LOC_NONE) {
		st->zones[e->cur_zone].writers--;
		e->cur_zone = SLAB_LOC_NONE;
	}
	pthread_mutex_unlock(&st->zlock);
}

/* A sealed epoch lets go of its zone; when no other epoch writes there the
 * zone is finished (as make_active_room would later), so it stops counting
 * against the device's max active zones at once and the next epoch gets a
 * zone of its own instead of sharing this one. */
void slab_zone_release(struct slab_store *st, struct slab_epoch *e)
{
	uint32_t z;
	bool fin = false;

	pthread_mutex_lock(&st->zlock);
	z = e->cur_zone;
	if (z != SLAB_LOC_NONE) {
		struct slab_zone *zn = &st->zones[z];

		zn->writers--;
		e->cur_zone = SLAB_LOC_NONE;
		if (!zn->writers && zn->state == ZS_OPEN &&
		    !pthread_mutex_trylock(&zn->wlock)) {
			/* the device finish runs outside zlock (zone_finish_dev) */
			fin = zone_close_locked(st, z);
			if (!fin)
				pthread_mutex_unlock(&zn->wlock);
		}
	}
	pthread_mutex_unlock(&st->zlock);
	if (fin) {
		zone_finish_dev(st, z);
		pthread_mutex_unlock(&st->zones[z].wlock);
	}
}

/* The epoch's zone if it has room for LEN, else a newly chosen one. */
static int zone_for_epoch(struct slab_store *st, struct slab_epoch *e, uint32_t len,
                          bool gc, uint32_t *out)
{
	for (uint32_t tries = 0; tries <= st->nzones; tries++) {
		uint32_t z = e->cur_zone;
		int nz, fin = -1;

		pthread_mutex_lock(&st->zlock);
		if (z != SLAB_LOC_NONE) {
			struct slab_zone *zn = &st->zones[z];

			if (zn->state == ZS_OPEN && zn->wp + len <= zcap(st)) {
				pthread_mutex_unlock(&st->zlock);
				*out = z;
				return 0;
			}
			zn->writers--;
			e->cur_zone = SLAB_LOC_NONE;
		}
		nz = pick_zone(st, len, gc, e->eslot == 0, &fin);
		if (nz >= 0) {
			st->zones[nz].writers++;
			e->cur_zone = (uint32_t)nz;
			pthread_mutex_unlock(&st->zlock);
			atomic_fetch_add(&st->c_slow, 1);
			*out = (uint32_t)nz;
			return 0;
		}
		pthread_mutex_unlock(&st->zlock);
		if (fin < 0)
			break;
		zone_finish_dev(st, (uint32_t)fin);
		pthread_mutex_unlock(&st->zones[fin].wlock);
	}
	return -ENOSPC;
}

/*
 * A write to Z failed: learn the zone's real state from the device and stop
 * writing there. Called with Z's wlock held and zlock not held; returns
 * with the wlock still held.
 */
static void zone_failed(struct slab_store *st, uint32_t z)
{
	struct zns_zone rep;
	struct slab_zone *zn = &st->zones[z];
	bool reported = slab_dev_report(st, z, 1, &rep) == 1;
	bool finish;

	pthread_mutex_lock(&st->zlock);
	if (reported) {
		zn->wp = rep.wp;
		if (rep.cond == ZNS_COND_READ_ONLY)
			zn->ro = true;
		if (rep.cond == ZNS_COND_OFFLINE) {
			if (zn->state == ZS_OPEN)
				st->active--;
			zn->state = ZS_BAD;
			pthread_mutex_unlock(&st->zlock);
			return;
		}
	}
	if (zn->ro) {
		if (zn->state == ZS_OPEN)
			st->active--;
		zn->state = ZS_FULL;
		pthread_mutex_unlock(&st->zlock);
		return;
	}
	finish = zone_close_locked(st, z);
	pthread_mutex_unlock(&st->zlock);
	if (finish)
		zone_finish_dev(st, z);
}

int slab_zone_write_page(struct slab_store *st, struct slab_epoch *e, const uint8_t *buf,
                         uint32_t len, uint64_t live, bool gc, uint32_t *zone,
                         uint32_t *zoff, uint32_t *zgen)
{
	int errors = 0, ret;

	for (int tries = 0; tries < 64; tries++) {
		uint32_t z;

		ret = zone_for_epoch(st, e, len, gc, &z);
		if (ret)
			return ret;
		/* Zones are written independently: the epoch's last page in its
		 * previous zone must be durable before a page of it lands in
		 * another (page.c, ordering rule). */
		if (e->wzone != SLAB_LOC_NONE && z != e->wzone &&
		    atomic_load(&st->flush_done) <= e->wflush) {
			ret = slab_dev_flush(st);
			if (ret)
				return ret;
		}
		struct slab_zone *zn = &st->zones[z];

		pthread_mutex_lock(&zn->wlock);
		pthread_mutex_lock(&st->zlock);
		if (zn->state != ZS_OPEN || zn->wp + len > zcap(st)) {
			pthread_mutex_unlock(&st->zlock);
			pthread_mutex_unlock(&zn->wlock);
			continue;
		}
		uint64_t off = zn->wp;
		uint32_t gen = zn->gen;

		slab_zone_live_add(st, z, live);
		pthread_mutex_unlock(&st->zlock);
		ssize_t w = slab_dev_write(st, z, off, buf, len);

		if (w == (ssize_t)len) {
			bool finish = false;

			pthread_mutex_lock(&st->zlock);
			zn->wp = off + len;
			if (zcap(st) - zn->wp < SLAB_PAGE_SIZE)
				finish = zone_close_locked(st, z);
			pthread_mutex_unlock(&st->zlock);
			if (finish)
				zone_finish_dev(st, z);
			pthread_mutex_unlock(&zn->wlock);
			atomic_fetch_add(&st->c_dev, len);
			atomic_store(&st->pages_unflushed, true);
			e->wzone = z;
			e->wflush = atomic_load(&st->flush_started);
			*zone = z;
			*zoff = (uint32_t)off;
			*zgen = gen;
			return 0;
		}
		slab_zone_live_sub(st, z, live);
		zone_failed(st, z);
		pthread_mutex_unlock(&zn->wlock);
		if (++errors >= 3) {
			slab_fence(st);
			return w < 0 ? (int)w : -EIO;
		}
	}
	return -ENOSPC;
}

/*
 * Reset Z, which must be FULL with no live bytes. The zone is ZS_RESET while
 * the device resets it (its wlock held, zlock not), so that neither GC nor
 * placement takes it meanwhile.
 */
int slab_zone_reset(struct slab_store *st, uint32_t z)
{
	struct slab_zone *zn = &st->zones[z];
	int ret;

	pthread_mutex_lock(&zn->wlock);
	pthread_mutex_lock(&st->zlock);
	if (atomic_load(&zn->live) != 0 || zn->state != ZS_FULL || zn->ro) {
		pthread_mutex_unlock(&st->zlock);
		ret = -EBUSY;
		goto out_wlock;
	}
	zn->state = ZS_RESET;
	pthread_mutex_unlock(&st->zlock);

	ret = slab_dev_reset(st, z);

	pthread_mutex_lock(&st->zlock);
	zn->state = ZS_FULL;
	if (zn->dev_open) {
		/* reset or failed: either way no longer open on the device */
		zn->dev_open = false;
		st->active--;
	}
	if (ret) {
		pthread_mutex_unlock(&st->zlock);
		zone_failed(st, z);
		goto out_wlock;
	}
	zn->state = ZS_FREE;
	zn->root = false;
	zn->wp = 0;
	zn->gen++;
	zn->writers = 0;
	atomic_fetch_add(&st->zones_free, 1);
	atomic_fetch_add(&st->c_resets, 1);
	pthread_mutex_unlock(&st->zlock);
out_wlock:
	pthread_mutex_unlock(&zn->wlock);
	return ret;
}

/*
 * Read a record of a data zone through the read cache, 4 KiB block by
 * block. Returns 1 when the record reaches a block not wholly below the
 * write pointer (such a block may still grow: not cached, read directly).
 */
static int read_cached(struct slab_store *st, struct slab_loc loc, uint32_t len,
                       uint8_t *out)
{
	_Alignas(4096) uint8_t blk[SLAB_PAGE_SIZE];
	uint64_t pos = loc.off, end = pos + len;
	struct slab_zone *zn = &st->zones[loc.zone];

	pthread_mutex_lock(&st->zlock);
	uint32_t gen = zn->gen;
	uint64_t wp = zn->wp;

	pthread_mutex_unlock(&st->zlock);
	if ((end + SLAB_PAGE_SIZE - 1) / SLAB_PAGE_SIZE * SLAB_PAGE_SIZE > wp)
		return 1;
	while (pos < end) {
		uint32_t b = (uint32_t)(pos / SLAB_PAGE_SIZE),
		         boff = (uint32_t)(pos % SLAB_PAGE_SIZE);
		uint32_t n =
		    (uint32_t)(end - pos < SLAB_PAGE_SIZE - boff ? end - pos
		                                                 : SLAB_PAGE_SIZE - boff);

		if (!slab_rcache_get(st->rcache, loc.zone, gen, b, boff, n, out)) {
			ssize_t r =
			    slab_dev_read(st, loc.zone, (uint64_t)b * SLAB_PAGE_SIZE, blk,
			                  SLAB_PAGE_SIZE);

			if (r != (ssize_t)SLAB_PAGE_SIZE)
				return r < 0 ? (int)r : -EIO;
			slab_rcache_put(st->rcache, loc.zone, gen, b, blk);
			memcpy(out, blk + boff, n);
		}
		out += n;
		pos += n;
	}
	return 0;
}

int slab_read_rec(struct slab_store *st, struct slab_loc loc, uint32_t len, uint8_t *out)
{
	_Alignas(4096) uint8_t buf[3 * SLAB_PAGE_SIZE];
	uint32_t lba = st->geo.lba_size;
	uint64_t start = loc.off / lba * lba;
	uint64_t end = ((uint64_t)loc.off + len + lba - 1) / lba * lba;

	if (loc.zone >= st->nzones || len > SLAB_REC_MAX || end - start > sizeof(buf))
		return -EUCLEAN;
	if (st->rcache && loc.zone >= st->first_data && lba <= SLAB_PAGE_SIZE) {
		int ret = read_cached(st, loc, len, out);

		if (ret <= 0)
			return ret;
	}
	ssize_t r = slab_dev_read(st, loc.zone, start, buf, end - start);

	if (r != (ssize_t)(end - start))
		return r < 0 ? (int)r : -EIO;
	memcpy(out, buf + (loc.off - start), len);
	return 0;
}

/* ---- device access through the fence ------------------------------------ */

/* Every device call of the store passes here: never under st->zlock. */
static int io_enter(struct slab_store *st)
{
	tslab_mutex_assert_not_held(&st->zlock);
	pthread_rwlock_rdlock(&st->iolock);
	if (!st->fenced)
		return 0;
	pthread_rwlock_unlock(&st->iolock);
	return -EIO;
}

static void io_exit(struct slab_store *st)
{
	pthread_rwlock_unlock(&st->iolock);
}

ssize_t slab_dev_write(struct slab_store *st, uint32_t z, uint64_t off, const void *buf,
                       size_t len)
{
	ssize_t r = io_enter(st);

	if (r)
		return r;
	r = zns_zone_write(st->dev, z, off, buf, len);
	io_exit(st);
	return r;
}

ssize_t slab_dev_read(struct slab_store *st, uint32_t z, uint64_t off, void *buf,
                      size_t len)
{
	ssize_t r = io_enter(st);

	if (r)
		return r;
	r = zns_zone_read(st->dev, z, off, buf, len);
	io_exit(st);
	return r;
}

int slab_dev_reset(struct slab_store *st, uint32_t z)
{
	int r = io_enter(st);

	if (r)
		return r;
	r = zns_zone_reset(st->dev, z);
	io_exit(st);
	return r;
}

int slab_dev_finish(struct slab_store *st, uint32_t z)
{
	int r = io_enter(st);

	if (r)
		return r;
	r = zns_zone_finish(st->dev, z);
	io_exit(st);
	return r;
}

int slab_dev_flush(struct slab_store *st)
{
	int r = io_enter(st);

	if (r)
		return r;
	uint64_t n = atomic_fetch_add(&st->flush_started, 1) + 1;

	r = zns_flush(st->dev);
	io_exit(st);
	if (!r) {
		uint64_t d = atomic_load(&st->flush_done);

		while (d < n && !atomic_compare_exchange_weak(&st->flush_done, &d, n))
			;
	}
	return r;
}

int slab_dev_report(struct slab_store *st, uint32_t z, uint32_t n, struct zns_zone *out)
{
	int r = io_enter(st);

	if (r)
		return r;
	r = zns_zone_report(st->dev, z, n, out);
	io_exit(st);
	return r;
}

void slab_fence(struct slab_store *st)
{
	pthread_rwlock_wrlock(&st->iolock);
	st->fenced = true;
	st->ro = true;
	pthread_rwlock_unlock(&st->iolock);
}

/* ---- zone scanner --------------------------------------------------------- */

int slab_zscan_init(struct slab_zscan *zs, struct zns_dev *dev, uint32_t zone,
                    uint64_t end)
{
	memset(zs, 0, sizeof(*zs));
	zs->buf = zns_buf_alloc(SLAB_SCAN_BUF);
	if (!zs->buf)
		return -ENOMEM;
	zs->dev = dev;
	zs->zone = zone;
	zs->end = end;
	zs->lba = zns_geometry(dev)->lba_size;
	return 0;
}

void slab_zscan_fini(struct slab_zscan *zs)
{
	zns_buf_free(zs->buf);
	zs->buf = NULL;
}

int slab_zscan_next(struct slab_zscan *zs, const uint8_t **page,
                    struct slab_page_hdr *hdr, uint64_t *off)
{
	if (zs->pos >= zs->end)
		return 0;
	uint64_t need =
	    zs->end - zs->pos < SLAB_PAGE_SIZE ? zs->end - zs->pos : SLAB_PAGE_SIZE;

	if (need < SLAB_PAGE_HDR) {
		zs->torn = true;
		return 0;
	}
	if (zs->pos < zs->buf_off || zs->pos + need > zs->buf_off + zs->buf_len) {
		uint64_t n =
		    zs->end - zs->pos < SLAB_SCAN_BUF ? zs->end - zs->pos : SLAB_SCAN_BUF;
		ssize_t r = zs->st
		                ? slab_dev_read(zs->st, zs->zone, zs->pos, zs->buf, n)
		                : zns_zone_read(zs->dev, zs->zone, zs->pos, zs->buf, n);

		if (r != (ssize_t)n)
			return r < 0 ? (int)r : -EIO;
		zs->buf_off = zs->pos;
		zs->buf_len = n;
	}
	const uint8_t *p = zs->buf + (zs->pos - zs->buf_off);
	uint64_t plen;

	if (slab_page_hdr_decode(p, hdr)) {
		zs->torn = true;
		return 0;
	}
	plen = (hdr->used + zs->lba - 1) / zs->lba * zs->lba;
	if (plen > zs->end - zs->pos) {
		zs->torn = true;
		return 0;
	}
	*page = p;
	*off = zs->pos;
	zs->pos += plen;
	return 1;
}
