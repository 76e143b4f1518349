// SPDX-License-Identifier: MIT
/*
 * Superblock: a ping-pong pair of zones (0 and 1). Every new copy is appended
 * with a higher sequence number; when the current zone is full the other one
 * is reset and written. Readers take the newest valid copy across both zones.
 * slab_format() lays out: zones 0-1 superblock, 2..2+J-1 journal, the rest
 * data.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "slab/slab_int.h"

void slab_sb_encode(uint8_t *blk, const struct slab_sb_info *sb,
                    const struct slab_sb_geom *g)
{
	slab_sb_encode_ckpt(blk, sb, g, NULL);
}

static void ckpt_ref_encode(uint8_t *p, const struct slab_ckpt_ref *ref)
{
	tslab_put32(p + SLAB_CR_OFF(version), ref->version);
	tslab_put32(p + SLAB_CR_OFF(nzones), ref->nzones);
	tslab_put64(p + SLAB_CR_OFF(seq), ref->seq);
	tslab_put64(p + SLAB_CR_OFF(bytes), ref->bytes);
	tslab_put64(p + SLAB_CR_OFF(csum), ref->csum);
	for (uint32_t i = 0; i < ref->nzones && i < SLAB_CKPT_MAXZ; i++)
		tslab_put32(p + SLAB_CR_OFF(zones) + 4 * i, ref->zones[i]);
}

/* 0, or -EUCLEAN when the reference is malformed for geometry G or a byte
 * of the superblock block after its zone list is not zero. */
static int ckpt_ref_decode(const uint8_t *p, const struct slab_sb_info *sb,
                           const struct slab_sb_geom *g, struct slab_ckpt_ref *ref)
{
	ref->version = tslab_get32(p + SLAB_CR_OFF(version));
	ref->nzones = tslab_get32(p + SLAB_CR_OFF(nzones));
	ref->seq = tslab_get64(p + SLAB_CR_OFF(seq));
	ref->bytes = tslab_get64(p + SLAB_CR_OFF(bytes));
	ref->csum = tslab_get64(p + SLAB_CR_OFF(csum));
	if (ref->version != SLAB_CKPT_VERSION || ref->nzones == 0 ||
	    ref->nzones > SLAB_CKPT_MAXZ)
		return -EUCLEAN;
	for (uint32_t i = 0; i < ref->nzones; i++) {
		ref->zones[i] = tslab_get32(p + SLAB_CR_OFF(zones) + 4 * i);
		if (ref->zones[i] < sb->first_data_zone || ref->zones[i] >= g->nr_zones)
			return -EUCLEAN;
		for (uint32_t k = 0; k < i; k++)
			if (ref->zones[k] == ref->zones[i])
				return -EUCLEAN;
	}
	for (size_t i = SLAB_CKPT_REF_OFF + SLAB_CR_OFF(zones) + 4 * (size_t)ref->nzones;
	     i < SLAB_SB_BLOCK; i++)
		if (p[i - SLAB_CKPT_REF_OFF]) /* unlisted bytes are zero */
			return -EUCLEAN;
	return 0;
}

void slab_sb_encode_ckpt(uint8_t *blk, const struct slab_sb_info *sb,
                         const struct slab_sb_geom *g, const struct slab_ckpt_ref *ref)
{
	uint64_t compat = sb->features_compat & ~SLAB_FEAT_COMPAT_CKPT;

	memset(blk, 0, SLAB_SB_BLOCK);
	memcpy(blk + SLAB_SB_OFF(magic), SLAB_SB_MAGIC, 8);
	tslab_put32(blk + SLAB_SB_OFF(version), sb->version);
	tslab_put32(blk + SLAB_SB_OFF(block_size), SLAB_SB_BLOCK);
	if (ref) {
		compat |= SLAB_FEAT_COMPAT_CKPT;
		ckpt_ref_encode(blk + SLAB_CKPT_REF_OFF, ref);
	}
	tslab_put64(blk + SLAB_SB_OFF(features_compat), compat);
	tslab_put64(blk + SLAB_SB_OFF(features_incompat), sb->features_incompat);
	tslab_put64(blk + SLAB_SB_OFF(features_ro_compat), sb->features_ro_compat);
	memcpy(blk + SLAB_SB_OFF(uuid), sb->uuid, 16);
	memcpy(blk + SLAB_SB_OFF(label), sb->label, 31);
	tslab_put32(blk + SLAB_SB_OFF(lba_size), g->lba_size);
	tslab_put32(blk + SLAB_SB_OFF(nr_zones), g->nr_zones);
	tslab_put64(blk + SLAB_SB_OFF(zone_size), g->zone_size);
	tslab_put64(blk + SLAB_SB_OFF(zone_capacity), g->zone_capacity);
	tslab_put32(blk + SLAB_SB_OFF(sb_zone), sb->sb_zones[0]);
	tslab_put32(blk + SLAB_SB_OFF(sb_zone) + 4, sb->sb_zones[1]);
	tslab_put32(blk + SLAB_SB_OFF(journal_first), SLAB_JOURNAL_FIRST);
	tslab_put32(blk + SLAB_SB_OFF(journal_zones), sb->journal_zones);
	tslab_put32(blk + SLAB_SB_OFF(first_data_zone), sb->first_data_zone);
	tslab_put32(blk + SLAB_SB_OFF(reserve_zones), sb->reserve_zones);
	tslab_put64(blk + SLAB_SB_OFF(created_ns), sb->created_ns);
	tslab_put64(blk + SLAB_SB_OFF(sequence), sb->sequence);
	tslab_put64(blk + SLAB_SB_CSUM_OFF, slab_hash64(blk, SLAB_SB_BLOCK));
}

int slab_sb_decode(const uint8_t *blk, struct slab_sb_info *sb, struct slab_sb_geom *g)
{
	uint8_t tmp[SLAB_SB_BLOCK];

	if (memcmp(blk + SLAB_SB_OFF(magic), SLAB_SB_MAGIC, 8) != 0)
		return -ENODATA;
	memcpy(tmp, blk, SLAB_SB_BLOCK);
	memset(tmp + SLAB_SB_CSUM_OFF, 0, 8);
	if (tslab_get64(blk + SLAB_SB_CSUM_OFF) != slab_hash64(tmp, SLAB_SB_BLOCK))
		return -EUCLEAN;
	memset(sb, 0, sizeof(*sb));
	sb->version = tslab_get32(blk + SLAB_SB_OFF(version));
	sb->features_compat = tslab_get64(blk + SLAB_SB_OFF(features_compat));
	sb->features_incompat = tslab_get64(blk + SLAB_SB_OFF(features_incompat));
	sb->features_ro_compat = tslab_get64(blk + SLAB_SB_OFF(features_ro_compat));
	memcpy(sb->uuid, blk + SLAB_SB_OFF(uuid), 16);
	memcpy(sb->label, blk + SLAB_SB_OFF(label), 31);
	g->lba_size = tslab_get32(blk + SLAB_SB_OFF(lba_size));
	g->nr_zones = tslab_get32(blk + SLAB_SB_OFF(nr_zones));
	g->zone_size = tslab_get64(blk + SLAB_SB_OFF(zone_size));
	g->zone_capacity = tslab_get64(blk + SLAB_SB_OFF(zone_capacity));
	sb->sb_zones[0] = tslab_get32(blk + SLAB_SB_OFF(sb_zone));
	sb->sb_zones[1] = tslab_get32(blk + SLAB_SB_OFF(sb_zone) + 4);
	sb->journal_zones = tslab_get32(blk + SLAB_SB_OFF(journal_zones));
	sb->first_data_zone = tslab_get32(blk + SLAB_SB_OFF(first_data_zone));
	sb->reserve_zones = tslab_get32(blk + SLAB_SB_OFF(reserve_zones));
	sb->created_ns = tslab_get64(blk + SLAB_SB_OFF(created_ns));
	sb->sequence = tslab_get64(blk + SLAB_SB_OFF(sequence));
	if (sb->version > SLAB_SB_VERSION)
		return -EOPNOTSUPP;
	if (sb->features_incompat & ~SLAB_FEAT_INCOMPAT_KNOWN)
		return -EOPNOTSUPP;
	if (tslab_get32(blk + SLAB_SB_OFF(block_size)) != SLAB_SB_BLOCK ||
	    sb->version == 0 ||
	    tslab_get32(blk + SLAB_SB_OFF(journal_first)) != SLAB_JOURNAL_FIRST ||
	    sb->sb_zones[0] != 0 || sb->sb_zones[1] != 1 || sb->journal_zones == 0 ||
	    sb->journal_zones > 8 ||
	    sb->first_data_zone != SLAB_JOURNAL_FIRST + sb->journal_zones ||
	    sb->first_data_zone >= g->nr_zones)
		return -EUCLEAN;
	/* reserved bytes are zero: the label's last byte, and everything after
	 * the fixed fields when no checkpoint reference is carried */
	if (blk[SLAB_SB_OFF(label) + 31])
		return -EUCLEAN;
	for (uint32_t i = SLAB_CKPT_REF_OFF;
	     !(sb->features_compat & SLAB_FEAT_COMPAT_CKPT) && i < SLAB_SB_BLOCK; i++)
		if (blk[i])
			return -EUCLEAN;
	return 0;
}

/* Newest valid copy in one sb zone: walk back from the write pointer.
 * Returns 0 and fills *sb, or -ENODATA / -EUCLEAN / -EOPNOTSUPP / -EIO. */
static int sb_zone_newest(struct zns_dev *dev, uint32_t zone, uint8_t *blk,
                          struct slab_sb_info *sb, struct slab_sb_geom *g)
{
	struct zns_zone z;
	int ret = -ENODATA, r;

	if (zns_zone_report(dev, zone, 1, &z) != 1)
		return -EIO;
	if (z.cond == ZNS_COND_OFFLINE)
		return -ENODATA;
	for (uint64_t off = z.wp / SLAB_SB_BLOCK * SLAB_SB_BLOCK; off >= SLAB_SB_BLOCK;) {
		off -= SLAB_SB_BLOCK;
		if (zns_zone_read(dev, zone, off, blk, SLAB_SB_BLOCK) != SLAB_SB_BLOCK)
			return -EIO;
		r = slab_sb_decode(blk, sb, g);
		if (r == 0 || r == -EOPNOTSUPP)
			return r;
		if (r == -EUCLEAN)
			ret = -EUCLEAN;
	}
	return ret;
}

/* Which sb zone holds the newest copy (-1 if none) and its info. */
static int sb_newest(struct zns_dev *dev, struct slab_sb_info *out,
                     struct slab_sb_geom *g, int *zone_out, uint8_t *best_blk)
{
	uint8_t *blk = zns_buf_alloc(SLAB_SB_BLOCK);
	struct slab_sb_info s[2];
	struct slab_sb_geom gg[2];
	int r[2], best = -1;

	if (!blk)
		return -ENOMEM;
	for (int i = 0; i < 2; i++) {
		r[i] =
		    sb_zone_newest(dev, SLAB_SB_ZONE0 + (uint32_t)i, blk, &s[i], &gg[i]);
		if (r[i] == -EIO || r[i] == -EOPNOTSUPP) {
			zns_buf_free(blk);
			return r[i];
		}
		if (r[i] == 0 && (best < 0 || s[i].sequence > s[best].sequence)) {
			best = i;
			if (best_blk)
				memcpy(best_blk, blk, SLAB_SB_BLOCK);
		}
	}
	zns_buf_free(blk);
	*zone_out = best;
	if (best < 0)
		return (r[0] == -EUCLEAN || r[1] == -EUCLEAN) ? -EUCLEAN : -ENODATA;
	*out = s[best];
	*g = gg[best];
	return 0;
}

int slab_sb_read_ckpt(struct zns_dev *dev, struct slab_sb_info *out,
                      struct slab_ckpt_ref *ref, bool *has_ref)
{
	struct slab_sb_geom g;
	const struct zns_geometry *dg = zns_geometry(dev);
	uint8_t *blk = NULL;
	int zone, ret;

	if (!dev || !out)
		return -EINVAL;
	if (dg->nr_zones < 2)
		return -ENODATA;
	if (has_ref) {
		*has_ref = false;
		blk = malloc(SLAB_SB_BLOCK);
		if (!blk)
			return -ENOMEM;
	}
	ret = sb_newest(dev, out, &g, &zone, blk);
	if (!ret &&
	    (g.lba_size != dg->lba_size || g.nr_zones != dg->nr_zones ||
	     g.zone_size != dg->zone_size || g.zone_capacity != dg->zone_capacity))
		ret = -EUCLEAN;
	if (!ret && blk && (out->features_compat & SLAB_FEAT_COMPAT_CKPT))
		*has_ref = ckpt_ref_decode(blk + SLAB_CKPT_REF_OFF, out, &g, ref) == 0;
	free(blk);
	return ret;
}

int slab_sb_read(struct zns_dev *dev, struct slab_sb_info *out)
{
	return slab_sb_read_ckpt(dev, out, NULL, NULL);
}

int slab_sb_write(struct zns_dev *dev, const struct slab_sb_info *sb)
{
	return slab_sb_write_ckpt(dev, sb, NULL);
}

int slab_sb_write_ckpt(struct zns_dev *dev, const struct slab_sb_info *sb,
                       const struct slab_ckpt_ref *ref)
{
	const struct zns_geometry *dg = zns_geometry(dev);
	struct slab_sb_geom g = {dg->lba_size, dg->nr_zones, dg->zone_size,
	                         dg->zone_capacity};
	struct slab_sb_info cur;
	struct slab_sb_geom cg;
	struct zns_zone z;
	int zone = 0, ret;
	uint8_t *blk;

	ret = sb_newest(dev, &cur, &cg, &zone, NULL);
	if (ret && ret != -ENODATA && ret != -EUCLEAN)
		return ret;
	if (zone < 0)
		zone = 0;
	if (zns_zone_report(dev, (uint32_t)zone, 1, &z) != 1)
		return -EIO;
	if (z.wp + SLAB_SB_BLOCK > z.capacity || z.cond == ZNS_COND_FULL) {
		/* Current zone full: continue in the other one, reset first. */
		zone ^= 1;
		ret = zns_zone_reset(dev, (uint32_t)zone);
		if (ret)
			return ret;
		z.wp = 0;
	}
	blk = zns_buf_alloc(SLAB_SB_BLOCK);
	if (!blk)
		return -ENOMEM;
	slab_sb_encode_ckpt(blk, sb, &g, ref);
	ssize_t w = zns_zone_write(dev, (uint32_t)zone, z.wp, blk, SLAB_SB_BLOCK);

	zns_buf_free(blk);
	if (w != SLAB_SB_BLOCK)
		return w < 0 ? (int)w : -EIO;
	ret = zns_flush(dev);
	if (ret)
		return ret;
	/* Free the open-zone resource; the zone stays active (CLOSED). */
	if (z.wp + SLAB_SB_BLOCK < z.capacity)
		zns_zone_close(dev, (uint32_t)zone);
	return 0;
}

static uint32_t default_reserve(uint32_t ndata)
{
	uint32_t r = ndata / 100;

	return r < SLAB_RESERVE_DEF ? SLAB_RESERVE_DEF : (r > 64 ? 64 : r);
}

static int format_reset_all(struct zns_dev *dev, uint32_t nr)
{
	struct zns_zone z[64];

	for (uint32_t first = 0; first < nr; first += 64) {
		uint32_t n = nr - first < 64 ? nr - first : 64;
		int got = zns_zone_report(dev, first, n, z);

		if (got < 0)
			return got;
		for (int i = 0; i < got; i++) {
			if (z[i].cond == ZNS_COND_EMPTY ||
			    z[i].cond == ZNS_COND_OFFLINE ||
			    z[i].cond == ZNS_COND_READ_ONLY)
				continue;
			int ret = zns_zone_reset(dev, first + (uint32_t)i);

			if (ret)
				return ret;
		}
	}
	return 0;
}

int slab_format_fits(uint32_t nr_zones, const struct slab_format_opts *o)
{
	uint32_t first_data = SLAB_JOURNAL_FIRST + SLAB_JOURNAL_DEF;

	if (nr_zones < first_data + 4)
		return -ENOSPC;
	uint32_t ndata = nr_zones - first_data;
	uint32_t reserve =
	    o && o->reserve_zones ? o->reserve_zones : default_reserve(ndata);

	return reserve + 2 > ndata ? -EINVAL : 0;
}

int slab_format(struct zns_dev *dev, const struct slab_format_opts *o)
{
	const struct zns_geometry *g = zns_geometry(dev);
	struct slab_sb_info sb = {0};
	struct timespec ts;
	int ret;

	if (!dev)
		return -EINVAL;
	if (g->zone_capacity < 4 * SLAB_PAGE_SIZE || g->zone_capacity % SLAB_PAGE_SIZE ||
	    SLAB_PAGE_SIZE % g->lba_size)
		return -EINVAL;
	uint32_t first_data = SLAB_JOURNAL_FIRST + SLAB_JOURNAL_DEF;

	ret = slab_format_fits(g->nr_zones, o);
	if (ret)
		return ret;
	uint32_t ndata = g->nr_zones - first_data;
	uint32_t reserve =
	    o && o->reserve_zones ? o->reserve_zones : default_reserve(ndata);

	sb.version = SLAB_SB_VERSION;
	sb.features_incompat = SLAB_FEAT_INCOMPAT_FDATA;
	if (o && o->uuid)
		memcpy(sb.uuid, o->uuid, 16);
	else if (getrandom(sb.uuid, 16, 0) != 16)
		return -EIO;
	if (o && o->label) {
		size_t n = strnlen(o->label, 32);

		if (n > 31)
			return -EINVAL;
		memcpy(sb.label, o->label, n);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	sb.created_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	sb.sequence = 1;
	sb.sb_zones[0] = 0;
	sb.sb_zones[1] = 1;
	sb.journal_zones = SLAB_JOURNAL_DEF;
	sb.first_data_zone = first_data;
	sb.reserve_zones = reserve;
	ret = format_reset_all(dev, g->nr_zones);
	if (ret)
		return ret;
	return slab_sb_write(dev, &sb);
}
