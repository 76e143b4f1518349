// SPDX-License-Identifier: MIT
/*
 * Open slab pages: each open epoch fills one 4 KiB DRAM page with its
 * records; the page goes to the epoch's zone when full, when the journal
 * cycles, or at unmount. Records in the open page are located as
 * (SLAB_LOC_OPEN, offset); writing the page moves every still-live record's
 * location to (zone, zone offset) and counts it in the zone's live bytes.
 * All functions here run with the epoch lock held (for the root epoch this
 * also covers the drop table).
 *
 * Ordering rule: within one epoch, records reach the device in the order
 * they were put, file data (CHUNK, FDATA) excepted. Every other record goes
 * through the open page, pages are written in order under the epoch lock,
 * and a page goes to a zone other than the epoch's previous one only after
 * a flush covering the pages there (slab_zone_write_page). As the device
 * keeps a prefix of each zone's writes, what it holds after a power cut is
 * a prefix of the epoch's puts (plus what the journal made durable). A
 * record that does not fit the open page therefore closes it, however much
 * room is left: writing the record ahead of the page would let a power cut
 * keep a later record without an earlier one (tests/crash/regress.py
 * "rename-over-linked"). Only file data may go ahead (wants_own_page,
 * slab_fdata_write_run). docs/design.md "Write ordering" gives the cost.
 */
#include <errno.h>

#include "slab/slab_int.h"

int slab_page_init(struct slab_dpage *pg)
{
	pg->buf = zns_buf_alloc(SLAB_PAGE_SIZE);
	if (!pg->buf)
		return -ENOMEM;
	slab_page_reset(pg);
	return 0;
}

void slab_page_reset(struct slab_dpage *pg)
{
	memset(pg->buf, 0, SLAB_PAGE_SIZE);
	pg->used = pg->jmark = SLAB_PAGE_HDR;
	pg->nrec = 0;
	pg->def_uid = pg->def_gid = 0;
}

/* Slot/chunk/marker/drop entry location that names record R, or NULL. */
struct slab_loc *slab_rec_owner(struct slab_store *st, struct slab_epoch *e,
                                const struct slab_rec *r, uint16_t **lenp)
{
	struct slab_slot *s;

	tslab_mutex_assert_held(&e->lock);

	*lenp = NULL;
	if (r->rtype == SLAB_REC_DROP) {
		if (e->eslot != 0)
			return NULL;
		for (uint32_t i = 0; i < st->ndrops; i++)
			if (st->drops[i].epoch == r->parent) {
				*lenp = &st->drops[i].len;
				return &st->drops[i].loc;
			}
		return NULL;
	}
	if (slab_handle_epoch(r->handle) != slab_epoch_id(e->eslot, e->gen))
		return NULL;
	s = slab_slot_get(e, slab_handle_slot(r->handle));
	if (!s)
		return NULL;
	switch (r->rtype) {
	case SLAB_REC_CHUNK: {
		struct slab_chunks *ch = slab_slot_chunks(s);

		/* a new object's chunks are written while its slot is still ALLOC */
		if (s->state == SLOT_FREE || !ch || r->parent >= ch->n ||
		    s->gen != slab_handle_gen(r->handle))
			return NULL;
		return &ch->loc[r->parent];
	}
	case SLAB_REC_FDATA: {
		struct slab_fmap *fm = slab_slot_fmap(s);
		struct slab_fent *fe;

		/* chunks of a new file are written while its slot is ALLOC */
		if (s->state == SLOT_FREE || !fm || s->gen != slab_handle_gen(r->handle))
			return NULL;
		fe = slab_fmap_get(e, fm, r->parent, false);
		if (!fe || fe->loc.zone == SLAB_LOC_NONE)
			return NULL;
		*lenp = &fe->len;
		return &fe->loc;
	}
	case SLAB_REC_OBJ:
		if (s->state != SLOT_LIVE || s->gen != slab_handle_gen(r->handle))
			return NULL;
		break;
	case SLAB_REC_TOMB:
		if (s->state == SLOT_LIVE)
			return NULL;
		break;
	case SLAB_REC_EPOCH:
		if (slab_handle_slot(r->handle) != 0)
			return NULL;
		break;
	default:
		return NULL;
	}
	*lenp = &s->len;
	return &s->loc;
}

/* Minimal header peek for records we wrote ourselves. */
static void rec_peek(const uint8_t *p, struct slab_rec *r)
{
	r->rtype = p[4];
	r->name_len = p[6];
	r->flags = p[7];
	r->data_len = tslab_get16(p + 10);
	r->handle = tslab_get64(p + 12);
	r->parent = tslab_get64(p + 20);
	r->len = slab_rec_len_at(p);
}

/*
 * The records of E's open page that a slot (chunk, drop entry) still names;
 * with ZONE not SLAB_LOC_NONE, their locations move to (ZONE, ZOFF + offset).
 * Returns their bytes. The epoch lock is held from the count before the
 * page write to the move after it, so both see the same records.
 */
static uint64_t page_live(struct slab_store *st, struct slab_epoch *e, uint32_t zone,
                          uint32_t zoff)
{
	const uint8_t *b = e->page.buf;
	uint64_t live = 0;

	for (uint32_t off = SLAB_PAGE_HDR; off < e->page.used;) {
		struct slab_rec r;
		uint16_t *lenp;

		rec_peek(b + off, &r);
		struct slab_loc *l = slab_rec_owner(st, e, &r, &lenp);

		if (l && l->zone == SLAB_LOC_OPEN && l->off == off) {
			if (zone != SLAB_LOC_NONE) {
				l->zone = zone;
				l->off = zoff + off;
			}
			live += r.len;
		}
		off += r.len;
	}
	return live;
}

int slab_page_write(struct slab_store *st, struct slab_epoch *e, bool gc)
{
	struct slab_dpage *pg = &e->page;
	uint32_t lba = st->geo.lba_size;
	uint32_t len = (pg->used + lba - 1) / lba * lba;
	uint32_t zone, zoff, zgen;
	uint64_t live;
	int ret;

	tslab_mutex_assert_held(&e->lock);

	if (pg->nrec == 0)
		return 0;
	struct slab_page_hdr h = {.epoch = slab_epoch_id(e->eslot, e->gen),
	                          .used = (uint16_t)pg->used,
	                          .nrec = pg->nrec,
	                          .seq = atomic_fetch_add(&st->page_seq, 1),
	                          .def_uid = pg->def_uid,
	                          .def_gid = pg->def_gid};

	slab_page_hdr_encode(pg->buf, &h);
	live = page_live(st, e, SLAB_LOC_NONE, 0);
	ret = slab_zone_write_page(st, e, pg->buf, len, live, gc, &zone, &zoff, &zgen);
	if (ret)
		return ret;
	page_live(st, e, zone, zoff);
	if (live)
		slab_ezone_add(e, zone, zgen, (int64_t)live);
	e->pages++;
	e->wrote = true;
	atomic_fetch_add(&st->c_pages, 1);
	slab_page_reset(pg);
	return 0;
}

int slab_page_reserve(struct slab_store *st, struct slab_epoch *e, uint32_t len, bool gc)
{
	tslab_mutex_assert_held(&e->lock);

	if (e->page.used + len <= SLAB_PAGE_SIZE)
		return 0;
	return slab_page_write(st, e, gc);
}

static void page_added(struct slab_store *st, struct slab_epoch *e, uint32_t len)
{
	e->page.used += len;
	e->page.nrec++;
	slab_dirty_add(st, e);
}

/*
 * The exception to the ordering rule: a CHUNK or FDATA record that does
 * not fit the open page while that page still has room worth keeping goes
 * to a page of its own, written at once, and the open page stays open for
 * the small records that follow. A chunk is invisible until its head (same
 * sequence number, put after its chunks) is on the device too: recovery
 * skips a version whose head is missing (mount.c rc_decide), and the head
 * is put after every record the chunk overtook. An FDATA record is file
 * data of an extents object, which may reach the device before metadata
 * put earlier, as in a data=ordered file system (runs of full FDATA pages,
 * slab_fdata_write_run, are written at once too); closing the open page
 * for it instead left page tails that the space admission does not count,
 * and a full device then refused an fsync (tests/fs/test_full.py). Without this a
 * 4,000-byte file (a 4,044-byte chunk plus a small head record) would take two pages:
 * every chunk would close a page holding one head record. For the same
 * reason slab_obj_put() stores a version that would fit a page as a head
 * plus one chunk when its record does not fit the open page
 * (slab_page_spills): the chunk goes ahead, the small head follows the
 * open page's records.
 */
static bool wants_own_page(const struct slab_dpage *pg, uint32_t len)
{
	return pg->used + len > SLAB_PAGE_SIZE && len > SLAB_PAGE_SIZE / 2 &&
	       pg->nrec > 0 && SLAB_PAGE_SIZE - pg->used >= SLAB_PAGE_SIZE / 8;
}

bool slab_page_spills(struct slab_epoch *e, uint32_t chunk_len)
{
	tslab_mutex_assert_held(&e->lock);
	return wants_own_page(&e->page, chunk_len);
}

/* Write chunk R alone in a page; counted live in its zone from here on. */
static int page_write_alone(struct slab_store *st, struct slab_epoch *e,
                            struct slab_rec *r, bool gc, struct slab_loc *loc)
{
	uint32_t lba = st->geo.lba_size, zone, zoff, zgen;
	uint8_t *buf = zns_buf_alloc(SLAB_PAGE_SIZE);
	int ret;

	if (!buf)
		return -ENOMEM;
	memset(buf, 0, SLAB_PAGE_SIZE);
	ret =
	    slab_rec_encode(buf + SLAB_PAGE_HDR, SLAB_PAGE_SIZE - SLAB_PAGE_HDR, r, 0, 0);
	if (ret < 0)
		goto out_free;
	r->len = (uint32_t)ret;
	struct slab_page_hdr h = {.epoch = slab_epoch_id(e->eslot, e->gen),
	                          .used = (uint16_t)(SLAB_PAGE_HDR + r->len),
	                          .nrec = 1,
	                          .seq = atomic_fetch_add(&st->page_seq, 1)};

	slab_page_hdr_encode(buf, &h);
	ret = slab_zone_write_page(st, e, buf, (h.used + lba - 1) / lba * lba, r->len, gc,
	                           &zone, &zoff, &zgen);
	if (ret)
		goto out_free;
	*loc = (struct slab_loc){zone, zoff + SLAB_PAGE_HDR};
	slab_ezone_add(e, zone, zgen, (int64_t)r->len);
	e->pages++;
	e->wrote = true;
	atomic_fetch_add(&st->c_pages, 1);
out_free:
	zns_buf_free(buf);
	return ret;
}

int slab_page_append(struct slab_store *st, struct slab_epoch *e, struct slab_rec *r,
                     bool gc, struct slab_loc *loc)
{
	struct slab_dpage *pg = &e->page;
	int ret;

	tslab_mutex_assert_held(&e->lock);

	if (pg->nrec == 0 && r->rtype == SLAB_REC_OBJ) {
		pg->def_uid = r->uid;
		pg->def_gid = r->gid;
	}
	uint32_t len = slab_rec_size(r, pg->def_uid, pg->def_gid);

	if (pg->used + len > SLAB_PAGE_SIZE) {
		if ((r->rtype == SLAB_REC_CHUNK || r->rtype == SLAB_REC_FDATA) &&
		    wants_own_page(pg, len))
			return page_write_alone(st, e, r, gc, loc);
		/* The open page goes first, whatever room it has left (the
		 * ordering rule above): R is put after every record in it. */
		ret = slab_page_write(st, e, gc);
		if (ret)
			return ret;
		if (r->rtype == SLAB_REC_OBJ) {
			pg->def_uid = r->uid;
			pg->def_gid = r->gid;
		}
		len = slab_rec_size(r, pg->def_uid, pg->def_gid);
	}
	ret = slab_rec_encode(pg->buf + pg->used, SLAB_PAGE_SIZE - pg->used, r,
	                      pg->def_uid, pg->def_gid);
	if (ret < 0)
		return ret;
	r->len = (uint32_t)ret;
	*loc = (struct slab_loc){SLAB_LOC_OPEN, pg->used};
	page_added(st, e, (uint32_t)ret);
	return 0;
}

int slab_page_append_raw(struct slab_store *st, struct slab_epoch *e, const uint8_t *rec,
                         uint32_t len, uint32_t suid, uint32_t sgid, bool gc,
                         struct slab_loc *loc, uint32_t *newlen)
{
	struct slab_dpage *pg = &e->page;
	int ret;

	tslab_mutex_assert_held(&e->lock);

	if (pg->used + len + 8 > SLAB_PAGE_SIZE) {
		ret = slab_page_write(st, e, gc);
		if (ret)
			return ret;
	}
	if (pg->nrec == 0 && rec[4] == SLAB_REC_OBJ) {
		/* Effective owner of the record becomes the page default. */
		if (rec[7] & SLAB_RF_UIDGID) {
			pg->def_uid = tslab_get32(rec + SLAB_REC_HDR);
			pg->def_gid = tslab_get32(rec + SLAB_REC_HDR + 4);
		} else {
			pg->def_uid = suid;
			pg->def_gid = sgid;
		}
	}
	ret = slab_rec_copy(pg->buf + pg->used, SLAB_PAGE_SIZE - pg->used, rec, len, suid,
	                    sgid, pg->def_uid, pg->def_gid);
	if (ret < 0)
		return ret;
	*loc = (struct slab_loc){SLAB_LOC_OPEN, pg->used};
	*newlen = (uint32_t)ret;
	page_added(st, e, (uint32_t)ret);
	return 0;
}
