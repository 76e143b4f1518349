// SPDX-License-Identifier: MIT
/*
 * Damage: telling a torn tail from damage, the list of damaged places, the
 * superblock's error mark, and the fsck repair.
 *
 * Why "below the write pointer" decides: the device (or the emulator, which
 * writes the data before its zone table entry) advances a zone's write
 * pointer only over data it has written, and tslabfs writes whole pages. So
 * a scan that stops below the write pointer on bytes that are not zero, or
 * with a valid page further on, met bytes that were written as a page and
 * no longer read as one: damage. Not damage: a page whose intact header
 * says it extends past the write pointer (a partial page write cut by a
 * power loss), a checkpoint zone (its header block is not a page), and
 * zeroes up to the write pointer with nothing valid after them (a FULL zone
 * reports its capacity, not its data end; unwritten space reads as zeroes).
 * The last case means a zeroed final page of a finished zone cannot be told
 * from unwritten space at mount (docs/design.md, "Damage").
 *
 * Lock order: dmglock -> sblock -> iolock (ckpt.c's superblock writer takes
 * sblock -> iolock).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

#include "slab/slab_int.h"

uint64_t slab_slot_bound(const struct slab_store *st)
{
	uint64_t bytes = (uint64_t)(st->nzones - st->first_data) * st->geo.zone_capacity;
	uint64_t n = bytes / SLAB_REC_HDR + 1;

	return n < UINT32_MAX ? n : UINT32_MAX;
}

/* Is there a page header at P (AVAIL bytes readable below the end) whose
 * page fits below the end? */
static bool page_fits(const uint8_t *p, uint64_t avail, uint32_t lba)
{
	struct slab_page_hdr ph;

	if (avail < SLAB_PAGE_HDR || slab_page_hdr_decode(p, &ph))
		return false;
	return (ph.used + (uint64_t)lba - 1) / lba * lba <= avail;
}

int slab_damage_classify(struct zns_dev *dev, uint32_t z, uint64_t stop, uint64_t end,
                         bool full, bool *damage, uint64_t *next)
{
	uint32_t lba = zns_geometry(dev)->lba_size;
	uint8_t *b = zns_buf_alloc(SLAB_PAGE_SIZE);
	struct slab_page_hdr ph;
	int ret = 0;

	*damage = false;
	*next = end;
	if (!b)
		return -ENOMEM;
	if (stop >= end || stop % lba)
		goto out;
	uint64_t n = end - stop < SLAB_PAGE_SIZE ? end - stop : SLAB_PAGE_SIZE;
	ssize_t r = zns_zone_read(dev, z, stop, b, n);

	if (r != (ssize_t)n) {
		ret = r < 0 ? (int)r : -EIO;
		goto out;
	}
	if (stop == 0 && n >= SLAB_PAGE_HDR && slab_ckpt_zone_hdr_ok(b))
		goto out; /* a checkpoint zone */
	if (n >= SLAB_PAGE_HDR && !slab_page_hdr_decode(b, &ph) &&
	    (ph.used + (uint64_t)lba - 1) / lba * lba > end - stop)
		goto out; /* the last page was cut short: the end of the log */
	/* Zeroes with nothing valid after them are unwritten space (a FULL
	 * zone reports its capacity as write pointer, not its data end). */
	bool zero = true;

	for (uint64_t i = 0; i < n && zero; i++)
		zero = b[i] == 0;
	/* Only a FULL zone has unwritten space below the "write pointer". */
	*damage = !zero || !full;
	/* Where the scan may go on (fsck lists everything it can read). */
	/* Not in a FULL zone whose stop block is zero: its "write pointer" is
	 * its capacity, and reading the unwritten rest at every mount costs
	 * too much. */
	for (uint64_t off = stop + lba; !(full && zero) && off + SLAB_PAGE_HDR <= end;
	     off += lba) {
		uint64_t m = end - off < SLAB_PAGE_SIZE ? end - off : SLAB_PAGE_SIZE;

		r = zns_zone_read(dev, z, off, b, m);
		if (r != (ssize_t)m) {
			ret = r < 0 ? (int)r : -EIO;
			goto out;
		}
		if (page_fits(b, m, lba)) {
			*next = off;
			*damage = true; /* valid pages follow: not the end of the log */
			break;
		}
	}
out:
	zns_buf_free(b);
	return ret;
}

int slab_damage_add(struct slab_store *st, const struct slab_damage *d)
{
	int ret = 0;

	pthread_mutex_lock(&st->dmglock);
	st->damaged = true;
	if (st->ndmg == st->dmg_cap) {
		size_t cap = st->dmg_cap ? st->dmg_cap * 2 : 16;
		struct slab_damage *v = realloc(st->dmg, cap * sizeof(*v));

		if (!v) {
			ret = -ENOMEM;
			goto out;
		}
		st->dmg = v;
		st->dmg_cap = cap;
	}
	st->dmg[st->ndmg++] = *d;
out:
	pthread_mutex_unlock(&st->dmglock);
	if (d->epoch == SLAB_DAMAGE_NO_EPOCH)
		syslog(LOG_ERR,
		       "tslabfs: slab: damage: zone %u offset %llu (%s): a record "
		       "below the write pointer fails its checks",
		       d->zone, (unsigned long long)d->offset,
		       d->journal ? "journal, any epoch" : "epoch unknown");
	else
		syslog(LOG_ERR,
		       "tslabfs: slab: damage: zone %u offset %llu (epoch %u.%u): a "
		       "record below the write pointer fails its checks",
		       d->zone, (unsigned long long)d->offset, slab_eslot(d->epoch),
		       slab_egen(d->epoch));
	return ret;
}

size_t slab_damage_list(struct slab_store *st, struct slab_damage *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&st->dmglock);
	n = st->ndmg;
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = st->dmg[i];
	pthread_mutex_unlock(&st->dmglock);
	return n;
}

/* A superblock copy with the error mark set to ON (store mounted writable). */
static int mark_write(struct slab_store *st, bool on)
{
	int ret = 0;

	pthread_mutex_lock(&st->sblock);
	bool set = (st->sb.features_ro_compat & SLAB_FEAT_RO_COMPAT_ERROR) != 0;

	if (set != on) {
		if (on)
			st->sb.features_ro_compat |= SLAB_FEAT_RO_COMPAT_ERROR;
		else
			st->sb.features_ro_compat &= ~SLAB_FEAT_RO_COMPAT_ERROR;
		pthread_rwlock_rdlock(&st->iolock);
		st->sb.sequence++;
		ret = st->fenced ? -EIO : slab_sb_write_ckpt(st->dev, &st->sb, st->ck);
		pthread_rwlock_unlock(&st->iolock);
	}
	pthread_mutex_unlock(&st->sblock);
	return ret;
}

int slab_error_mark_set(struct slab_store *st)
{
	int ret;

	/* A read-only mount does not write; the next writable one marks. */
	if (st->mounted_ro)
		return 0;
	ret = mark_write(st, true);
	if (ret)
		syslog(LOG_ERR, "tslabfs: slab: cannot set the error mark: %s",
		       strerror(-ret));
	return ret;
}

void slab_damage_report(struct slab_store *st, uint32_t zone, uint64_t offset,
                        const char *what)
{
	struct slab_damage d = {.zone = zone,
	                        .offset = offset,
	                        .epoch = SLAB_DAMAGE_NO_EPOCH,
	                        .journal = zone < st->first_data};

	syslog(LOG_ERR, "tslabfs: slab: damage while %s", what);
	slab_damage_add(st, &d);
	slab_error_mark_set(st);
}

void slab_set_read_only(struct slab_store *st)
{
	pthread_rwlock_wrlock(&st->iolock);
	st->ro = true;
	pthread_rwlock_unlock(&st->iolock);
}

bool slab_is_read_only(struct slab_store *st)
{
	pthread_rwlock_rdlock(&st->iolock);
	bool ro = st->ro;

	pthread_rwlock_unlock(&st->iolock);
	return ro;
}

bool slab_has_error_mark(struct slab_store *st)
{
	pthread_mutex_lock(&st->sblock);
	bool on = (st->sb.features_ro_compat & SLAB_FEAT_RO_COMPAT_ERROR) != 0;

	pthread_mutex_unlock(&st->sblock);
	return on;
}

int slab_error_mark_clear(struct slab_store *st)
{
	pthread_mutex_lock(&st->dmglock);
	bool dmg = st->damaged;

	pthread_mutex_unlock(&st->dmglock);
	if (dmg)
		return -EUCLEAN;
	if (st->ro)
		return -EROFS;
	return mark_write(st, false);
}

/* Live bytes epoch EPOCH holds in zone Z (the epoch is not locked: fsck
 * runs alone on the store). */
static uint64_t epoch_zone_live(struct slab_store *st, uint32_t epoch, uint32_t z)
{
	uint32_t s = slab_eslot(epoch);
	struct slab_epoch *e = s < st->neslots ? st->etab[s] : NULL;

	if (!e || e->state != EPOCH_OPEN || e->gen != slab_egen(epoch))
		return 0;
	for (uint32_t i = 0; i < e->ez_n; i++)
		if (e->ez[i].zone == z && e->ez[i].zgen == st->zones[z].gen)
			return e->ez[i].live;
	return 0;
}

/* Can every damaged place be pinned to one non-root epoch, whose drop
 * leaves its zone without live bytes (so the zone can be reset)? */
static int repairable(struct slab_store *st, const struct slab_damage *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (d[i].journal || d[i].epoch == SLAB_DAMAGE_NO_EPOCH ||
		    slab_eslot(d[i].epoch) == 0 || st->zones[d[i].zone].root)
			return -EUCLEAN;
		uint64_t other = atomic_load(&st->zones[d[i].zone].live);

		for (size_t k = 0; k < n; k++) {
			bool dup = false;

			for (size_t j = 0; j < k; j++)
				dup |= d[j].zone == d[k].zone && d[j].epoch == d[k].epoch;
			if (d[k].zone == d[i].zone && !dup)
				other -= epoch_zone_live(st, d[k].epoch, d[i].zone);
		}
		if (other)
			return -EUCLEAN; /* other epochs live there too */
	}
	return 0;
}

int slab_damage_repairable(struct slab_store *st)
{
	int ret;

	pthread_mutex_lock(&st->dmglock);
	ret = repairable(st, st->dmg, st->ndmg);
	pthread_mutex_unlock(&st->dmglock);
	return ret;
}

int slab_damage_repair(struct slab_store *st)
{
	struct slab_damage *d;
	size_t n;
	int ret;

	if (!st->check || st->ro)
		return -EINVAL;
	pthread_mutex_lock(&st->dmglock);
	n = st->ndmg;
	d = n ? malloc(n * sizeof(*d)) : NULL;
	if (d)
		memcpy(d, st->dmg, n * sizeof(*d));
	pthread_mutex_unlock(&st->dmglock);
	if (n && !d)
		return -ENOMEM;
	ret = repairable(st, d, n);
	/* Drop first (durable), reset after: a crash in between leaves the
	 * drop record, which kills every older record of the epoch. */
	for (size_t i = 0; i < n && !ret; i++) {
		bool seen = false;

		for (size_t k = 0; k < i; k++)
			seen |= d[k].epoch == d[i].epoch;
		if (seen)
			continue;
		ret = slab_epoch_drop(st, d[i].epoch);
		if (ret == -ESTALE || ret == -ENOENT)
			ret = 0; /* nothing of it was readable: nothing to drop */
		if (!ret)
			syslog(LOG_WARNING, "tslabfs: slab: fsck dropped epoch %u.%u",
			       slab_eslot(d[i].epoch), slab_egen(d[i].epoch));
	}
	if (!ret)
		ret = slab_sync(st);
	for (size_t i = 0; i < n && !ret; i++) {
		struct slab_zone *zn = &st->zones[d[i].zone];

		if (zn->state == ZS_FREE)
			continue; /* the drop reset it */
		ret = slab_zone_reset(st, d[i].zone);
		if (ret == -EBUSY && atomic_load(&zn->live) == 0 && zn->state == ZS_FREE)
			ret = 0;
	}
	free(d);
	if (ret)
		return ret;
	pthread_mutex_lock(&st->dmglock);
	st->damaged = false;
	st->ndmg = 0;
	pthread_mutex_unlock(&st->dmglock);
	return mark_write(st, false);
}
