// SPDX-License-Identifier: MIT
/*
 * File data as extents: FDATA chunk records and the per-object chunk map.
 *
 * An extents object's bytes live in FDATA records, one per chunk index
 * (file offset / SLAB_FDATA_MAX), each an independent version: the newest
 * record of an index wins, a record of length 0 is a hole. The head (an OBJ
 * record with SLAB_RF_EXTENTS) carries attributes and the data base: FDATA
 * records with a lower sequence number belong to an older data generation
 * (a previous object in the slot, or data before a truncation to zero) and
 * are dead. docs/format.md, "FDATA".
 *
 * The chunk map is a sparse radix tree (4 levels of 256) of struct
 * slab_fent, allocated from the epoch's arena, so a drop frees it wholesale.
 * Every function here runs with the epoch lock held, except the public
 * entry points, which take it; device reads happen without it (the entry is
 * checked again afterwards and the read retried when the record moved).
 *
 * Invariants
 *   - a map entry names the newest FDATA record of its index that this
 *     mount wrote or recovery chose; its bytes are counted live in its zone
 *     (or it sits in the open page, counted when the page is written);
 *   - every entry's record counts in the space accounting (space.c,
 *     slab_fent_cost) from its append until it is replaced or its map
 *     destroyed: e->cost and st->committed move with every change here;
 *   - fm->hint: no entry holding data has an index >= hint;
 *   - fm->legacy: the chunk table of a chunked head that this object had
 *     before it became an extents object; those chunks stay live until the
 *     first extents head is appended (a crash before it finds the old
 *     version complete).
 */
#include <errno.h>
#include <stdlib.h>

#include "slab/slab_int.h"

#define FM_FAN 256u

struct fm_node {
	void *p[FM_FAN];
};

struct fm_leaf {
	struct slab_fent ent[FM_FAN];
};

_Static_assert(sizeof(struct fm_node) <= SLAB_ARENA_MAX, "radix node fits the arena");
_Static_assert(sizeof(struct fm_leaf) <= SLAB_ARENA_MAX, "radix leaf fits the arena");
_Static_assert(SLAB_REC_HDR + SLAB_FDATA_MAX == SLAB_REC_MAX,
               "a full FDATA record fills one slab page");
/* indices are 32 bits: 4 levels of 8 bits */
_Static_assert(SLAB_FDATA_NIDX == (1ull << 32), "chunk index width");

struct slab_fmap *slab_fmap_new(struct slab_epoch *e)
{
	struct slab_fmap *fm = slab_arena_alloc(e->arena, sizeof(*fm));

	if (fm)
		memset(fm, 0, sizeof(*fm));
	return fm;
}

static void *node_new(struct slab_epoch *e)
{
	struct fm_node *n = slab_arena_alloc(e->arena, sizeof(*n));

	if (n)
		memset(n, 0, sizeof(*n));
	return n;
}

static void *leaf_new(struct slab_epoch *e)
{
	struct fm_leaf *l = slab_arena_alloc(e->arena, sizeof(*l));

	if (!l)
		return NULL;
	for (uint32_t i = 0; i < FM_FAN; i++)
		l->ent[i] = (struct slab_fent){{SLAB_LOC_NONE, 0}, 0};
	return l;
}

struct slab_fent *slab_fmap_get(struct slab_epoch *e, struct slab_fmap *fm, uint64_t idx,
                                bool create)
{
	void **slot = &fm->root;

	if (idx >= SLAB_FDATA_NIDX)
		return NULL;
	for (int shift = 24; shift >= 8; shift -= 8) {
		if (!*slot) {
			if (!create)
				return NULL;
			*slot = node_new(e);
			if (!*slot)
				return NULL;
		}
		slot = &((struct fm_node *)*slot)->p[(idx >> shift) & 0xffu];
	}
	if (!*slot) {
		if (!create)
			return NULL;
		*slot = leaf_new(e);
		if (!*slot)
			return NULL;
	}
	return &((struct fm_leaf *)*slot)->ent[idx & 0xffu];
}

static bool fent_used(const struct slab_fent *fe, bool data)
{
	return fe->loc.zone != SLAB_LOC_NONE && (!data || fe->len > SLAB_REC_HDR);
}

struct slab_fent *slab_fmap_next(struct slab_fmap *fm, uint64_t *idx, bool data)
{
	struct fm_node *root = fm->root;
	uint64_t i = *idx;

	while (i < SLAB_FDATA_NIDX && root) {
		if (data && i >= fm->hint)
			return NULL;
		struct fm_node *n1 = root->p[i >> 24];

		if (!n1) {
			i = ((i >> 24) + 1) << 24;
			continue;
		}
		struct fm_node *n2 = n1->p[(i >> 16) & 0xffu];

		if (!n2) {
			i = ((i >> 16) + 1) << 16;
			continue;
		}
		struct fm_leaf *l = n2->p[(i >> 8) & 0xffu];

		if (!l) {
			i = ((i >> 8) + 1) << 8;
			continue;
		}
		for (uint32_t k = (uint32_t)(i & 0xffu); k < FM_FAN; k++, i++)
			if (fent_used(&l->ent[k], data)) {
				*idx = i;
				return &l->ent[k];
			}
	}
	return NULL;
}

void slab_fmap_drop_legacy(struct slab_store *st, struct slab_epoch *e,
                           struct slab_fmap *fm)
{
	if (fm->legacy)
		slab_chunks_kill(st, e, fm->legacy);
	fm->legacy = NULL;
}

/* Kill and free the subtree at N (LEVEL 0..2 nodes, 3 leaf). */
static void fm_free(struct slab_store *st, struct slab_epoch *e, void *n, int level)
{
	if (level == 3) {
		struct fm_leaf *l = n;

		for (uint32_t i = 0; i < FM_FAN; i++)
			if (l->ent[i].loc.zone != SLAB_LOC_NONE) {
				slab_cost_add(st, e,
				              -(int64_t)slab_fent_cost(&l->ent[i]));
				slab_loc_kill(st, e, l->ent[i].loc, l->ent[i].len);
			}
		slab_arena_free(e->arena, l, sizeof(*l));
		return;
	}
	struct fm_node *nd = n;

	for (uint32_t i = 0; i < FM_FAN; i++)
		if (nd->p[i])
			fm_free(st, e, nd->p[i], level + 1);
	slab_arena_free(e->arena, nd, sizeof(*nd));
}

void slab_fmap_destroy(struct slab_store *st, struct slab_epoch *e, struct slab_fmap *fm)
{
	if (fm->root)
		fm_free(st, e, fm->root, 0);
	slab_fmap_drop_legacy(st, e, fm);
	slab_arena_free(e->arena, fm, sizeof(*fm));
}

/* ---- public entry points --------------------------------------------------- */

int slab_fdata_begin(struct slab_store *st, slab_handle_t h)
{
	struct slab_epoch *e;
	struct slab_slot *s;
	struct slab_fmap *fm;
	int ret;

	if (!st)
		return -EINVAL;
	ret = slab_obj_lookup_rw(st, h, &e, &s);
	if (ret)
		return ret;
	if (!slab_slot_fmap(s)) {
		fm = slab_fmap_new(e);
		if (!fm) {
			ret = -ENOMEM;
		} else {
			fm->legacy = s->chunks;
			fm->dbase = atomic_fetch_add(&st->seq, 1);
			slab_slot_set_fmap(s, fm);
		}
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

int slab_fdata_is(struct slab_store *st, slab_handle_t h)
{
	struct slab_epoch *e;
	struct slab_slot *s = st ? slab_obj_lookup(st, h, &e) : NULL;
	int ret;

	if (!s)
		return -ESTALE;
	ret = slab_slot_fmap(s) != NULL;
	pthread_mutex_unlock(&e->lock);
	return ret;
}

/* FE now names the record at LOC (LEN bytes): the one it named dies, and
 * the epoch's cost moves by the difference (epoch lock held). */
static void fent_replace(struct slab_store *st, struct slab_epoch *e,
                         struct slab_fent *fe, struct slab_loc loc, uint16_t len)
{
	int64_t old = (int64_t)slab_fent_cost(fe);

	if (fe->loc.zone != SLAB_LOC_NONE)
		slab_loc_kill(st, e, fe->loc, fe->len);
	fe->loc = loc;
	fe->len = len;
	slab_cost_add(st, e, (int64_t)slab_fent_cost(fe) - old);
}

/* Append chunk IDX (LEN bytes, 0: hole) with the epoch locked. */
static int fdata_append(struct slab_store *st, struct slab_epoch *e, struct slab_fmap *fm,
                        slab_handle_t h, uint64_t idx, const void *data, uint32_t len)
{
	struct slab_fent *fe = slab_fmap_get(e, fm, idx, true);
	struct slab_rec r = {.rtype = SLAB_REC_FDATA,
	                     .handle = h,
	                     .parent = idx,
	                     .data = data,
	                     .data_len = (uint16_t)len};
	struct slab_loc loc;
	int ret;

	if (!fe)
		return -ENOMEM;
	r.seq = atomic_fetch_add(&st->seq, 1);
	ret = slab_page_append(st, e, &r, false, &loc);
	if (ret)
		return ret;
	/* Read only now: a page written during the append may have moved it. */
	fent_replace(st, e, fe, loc, (uint16_t)r.len);
	if (len && idx >= fm->hint)
		fm->hint = idx + 1;
	atomic_fetch_add(&st->c_user, r.len);
	return 0;
}

int slab_fdata_write(struct slab_store *st, slab_handle_t h, uint64_t idx,
                     const void *data, uint32_t len)
{
	struct slab_epoch *e;
	struct slab_slot *s;
	struct slab_fmap *fm;
	int ret;

	if (!st || len > SLAB_FDATA_MAX || (len && !data))
		return -EINVAL;
	if (idx >= SLAB_FDATA_NIDX)
		return -EFBIG;
	if (st->ro)
		return -EROFS;
	slab_throttle(st);
	ret = slab_obj_lookup_rw(st, h, &e, &s);
	if (ret)
		return ret;
	fm = slab_slot_fmap(s);
	ret = fm ? fdata_append(st, e, fm, h, idx, data, len) : -EINVAL;
	pthread_mutex_unlock(&e->lock);
	return ret;
}

int slab_fdata_punch(struct slab_store *st, slab_handle_t h, uint64_t from, uint64_t to)
{
	struct slab_epoch *e;
	struct slab_slot *s;
	struct slab_fmap *fm;
	int ret;

	if (!st)
		return -EINVAL;
	if (st->ro)
		return -EROFS;
	slab_throttle(st);
	ret = slab_obj_lookup_rw(st, h, &e, &s);
	if (ret)
		return ret;
	fm = slab_slot_fmap(s);
	if (!fm) {
		ret = -EINVAL;
		goto unlock;
	}
	for (uint64_t i = from; !ret && i < to && slab_fmap_next(fm, &i, true) && i < to;
	     i++)
		ret = fdata_append(st, e, fm, h, i, NULL, 0);
	if (!ret && to >= fm->hint && from < fm->hint)
		fm->hint = from;
unlock:
	pthread_mutex_unlock(&e->lock);
	return ret;
}

uint64_t slab_fdata_chunk_cost(struct slab_store *st, slab_handle_t h, uint64_t idx)
{
	struct slab_epoch *e;
	struct slab_slot *s = st ? slab_obj_lookup(st, h, &e) : NULL;
	struct slab_fmap *fm;
	struct slab_fent *fe;
	uint64_t c = 0;

	if (!s)
		return 0;
	fm = slab_slot_fmap(s);
	fe = fm ? slab_fmap_get(e, fm, idx, false) : NULL;
	if (fe)
		c = slab_fent_cost(fe);
	pthread_mutex_unlock(&e->lock);
	return c;
}

int slab_fdata_next_data(struct slab_store *st, slab_handle_t h, uint64_t idx,
                         uint64_t *out)
{
	struct slab_epoch *e;
	struct slab_slot *s = st ? slab_obj_lookup(st, h, &e) : NULL;
	struct slab_fmap *fm;
	int ret = -ENXIO;

	if (!s)
		return -ESTALE;
	fm = slab_slot_fmap(s);
	if (fm && slab_fmap_next(fm, &idx, true)) {
		*out = idx;
		ret = 0;
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

/* Where chunk IDX of H is now: 1 with LOC and LEN set, 0 none or hole. */
static int fent_where(struct slab_store *st, slab_handle_t h, uint64_t idx,
                      struct slab_loc *loc, uint16_t *len, uint8_t *open_copy)
{
	struct slab_epoch *e;
	struct slab_slot *s = slab_obj_lookup(st, h, &e);
	struct slab_fmap *fm;
	struct slab_fent *fe;
	int ret = 0;

	if (!s)
		return -ESTALE;
	fm = slab_slot_fmap(s);
	fe = fm ? slab_fmap_get(e, fm, idx, false) : NULL;
	if (fe && fent_used(fe, true)) {
		*loc = fe->loc;
		*len = fe->len;
		if (loc->zone == SLAB_LOC_OPEN && open_copy)
			memcpy(open_copy, e->page.buf + loc->off, fe->len);
		ret = 1;
	} else if (!fm) {
		ret = -EINVAL;
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

ssize_t slab_fdata_read(struct slab_store *st, slab_handle_t h, uint64_t idx, void *buf)
{
	uint8_t rec[SLAB_REC_MAX];
	struct slab_loc loc, again;
	uint16_t len = 0, len2 = 0;
	struct slab_rec r;
	int ret = -EIO;

	if (!st || !buf)
		return -EINVAL;
	for (int tries = 0; tries < 16; tries++) {
		ret = fent_where(st, h, idx, &loc, &len, rec);
		if (ret <= 0)
			return ret;
		if (loc.zone == SLAB_LOC_OPEN) {
			ret = 0;
			break;
		}
		ret = slab_read_rec(st, loc, len, rec);
		if (ret)
			return ret;
		ret = fent_where(st, h, idx, &again, &len2, NULL);
		if (ret < 0)
			return ret;
		if (ret == 1 && again.zone == loc.zone && again.off == loc.off) {
			ret = 0;
			break;
		}
		ret = -EAGAIN; /* moved meanwhile (GC, overwrite): read again */
	}
	if (ret)
		return ret == -EAGAIN ? -EIO : ret;
	if (slab_rec_decode(rec, len, 0, 0, &r) || r.handle != h ||
	    r.rtype != SLAB_REC_FDATA || r.parent != idx)
		return -EUCLEAN;
	memcpy(buf, r.data, r.data_len);
	return r.data_len;
}

ssize_t slab_fdata_read_range(struct slab_store *st, slab_handle_t h, uint64_t size,
                              uint64_t off, void *buf, size_t len)
{
	uint8_t chunk[SLAB_FDATA_MAX];
	uint64_t end = off + len < size ? off + len : size;
	size_t done = 0;

	for (uint64_t pos = off; pos < end;) {
		uint64_t idx = pos / SLAB_FDATA_MAX, in = pos % SLAB_FDATA_MAX;
		size_t n = SLAB_FDATA_MAX - in < end - pos ? SLAB_FDATA_MAX - in
		                                           : (size_t)(end - pos);
		ssize_t got = slab_fdata_read(st, h, idx, chunk);

		if (got < 0)
			return got;
		memset(chunk + got, 0, SLAB_FDATA_MAX - (size_t)got);
		memcpy((uint8_t *)buf + done, chunk + in, n);
		done += n;
		pos += n;
	}
	return (ssize_t)done;
}

int slab_fdata_write_run(struct slab_store *st, slab_handle_t h, uint64_t idx0,
                         uint32_t n, const void *const *bufs)
{
	struct slab_fent *fe[SLAB_FDATA_RUN];
	struct slab_epoch *e;
	struct slab_slot *s;
	struct slab_fmap *fm;
	uint32_t zone, zoff, zgen;
	uint8_t *buf;
	int ret;

	if (!st || !n || n > SLAB_FDATA_RUN)
		return -EINVAL;
	if (idx0 + n > SLAB_FDATA_NIDX)
		return -EFBIG;
	if (st->ro)
		return -EROFS;
	buf = zns_buf_alloc((size_t)n * SLAB_PAGE_SIZE);
	if (!buf)
		return -ENOMEM;
	slab_throttle(st);
	ret = slab_obj_lookup_rw(st, h, &e, &s);
	if (ret)
		goto out_free;
	fm = slab_slot_fmap(s);
	if (!fm) {
		ret = -EINVAL;
		goto unlock;
	}
	for (uint32_t i = 0; i < n; i++) {
		fe[i] = slab_fmap_get(e, fm, idx0 + i, true);
		if (!fe[i]) {
			ret = -ENOMEM;
			goto unlock;
		}
	}
	/* File data may go ahead of the open page's records (page.c,
	 * ordering rule): the run is written at once. */
	/* one page per chunk: a full FDATA record fills a page exactly */
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *pg = buf + (size_t)i * SLAB_PAGE_SIZE;
		struct slab_rec r = {.rtype = SLAB_REC_FDATA,
		                     .handle = h,
		                     .parent = idx0 + i,
		                     .seq = atomic_fetch_add(&st->seq, 1),
		                     .data = bufs[i],
		                     .data_len = SLAB_FDATA_MAX};
		struct slab_page_hdr ph = {.epoch = slab_epoch_id(e->eslot, e->gen),
		                           .used = SLAB_PAGE_SIZE,
		                           .nrec = 1,
		                           .seq = atomic_fetch_add(&st->page_seq, 1)};

		ret = slab_rec_encode(pg + SLAB_PAGE_HDR, SLAB_REC_MAX, &r, 0, 0);
		if (ret < 0)
			goto unlock;
		slab_page_hdr_encode(pg, &ph);
	}
	ret =
	    slab_zone_write_page(st, e, buf, n * SLAB_PAGE_SIZE,
	                         (uint64_t)n * SLAB_REC_MAX, false, &zone, &zoff, &zgen);
	if (ret)
		goto unlock;
	for (uint32_t i = 0; i < n; i++) {
		struct slab_loc loc = {zone, zoff + i * SLAB_PAGE_SIZE + SLAB_PAGE_HDR};

		slab_ezone_add(e, zone, zgen, SLAB_REC_MAX);
		fent_replace(st, e, fe[i], loc, SLAB_REC_MAX);
	}
	if (idx0 + n > fm->hint)
		fm->hint = idx0 + n;
	e->pages += n;
	e->wrote = true;
	atomic_fetch_add(&st->c_pages, n);
	atomic_fetch_add(&st->c_user, (uint64_t)n * SLAB_REC_MAX);
unlock:
	pthread_mutex_unlock(&e->lock);
out_free:
	zns_buf_free(buf);
	return ret;
}

/* Locations of chunks IDX0 .. IDX0+N-1 (zone NONE: hole or none). */
static int run_where(struct slab_store *st, slab_handle_t h, uint64_t idx0, uint32_t n,
                     struct slab_fent *out)
{
	struct slab_epoch *e;
	struct slab_slot *s = slab_obj_lookup(st, h, &e);
	struct slab_fmap *fm;

	if (!s)
		return -ESTALE;
	fm = slab_slot_fmap(s);
	for (uint32_t i = 0; i < n; i++) {
		struct slab_fent *fe = fm ? slab_fmap_get(e, fm, idx0 + i, false) : NULL;

		out[i] = fe && fent_used(fe, true)
		             ? *fe
		             : (struct slab_fent){{SLAB_LOC_NONE, 0}, 0};
	}
	pthread_mutex_unlock(&e->lock);
	return fm ? 0 : -EINVAL;
}

/* Full chunks in consecutive pages of one zone, from I on: how many (0:
 * chunk I is no full record on the device, read on its own). */
static uint32_t run_len(const struct slab_fent *f, uint32_t i, uint32_t n)
{
	uint32_t k = 1;

	if (f[i].loc.zone == SLAB_LOC_NONE || f[i].loc.zone == SLAB_LOC_OPEN ||
	    f[i].len != SLAB_REC_MAX)
		return 0;
	while (i + k < n && f[i + k].loc.zone == f[i].loc.zone &&
	       f[i + k].len == SLAB_REC_MAX &&
	       f[i + k].loc.off == f[i].loc.off + k * SLAB_PAGE_SIZE)
		k++;
	return k;
}

int slab_fdata_read_run(struct slab_store *st, slab_handle_t h, uint64_t idx0, uint32_t n,
                        uint8_t *out, uint32_t *lens)
{
	struct slab_fent f[SLAB_FDATA_RDRUN], again[SLAB_FDATA_RDRUN];
	uint8_t *buf;
	int ret;

	if (!st || !n || n > SLAB_FDATA_RDRUN)
		return -EINVAL;
	ret = run_where(st, h, idx0, n, f);
	if (ret)
		return ret;
	buf = zns_buf_alloc((size_t)n * SLAB_PAGE_SIZE);
	if (!buf)
		return -ENOMEM;
	for (uint32_t i = 0, k; i < n && !ret; i += k) {
		k = run_len(f, i, n);
		if (!k) {
			k = 1;
			lens[i] = 0;
			if (f[i].loc.zone != SLAB_LOC_NONE) {
				ssize_t got = slab_fdata_read(
				    st, h, idx0 + i, out + (size_t)i * SLAB_FDATA_MAX);

				if (got < 0)
					ret = (int)got;
				else
					lens[i] = (uint32_t)got;
			}
			f[i].loc.zone = SLAB_LOC_NONE; /* checked already */
			continue;
		}
		/* one device read for the pages of K consecutive chunks (a
		 * single full chunk too: one page, not its two blocks) */
		ssize_t r = slab_dev_read(st, f[i].loc.zone, f[i].loc.off - SLAB_PAGE_HDR,
		                          buf, (size_t)k * SLAB_PAGE_SIZE);

		if (r != (ssize_t)k * SLAB_PAGE_SIZE) {
			ret = r < 0 ? (int)r : -EIO;
			break;
		}
		for (uint32_t j = 0; j < k; j++) {
			struct slab_rec rec;
			const uint8_t *p =
			    buf + (size_t)j * SLAB_PAGE_SIZE + SLAB_PAGE_HDR;

			/* a record that moved meanwhile fails here or below */
			if (slab_rec_decode(p, SLAB_REC_MAX, 0, 0, &rec) ||
			    rec.handle != h || rec.rtype != SLAB_REC_FDATA ||
			    rec.parent != idx0 + i + j) {
				lens[i + j] = UINT32_MAX;
				continue;
			}
			memcpy(out + (size_t)(i + j) * SLAB_FDATA_MAX, rec.data,
			       rec.data_len);
			lens[i + j] = rec.data_len;
		}
	}
	zns_buf_free(buf);
	if (ret)
		return ret;
	/* Chunks read in runs count only if they did not move meanwhile. */
	ret = run_where(st, h, idx0, n, again);
	for (uint32_t i = 0; i < n && !ret; i++) {
		if (f[i].loc.zone == SLAB_LOC_NONE)
			continue;
		if (lens[i] != UINT32_MAX && again[i].loc.zone == f[i].loc.zone &&
		    again[i].loc.off == f[i].loc.off)
			continue;
		ssize_t got =
		    slab_fdata_read(st, h, idx0 + i, out + (size_t)i * SLAB_FDATA_MAX);

		if (got < 0)
			ret = (int)got;
		else
			lens[i] = (uint32_t)got;
	}
	return ret;
}
