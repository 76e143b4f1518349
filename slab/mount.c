// SPDX-License-Identifier: MIT
/*
 * Mount (recovery), unmount, space and counters.
 *
 * Recovery starts from the checkpoint the superblock names, if any (else
 * from nothing), and scans what was written after it:
 *   ckpt    load and verify the image (ckpt.c); a data zone whose first page
 *           is the one the checkpoint recorded is unchanged up to the write
 *           pointer it recorded: its checkpoint entries below that point are
 *           taken as scanned records and only its tail is scanned; any other
 *           zone (reset since, or empty then) is scanned whole and its
 *           entries are ignored; the journal is always scanned whole;
 *   pass 1  collect every valid record (handle, seq, place) of the scanned
 *           parts; the first bad page or record ends a zone's scan (torn
 *           tail);
 *   decide  per object slot the newest complete version (a chunked version
 *           counts only with all its chunks; duplicates of one seq are the
 *           same version, the data-zone copy preferred over the journal);
 *           DROP records kill every older record of their epoch;
 *   rebuild epochs, slot tables, free lists, zone live bytes, counters;
 *           reset zones holding no live bytes (after a device flush);
 *   pass 2  call the fs callback per live object, and copy live records that
 *           exist only in the journal into their epochs' pages; then write
 *           those pages and reset the journal.
 */
#include <errno.h>
#include <stdlib.h>
#include <syslog.h>

#include "slab/slab_cache.h"
#include "slab/slab_int.h"

struct rent {
	uint64_t handle, seq;
	uint64_t aux;   /* OBJ: total if chunked; CHUNK, FDATA: index; DROP: epoch */
	uint64_t xbase; /* OBJ extents head: its data base (else 0) */
	uint32_t zone, off;
	uint16_t len;
	uint8_t rtype;
	uint8_t kind; /* EPOCH: SLAB_EPOCH_KIND_* */
	uint8_t journal;
	uint32_t meta; /* from the checkpoint: image offset of its entry + 1 */
};

struct rvec {
	struct rent *v;
	size_t n, cap;
};

struct recov {
	struct slab_store *st;
	struct rvec recs, drops, live, dzones; /* dzones: handle = epoch, zone */
	struct rvec ezones; /* (epoch, zone) holding any record of the epoch */
	struct rvec damage; /* (zone, off) of damage found by the scan */
	uint64_t *scan_end;
	uint64_t *scan_start; /* checkpoint entries trusted below; scan from here */
	bool *torn, *reset_ok;
	bool *ckzone; /* zones of the checkpoint in use */
	bool use_ck;
	struct slab_ckpt_img img;
	int16_t *egen_seen;  /* per epoch slot: highest generation seen, -1 none */
	uint64_t slot_bound; /* slab_slot_bound(): higher slots are forged */
	uint64_t *ck_wp;     /* check mode: write pointer the checkpoint saw */
	uint64_t max_seq, max_page_seq;
};

static void rvec_sort(struct rvec *v, int (*cmp)(const void *, const void *))
{
	if (v->n > 1)
		qsort(v->v, v->n, sizeof(*v->v), cmp);
}

static int rvec_push(struct rvec *v, const struct rent *r)
{
	if (v->n == v->cap) {
		size_t ncap = v->cap ? v->cap * 2 : 1024;
		struct rent *n = realloc(v->v, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = ncap;
	}
	v->v[v->n++] = *r;
	return 0;
}

static void see_epoch(struct recov *rc, uint32_t epoch)
{
	uint32_t s = slab_eslot(epoch);

	if (s < SLAB_EPOCH_SLOTS && rc->egen_seen[s] < slab_egen(epoch))
		rc->egen_seen[s] = slab_egen(epoch);
}

/* Does record R belong in a page of epoch PE? */
static bool rec_fits_page(const struct slab_rec *r, uint32_t pe)
{
	if (pe == SLAB_EPOCH_JOURNAL)
		return true;
	if (r->rtype == SLAB_REC_DROP)
		return pe == SLAB_EPOCH_ROOT;
	return slab_handle_epoch(r->handle) == pe;
}

/* Records of one page; *bad (with *bad_off) at the first that fails its
 * checks: checksum, page, or a slot no device of this size can hold. */
static int scan_page(struct recov *rc, uint32_t z, const uint8_t *pg,
                     const struct slab_page_hdr *ph, uint64_t poff, bool *bad,
                     uint64_t *bad_off)
{
	bool jz = slab_zone_is_journal(rc->st, z);

	for (uint32_t off = SLAB_PAGE_HDR; off < ph->used;) {
		struct slab_rec r;

		if (slab_rec_decode(pg + off, ph->used - off, ph->def_uid, ph->def_gid,
		                    &r) ||
		    !rec_fits_page(&r, ph->epoch) ||
		    slab_handle_slot(r.handle) >= rc->slot_bound) {
			*bad = true;
			*bad_off = poff + off;
			return 0;
		}
		struct rent e = {.handle = r.handle,
		                 .seq = r.seq,
		                 .zone = z,
		                 .off = (uint32_t)(poff + off),
		                 .len = (uint16_t)r.len,
		                 .rtype = r.rtype,
		                 .kind = r.kind,
		                 .journal = jz};

		if (r.rtype == SLAB_REC_OBJ && (r.flags & SLAB_RF_CHUNKED))
			e.aux = r.total;
		else if (r.rtype == SLAB_REC_CHUNK || r.rtype == SLAB_REC_DROP ||
		         r.rtype == SLAB_REC_FDATA)
			e.aux = r.parent;
		if (r.rtype == SLAB_REC_OBJ && (r.flags & SLAB_RF_EXTENTS))
			e.xbase = r.dbase;
		if (r.seq > rc->max_seq)
			rc->max_seq = r.seq;
		see_epoch(rc, r.rtype == SLAB_REC_DROP ? (uint32_t)r.parent
		                                       : slab_handle_epoch(r.handle));
		int ret =
		    rvec_push(r.rtype == SLAB_REC_DROP ? &rc->drops : &rc->recs, &e);

		if (ret)
			return ret;
		off += r.len;
	}
	return 0;
}

/* The scan of zone Z stopped at STOP (a bad page, or a bad record at BAD_AT
 * of a page of epoch PE) below WP: the end of the log, or damage? Damage is
 * recorded; in check mode *next says where the scan goes on. */
static int scan_stopped(struct recov *rc, uint32_t z, uint64_t stop, uint64_t bad_at,
                        uint32_t pe, uint64_t wp, bool full, uint64_t *next)
{
	bool damage;
	int ret = slab_damage_classify(rc->st->dev, z, stop, wp, full, &damage, next);

	if (ret || !damage) {
		*next = wp;
		return ret;
	}
	/* Only an intact page header names the epoch of what was lost: a zone
	 * may hold pages of several epochs. */
	return rvec_push(&rc->damage,
	                 &(struct rent){.zone = z, .off = (uint32_t)bad_at, .aux = pe});
}

static int scan_zone(struct recov *rc, uint32_t z, uint64_t wp, bool full)
{
	struct slab_zscan zs;
	struct slab_page_hdr ph;
	const uint8_t *pg;
	uint64_t poff, bad_off = 0, next;
	bool bad = false;
	int ret = slab_zscan_init(&zs, rc->st->dev, z, wp);

	if (ret)
		return ret;
	zs.pos = rc->scan_start[z];
	rc->scan_end[z] = zs.pos;
	for (;;) {
		while (!bad && (ret = slab_zscan_next(&zs, &pg, &ph, &poff)) > 0) {
			if (ph.seq > rc->max_page_seq)
				rc->max_page_seq = ph.seq;
			ret = scan_page(rc, z, pg, &ph, poff, &bad, &bad_off);
			if (ret)
				break;
			rc->scan_end[z] = bad ? poff : zs.pos;
		}
		if (ret < 0 || !(bad || zs.torn))
			break;
		rc->torn[z] = true;
		atomic_fetch_add(&rc->st->c_torn, 1);
		ret = bad ? scan_stopped(rc, z, poff, bad_off, ph.epoch, wp, full, &next)
		          : scan_stopped(rc, z, zs.pos, zs.pos, SLAB_EPOCH_JOURNAL, wp,
		                         full, &next);
		/* A normal mount fails on damage; fsck reads on past it. */
		if (ret || !rc->st->check || next >= wp)
			break;
		zs.pos = next;
		zs.torn = false;
		bad = false;
	}
	slab_zscan_fini(&zs);
	return ret < 0 ? ret : 0;
}

/* Zone Z's pages end below the write pointer its checkpoint recorded: what
 * was there is gone (zeroed or unreadable), whatever its epoch. */
static int ck_short(struct recov *rc, uint32_t z)
{
	for (size_t i = 0; i < rc->damage.n; i++)
		if (rc->damage.v[i].zone == z)
			return 0; /* already reported */
	return rvec_push(&rc->damage, &(struct rent){.zone = z,
	                                             .off = (uint32_t)rc->scan_end[z],
	                                             .aux = SLAB_EPOCH_JOURNAL});
}

/* Damage found by the scan goes to the store's list, with the epoch whose
 * pages its zone holds. */
static int rc_damage(struct recov *rc)
{
	struct slab_store *st = rc->st;

	for (size_t i = 0; i < rc->damage.n; i++) {
		uint32_t z = rc->damage.v[i].zone, pe = (uint32_t)rc->damage.v[i].aux;
		struct slab_damage d = {
		    .zone = z,
		    .offset = rc->damage.v[i].off,
		    .epoch = pe == SLAB_EPOCH_JOURNAL ? SLAB_DAMAGE_NO_EPOCH : pe,
		    .journal = slab_zone_is_journal(st, z)};
		int ret = slab_damage_add(st, &d);

		if (ret)
			return ret;
	}
	return 0;
}

static int rent_cmp(const void *a, const void *b)
{
	const struct rent *x = a, *y = b;
	uint64_t kx = x->handle >> 40, ky = y->handle >> 40;
	uint32_t sx = slab_handle_slot(x->handle), sy = slab_handle_slot(y->handle);
	int rx = x->rtype == SLAB_REC_CHUNK, ry = y->rtype == SLAB_REC_CHUNK;

	if (kx != ky)
		return kx < ky ? -1 : 1;
	if (sx != sy)
		return sx < sy ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq > y->seq ? -1 : 1; /* newest first */
	if (rx != ry)
		return rx - ry; /* head before its chunks */
	if (x->aux != y->aux)
		return x->aux < y->aux ? -1 : 1;
	if (x->journal != y->journal)
		return (int)x->journal - (int)y->journal; /* data-zone copy first */
	return (x->meta != 0) - (y->meta != 0); /* then a replayed copy (GC moved it) */
}

static int drop_cmp(const void *a, const void *b)
{
	const struct rent *x = a, *y = b;

	if (x->aux != y->aux)
		return x->aux < y->aux ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq > y->seq ? -1 : 1;
	if (x->journal != y->journal)
		return (int)x->journal - (int)y->journal;
	return (x->meta != 0) - (y->meta != 0);
}

static int loc_cmp(const void *a, const void *b)
{
	const struct rent *x = a, *y = b;

	if (x->zone != y->zone)
		return x->zone < y->zone ? -1 : 1;
	return x->off < y->off ? -1 : (x->off > y->off);
}

/* Newest DROP of EPOCH (drops sorted, deduplicated by drop_cmp), or NULL. */
static const struct rent *drop_of(const struct recov *rc, uint64_t epoch)
{
	size_t lo = 0, hi = rc->drops.n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (rc->drops.v[mid].aux < epoch)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < rc->drops.n && rc->drops.v[lo].aux == epoch ? &rc->drops.v[lo] : NULL;
}

/* Keep only the newest DROP per epoch. */
static void drops_dedupe(struct recov *rc)
{
	size_t n = 0;

	rvec_sort(&rc->drops, drop_cmp);
	for (size_t i = 0; i < rc->drops.n; i++)
		if (n == 0 || rc->drops.v[n - 1].aux != rc->drops.v[i].aux)
			rc->drops.v[n++] = rc->drops.v[i];
	rc->drops.n = n;
}

/* The open epoch struct for EPOCH, set up on first use; NULL on conflict. */
static struct slab_epoch *rc_epoch(struct recov *rc, uint32_t epoch, int *err)
{
	struct slab_store *st = rc->st;
	uint32_t s = slab_eslot(epoch);
	struct slab_epoch *e;

	if (s >= SLAB_EPOCH_SLOTS)
		return NULL;
	*err = slab_epoch_init_slot(st, s);
	if (*err)
		return NULL;
	e = st->etab[s];
	if (e->state == EPOCH_OPEN)
		return e->gen == slab_egen(epoch) ? e : NULL;
	e->gen = slab_egen(epoch);
	e->arena = slab_arena_new();
	if (!e->arena || slab_page_init(&e->page) || slab_slot_grow(e, 1)) {
		slab_epoch_free_contents(e);
		*err = -ENOMEM;
		return NULL;
	}
	e->state = EPOCH_OPEN;
	return e;
}

/* Count a chosen live record in its zone and remember it for pass 2. */
static int rc_live(struct recov *rc, struct slab_epoch *e, const struct rent *r)
{
	struct slab_store *st = rc->st;

	if (!r->journal) {
		slab_zone_live_add(st, r->zone, r->len);
		if (slab_ezone_add(e, r->zone, st->zones[r->zone].gen, r->len))
			return -ENOMEM;
	}
	return rvec_push(&rc->live, r);
}

/* Chunks 0..n-1 of the version [k, m) (heads first, chunks by index), or -1. */
static int rc_chunks(struct recov *rc, struct slab_epoch *e, struct slab_slot *s,
                     const struct rent *v, size_t k, size_t m)
{
	uint64_t total = v[k].aux;
	uint32_t n = (uint32_t)((total + SLAB_CHUNK_MAX - 1) / SLAB_CHUNK_MAX), got = 0;
	size_t idx[64], cap = 64, *ix = idx;
	int ret = 0;

	if (n > cap) {
		ix = malloc(n * sizeof(*ix));
		if (!ix)
			return -ENOMEM;
	}
	for (size_t i = k + 1; i < m && got < n; i++)
		if (v[i].rtype == SLAB_REC_CHUNK && v[i].aux == got)
			ix[got++] = i;
	if (got < n) {
		ret = 1;
		goto out;
	}
	struct slab_chunks *ch =
	    slab_arena_alloc_any(e->arena, sizeof(*ch) + n * sizeof(ch->loc[0]));

	if (!ch) {
		ret = -ENOMEM;
		goto out;
	}
	ch->n = n;
	ch->total = total;
	for (uint32_t i = 0; i < n && !ret; i++) {
		ch->loc[i] = (struct slab_loc){v[ix[i]].zone, v[ix[i]].off};
		ret = rc_live(rc, e, &v[ix[i]]);
	}
	s->chunks = ch;
out:
	if (ix != idx)
		free(ix);
	return ret;
}

/*
 * The chunk map of extents head H, from the FDATA records among v[i..j)
 * (newest first): per index the newest record of H's generation that is
 * not older than the head's data base. Records of other generations, older
 * data generations or older versions of an index are dead.
 */
static int rc_fdata(struct recov *rc, struct slab_epoch *e, struct slab_slot *s,
                    const struct rent *v, size_t i, size_t j, const struct rent *h)
{
	struct slab_fmap *fm = slab_fmap_new(e);
	int ret = 0;

	if (!fm)
		return -ENOMEM;
	fm->dbase = h->xbase;
	slab_slot_set_fmap(s, fm);
	for (size_t k = i; k < j && !ret; k++) {
		const struct rent *c = &v[k];
		struct slab_fent *fe;

		if (c->rtype != SLAB_REC_FDATA || c->seq < h->xbase ||
		    slab_handle_gen(c->handle) != slab_handle_gen(h->handle))
			continue;
		fe = slab_fmap_get(e, fm, c->aux, true);
		if (!fe)
			return -ENOMEM;
		if (fe->loc.zone != SLAB_LOC_NONE)
			continue; /* an older version of this chunk */
		fe->loc = (struct slab_loc){c->zone, c->off};
		fe->len = c->len;
		if (c->len > SLAB_REC_HDR && c->aux >= fm->hint)
			fm->hint = c->aux + 1;
		ret = rc_live(rc, e, c);
	}
	return ret;
}

/* Decide the live version of one slot: records v[i..j), newest first. */
static int rc_slot(struct recov *rc, struct slab_epoch *e, const struct rent *v, size_t i,
                   size_t j)
{
	uint32_t slot = slab_handle_slot(v[i].handle);
	uint8_t maxgen = 0;
	struct slab_slot *s;
	int ret;

	/* Counts from the device are bounded before anything is allocated. */
	if (slot >= rc->slot_bound) {
		syslog(
		    LOG_ERR,
		    "tslabfs: slab: damage: object slot %u of epoch %u (zone %u offset "
		    "%u) cannot exist on this device",
		    slot, slab_handle_epoch(v[i].handle), v[i].zone, v[i].off);
		return -EUCLEAN;
	}
	ret = slab_slot_grow(e, slot + 1);

	if (ret)
		return ret;
	s = slab_slot_get(e, slot);
	for (size_t k = i; k < j; k++)
		if (slab_handle_gen(v[k].handle) > maxgen)
			maxgen = slab_handle_gen(v[k].handle);
	s->state = SLOT_FREE;
	s->gen = (uint8_t)(maxgen + 1);
	for (size_t k = i, m; k < j; k = m) {
		for (m = k + 1; m < j && v[m].seq == v[k].seq; m++)
			;
		const struct rent *h = &v[k];

		if (h->rtype == SLAB_REC_CHUNK || h->rtype == SLAB_REC_FDATA)
			continue;
		if (h->rtype == SLAB_REC_OBJ && h->aux) {
			ret = rc_chunks(rc, e, s, v, k, m);
			if (ret > 0)
				continue; /* torn chunked version: try the older one */
			if (ret)
				return ret;
		}
		if ((h->rtype == SLAB_REC_EPOCH) != (slot == 0))
			continue;
		if (slot == 0)
			e->sealed = h->kind == SLAB_EPOCH_KIND_SEALED;
		s->loc = (struct slab_loc){h->zone, h->off};
		s->len = h->len;
		s->gen = slab_handle_gen(h->handle);
		if (h->rtype == SLAB_REC_TOMB) {
			s->gen++;
		} else {
			s->state = SLOT_LIVE;
			if (slot) {
				e->objects++;
				atomic_fetch_add(&rc->st->c_objects, 1);
			}
			if (h->rtype == SLAB_REC_OBJ && h->xbase &&
			    (ret = rc_fdata(rc, e, s, v, i, j, h)))
				return ret;
		}
		return rc_live(rc, e, h);
	}
	return 0;
}

static int dzone_cmp(const void *a, const void *b)
{
	const struct rent *x = a, *y = b;

	if (x->handle != y->handle)
		return x->handle < y->handle ? -1 : 1;
	return x->zone < y->zone ? -1 : (x->zone > y->zone);
}

/* Walk the sorted records slot by slot. */
static int rc_decide(struct recov *rc)
{
	struct rent *v = rc->recs.v;
	int ret = 0;

	rvec_sort(&rc->recs, rent_cmp);
	v = rc->recs.v;
	for (size_t i = 0, j; i < rc->recs.n; i = j) {
		uint64_t key = v[i].handle & ~0xff00000000ull; /* epoch + slot */

		for (j = i + 1; j < rc->recs.n && (v[j].handle & ~0xff00000000ull) == key;
		     j++)
			;
		uint32_t epoch = slab_handle_epoch(v[i].handle);
		const struct rent *d = drop_of(rc, epoch);

		if (d) {
			for (size_t k = i; k < j; k++) {
				struct rent p = {.handle = epoch, .zone = v[k].zone};

				if (!v[k].journal && (ret = rvec_push(&rc->dzones, &p)))
					return ret;
			}
			continue;
		}
		struct slab_epoch *e = rc_epoch(rc, epoch, &ret);

		if (ret)
			return ret;
		if (!e)
			continue; /* conflicting generation: not trusted */
		ret = rc_slot(rc, e, v, i, j);
		for (size_t k = i; k < j && !ret; k++) {
			struct rent p = {.handle = epoch, .zone = v[k].zone};
			const struct rent *last =
			    rc->ezones.n ? &rc->ezones.v[rc->ezones.n - 1] : NULL;

			if (!v[k].journal && (!last || dzone_cmp(last, &p)))
				ret = rvec_push(&rc->ezones, &p);
		}
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Every zone holding a record of an epoch, dead or alive, is in the epoch's
 * zone list (with 0 live bytes if need be): when the epoch is dropped, its
 * drop record then lives until all those zones are reset, so no old version
 * can come back. For an epoch already dropped the zones go to rc->dzones.
 */
static int rc_ezones(struct recov *rc)
{
	struct slab_store *st = rc->st;
	int ret = 0;

	rvec_sort(&rc->ezones, dzone_cmp);
	for (size_t i = 0; i < rc->ezones.n && !ret; i++) {
		const struct rent *p = &rc->ezones.v[i];
		uint32_t epoch = (uint32_t)p->handle, s = slab_eslot(epoch);

		if (i && !dzone_cmp(p, p - 1))
			continue;
		if (drop_of(rc, epoch)) {
			ret = rvec_push(&rc->dzones, p);
			continue;
		}
		struct slab_epoch *e = s < st->neslots ? st->etab[s] : NULL;

		if (e && e->state == EPOCH_OPEN && e->gen == slab_egen(epoch))
			ret = slab_ezone_add(e, p->zone, st->zones[p->zone].gen, 0);
	}
	return ret;
}

/* Is some zone holding records of dropped EPOCH (pairs [*lo, *hi)) kept? */
static bool drop_pending(const struct recov *rc, uint64_t epoch, size_t *lo, size_t *hi)
{
	size_t a = 0, b = rc->dzones.n;
	bool pending = false;

	while (a < b) {
		size_t mid = (a + b) / 2;

		if (rc->dzones.v[mid].handle < epoch)
			a = mid + 1;
		else
			b = mid;
	}
	*lo = a;
	for (b = a; b < rc->dzones.n && rc->dzones.v[b].handle == epoch; b++)
		if (!rc->reset_ok[rc->dzones.v[b].zone])
			pending = true;
	*hi = b;
	return pending;
}

/* Register the drops whose epochs still have pages in kept zones. */
static int rc_drops(struct recov *rc)
{
	struct slab_store *st = rc->st;
	bool changed = true;
	size_t lo, hi, n = 0;

	rvec_sort(&rc->dzones, dzone_cmp);
	for (size_t i = 0; i < rc->dzones.n; i++)
		if (!n || dzone_cmp(&rc->dzones.v[n - 1], &rc->dzones.v[i]))
			rc->dzones.v[n++] = rc->dzones.v[i];
	rc->dzones.n = n;
	/* A kept drop record keeps its own zone, which may keep other pages. */
	while (changed) {
		changed = false;
		for (size_t i = 0; i < rc->drops.n; i++) {
			const struct rent *d = &rc->drops.v[i];

			if (drop_pending(rc, d->aux, &lo, &hi) && !d->journal &&
			    rc->reset_ok[d->zone]) {
				rc->reset_ok[d->zone] = false;
				changed = true;
			}
		}
	}
	st->drops = calloc(rc->drops.n ? rc->drops.n : 1, sizeof(*st->drops));
	if (!st->drops)
		return -ENOMEM;
	st->drops_cap = (uint32_t)(rc->drops.n ? rc->drops.n : 1);
	for (size_t i = 0; i < rc->drops.n; i++) {
		const struct rent *d = &rc->drops.v[i];
		int ret;

		if (!drop_pending(rc, d->aux, &lo, &hi))
			continue;
		struct slab_drop *sd = &st->drops[st->ndrops++];

		*sd = (struct slab_drop){.epoch = (uint32_t)d->aux,
		                         .seq = d->seq,
		                         .loc = {d->zone, d->off},
		                         .len = d->len,
		                         .ready = true};
		sd->ez = calloc(hi - lo, sizeof(*sd->ez));
		if (!sd->ez)
			return -ENOMEM;
		for (size_t k = lo; k < hi; k++)
			if (!rc->reset_ok[rc->dzones.v[k].zone])
				sd->ez[sd->ez_n++] =
				    (struct slab_ezone){rc->dzones.v[k].zone, 0, 0};
		ret = rc_live(rc, st->etab[0], d);
		if (ret)
			return ret;
		uint32_t s = slab_eslot(sd->epoch);

		ret = slab_epoch_init_slot(st, s);
		if (ret)
			return ret;
		if (st->etab[s]->state == EPOCH_FREE) {
			st->etab[s]->gen = slab_egen(sd->epoch);
			st->etab[s]->state = EPOCH_DROPPED;
		}
	}
	return 0;
}

/* Zone states from the report; reset_ok marks zones to reset. */
static void rc_zones(struct recov *rc, const struct zns_zone *zr)
{
	struct slab_store *st = rc->st;

	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		struct slab_zone *zn = &st->zones[z];

		zn->wp = zr[z].wp;
		if (rc->ckzone[z]) {
			zn->state = ZS_META; /* the checkpoint in use: kept */
			continue;
		}
		switch (zr[z].cond) {
		case ZNS_COND_EMPTY:
			zn->state = ZS_FREE;
			atomic_fetch_add(&st->zones_free, 1);
			break;
		case ZNS_COND_FULL:
			zn->state = ZS_FULL;
			break;
		case ZNS_COND_IMP_OPEN:
		case ZNS_COND_EXP_OPEN:
		case ZNS_COND_CLOSED:
			if (rc->torn[z] || rc->scan_end[z] != zn->wp) {
				/* Never append after a torn tail. */
				zn->state = ZS_FULL;
				if (!st->ro)
					slab_dev_finish(st, z);
			} else {
				zn->state = ZS_OPEN;
				st->active++;
			}
			break;
		case ZNS_COND_READ_ONLY:
			zn->state = ZS_FULL;
			zn->ro = true;
			break;
		default:
			zn->state = ZS_BAD;
			break;
		}
		rc->reset_ok[z] = !st->ro && !zn->ro && zn->wp > 0 &&
		                  (zn->state == ZS_FULL || zn->state == ZS_OPEN) &&
		                  atomic_load(&zn->live) == 0;
	}
}

static void rc_reset_dead(struct recov *rc)
{
	struct slab_store *st = rc->st;

	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		if (!rc->reset_ok[z] || atomic_load(&st->zones[z].live))
			continue;
		if (st->zones[z].state == ZS_OPEN) {
			st->zones[z].state = ZS_FULL;
			st->active--;
		}
		slab_zone_reset(st, z);
	}
}

static void push_free_slot(struct slab_epoch *e, uint32_t slot, struct slab_slot *s)
{
	s->next_free = 0;
	if (e->free_tail)
		slab_slot_get(e, e->free_tail)->next_free = slot;
	else
		e->free_head = slot;
	e->free_tail = slot;
}

/* Free lists of slots and of epoch slots. */
static int rc_epochs(struct recov *rc)
{
	struct slab_store *st = rc->st;
	uint32_t top = st->neslots;

	for (uint32_t s = 0; s < SLAB_EPOCH_SLOTS; s++)
		if (rc->egen_seen[s] >= 0 && s + 1 > top)
			top = s + 1;
	for (uint32_t s = 0; s < top; s++) {
		int ret = slab_epoch_init_slot(st, s);

		if (ret)
			return ret;
		struct slab_epoch *e = st->etab[s];

		if (e->state == EPOCH_OPEN) {
			for (uint32_t i = 1; i < e->nslots; i++) {
				struct slab_slot *sl = slab_slot_get(e, i);

				if (sl->state == SLOT_FREE)
					push_free_slot(e, i, sl);
			}
		} else if (e->state == EPOCH_FREE && s != 0) {
			e->gen =
			    rc->egen_seen[s] >= 0 ? (uint8_t)(rc->egen_seen[s] + 1) : 0;
			e->next_efree = 0;
			if (st->efree_tail)
				st->etab[st->efree_tail]->next_efree = s;
			else
				st->efree_head = s;
			st->efree_tail = s;
		}
	}
	return 0;
}

/* Pass 2 for one live record: callback, and replay when it lives in the journal. */
static int rc_visit(struct recov *rc, const struct slab_page_hdr *ph, const uint8_t *rec,
                    uint32_t avail, const struct rent *le, slab_recover_fn fn, void *ctx)
{
	struct slab_store *st = rc->st;
	struct slab_rec r;
	int ret = slab_rec_decode(rec, avail, ph->def_uid, ph->def_gid, &r);

	if (ret)
		return ret;
	if (r.rtype == SLAB_REC_OBJ && fn) {
		bool chunked = r.flags & SLAB_RF_CHUNKED;
		struct slab_obj o = {.kind = r.kind,
		                     .attr = {.mode = r.mode,
		                              .uid = r.uid,
		                              .gid = r.gid,
		                              .nlink = r.nlink,
		                              .rdev = r.rdev,
		                              .size = r.size,
		                              .atime_ns = r.atime_ns,
		                              .mtime_ns = r.mtime_ns,
		                              .ctime_ns = r.ctime_ns},
		                     .parent = r.parent,
		                     .name = r.name,
		                     .name_len = r.name_len,
		                     .data = chunked ? NULL : r.data,
		                     .data_len = chunked ? r.total : r.data_len,
		                     .extents =
		                         (r.flags & SLAB_RF_EXTENTS) ? SLAB_EXT_YES : 0};

		ret = fn(ctx, r.handle, &o);
		if (ret)
			return ret;
	}
	if (!le->journal || st->ro)
		return 0;
	struct slab_epoch *e =
	    st->etab[r.rtype == SLAB_REC_DROP ? 0
	                                      : slab_eslot(slab_handle_epoch(r.handle))];
	uint16_t *lenp;
	struct slab_loc nloc;
	uint32_t nlen;

	pthread_mutex_lock(&e->lock);
	struct slab_loc *owner = slab_rec_owner(st, e, &r, &lenp);

	if (owner && owner->zone == le->zone && owner->off == le->off) {
		ret = slab_page_append_raw(st, e, rec, r.len, ph->def_uid, ph->def_gid,
		                           true, &nloc, &nlen);
		if (!ret) {
			*owner = nloc;
			if (lenp)
				*lenp = (uint16_t)nlen;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

/* Check mode: move the pass-2 scan ZS past the damaged page it stopped at,
 * to the next valid page (as pass 1 did). 1 if it moved, 0 if not, -errno. */
static int pass2_skip(struct recov *rc, struct slab_zscan *zs)
{
	bool damage;
	uint64_t next;
	int ret = slab_damage_classify(rc->st->dev, zs->zone, zs->pos, zs->end, false,
	                               &damage, &next);

	if (ret)
		return ret;
	if (next >= zs->end || next <= zs->pos)
		return 0;
	zs->pos = next;
	zs->torn = false;
	return 1;
}

/* Pass 2 for a live record known from the checkpoint: no device read. */
static int ck_visit(struct recov *rc, const struct rent *le, slab_recover_fn fn,
                    void *ctx)
{
	struct slab_ckpt_ent e;
	size_t pos = le->meta - 1;

	if (slab_ckpt_next(&rc->img, &pos, &e) != 1)
		return -EUCLEAN;
	if (e.rtype != SLAB_REC_OBJ || !fn)
		return 0;
	struct slab_obj o = {.kind = e.kind,
	                     .attr = {.mode = e.mode,
	                              .uid = e.uid,
	                              .gid = e.gid,
	                              .nlink = e.nlink,
	                              .rdev = e.rdev,
	                              .size = e.size,
	                              .atime_ns = e.atime_ns,
	                              .mtime_ns = e.mtime_ns,
	                              .ctime_ns = e.ctime_ns},
	                     .parent = e.parent,
	                     .name = e.name,
	                     .name_len = e.name_len,
	                     .data = !e.aux && !e.xbase && e.inl == e.data_len ? e.data
	                                                                       : NULL,
	                     .data_len = e.data_len,
	                     .extents = e.xbase ? SLAB_EXT_YES : 0};

	return fn(ctx, e.handle, &o);
}

static int rc_pass2(struct recov *rc, slab_recover_fn fn, void *ctx)
{
	struct rent *lv = rc->live.v;
	size_t i = 0;
	int ret = 0;

	/* records known from the checkpoint need no read: visited first, in
	 * any order; only the scanned ones are sorted by place */
	size_t n = 0;

	for (size_t k = 0; k < rc->live.n && !ret; k++) {
		if (lv[k].meta)
			ret = ck_visit(rc, &lv[k], fn, ctx);
		else
			lv[n++] = lv[k];
	}
	rc->live.n = n;
	rvec_sort(&rc->live, loc_cmp);
	lv = rc->live.v;
	while (i < rc->live.n && !ret) {
		uint32_t z = lv[i].zone;
		struct slab_zscan zs;
		struct slab_page_hdr ph;
		const uint8_t *pg;
		uint64_t poff;

		ret = slab_zscan_init(&zs, rc->st->dev, z, rc->scan_end[z]);
		zs.pos = rc->scan_start[z];
		for (;;) {
			while (!ret && i < rc->live.n && lv[i].zone == z &&
			       (ret = slab_zscan_next(&zs, &pg, &ph, &poff)) > 0) {
				ret = 0;
				while (!ret && i < rc->live.n && lv[i].zone == z &&
				       lv[i].off < poff + ph.used) {
					uint32_t in = (uint32_t)(lv[i].off - poff);

					ret = rc_visit(rc, &ph, pg + in, ph.used - in,
					               &lv[i], fn, ctx);
					i++;
				}
			}
			/* fsck: pass 1 went on after a damaged page; so does this */
			if (ret || !zs.torn || !rc->st->check || i >= rc->live.n ||
			    lv[i].zone != z)
				break;
			ret = pass2_skip(rc, &zs);
			if (ret <= 0)
				break;
			ret = 0;
		}
		slab_zscan_fini(&zs);
		if (ret < 0 || ret > 0)
			break;
		/* Records past the scan end cannot be live: skip. */
		while (i < rc->live.n && lv[i].zone == z)
			i++;
	}
	return ret;
}

/* Epochs found without their marker record get one. */
static int rc_markers(struct slab_store *st)
{
	for (uint32_t s = 1; s < st->neslots; s++) {
		struct slab_epoch *e = st->etab[s];
		struct slab_slot *m;
		int ret = 0;

		pthread_mutex_lock(&e->lock);
		m = e->state == EPOCH_OPEN ? slab_slot_get(e, 0) : NULL;
		if (m && m->loc.zone == SLAB_LOC_NONE) {
			struct slab_rec r = {
			    .rtype = SLAB_REC_EPOCH,
			    .handle = slab_handle_make(slab_epoch_id(s, e->gen), 0, 0),
			    .seq = atomic_fetch_add(&st->seq, 1)};

			ret = slab_page_append(st, e, &r, true, &m->loc);
			m->len = SLAB_REC_HDR;
			m->state = SLOT_LIVE;
		}
		pthread_mutex_unlock(&e->lock);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- store lifetime --------------------------------------------------------- */

int slab_store_alloc(struct zns_dev *dev, struct slab_store **out)
{
	struct slab_store *st = calloc(1, sizeof(*st));
	pthread_condattr_t ca;

	if (!st)
		return -ENOMEM;
	st->etab = calloc(SLAB_EPOCH_SLOTS, sizeof(*st->etab));
	if (!st->etab) {
		free(st);
		return -ENOMEM;
	}
	st->dev = dev;
	st->geo = *zns_geometry(dev);
	st->check_resets = getenv("TSLAB_CHECK_RESETS") != NULL;
	pthread_mutex_init(&st->elock, NULL);
	pthread_mutex_init(&st->zlock, NULL);
	pthread_mutex_init(&st->dlock, NULL);
	pthread_mutex_init(&st->slock, NULL);
	pthread_mutex_init(&st->bglock, NULL);
	pthread_mutex_init(&st->gclock, NULL);
	pthread_mutex_init(&st->dmglock, NULL);
	pthread_mutex_init(&st->sblock, NULL);
	pthread_rwlock_init(&st->iolock, NULL);
	pthread_cond_init(&st->scond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->bgcond, &ca);
	pthread_cond_init(&st->spacecond, &ca);
	pthread_condattr_destroy(&ca);
	/* Without memory for it the store just runs uncached. */
	if (slab_rcache_new(SLAB_RCACHE_BYTES, &st->rcache))
		st->rcache = NULL;
	*out = st;
	return 0;
}

void slab_store_free(struct slab_store *st)
{
	if (!st)
		return;
	for (uint32_t s = 0; s < st->neslots; s++) {
		struct slab_epoch *e = st->etab[s];

		if (!e)
			continue;
		slab_epoch_free_contents(e);
		pthread_mutex_destroy(&e->lock);
		free(e);
	}
	free(st->etab);
	for (uint32_t z = 0; st->zones && z < st->nzones; z++)
		pthread_mutex_destroy(&st->zones[z].wlock);
	free(st->zones);
	for (uint32_t i = 0; i < st->ndrops; i++)
		free(st->drops[i].ez);
	free(st->drops);
	free(st->dirty);
	free(st->ck);
	zns_buf_free(st->jbuf);
	pthread_mutex_destroy(&st->elock);
	pthread_mutex_destroy(&st->zlock);
	pthread_mutex_destroy(&st->dlock);
	pthread_mutex_destroy(&st->slock);
	pthread_mutex_destroy(&st->bglock);
	pthread_mutex_destroy(&st->gclock);
	pthread_mutex_destroy(&st->dmglock);
	pthread_mutex_destroy(&st->sblock);
	free(st->dmg);
	pthread_rwlock_destroy(&st->iolock);
	pthread_cond_destroy(&st->scond);
	pthread_cond_destroy(&st->bgcond);
	pthread_cond_destroy(&st->spacecond);
	slab_rcache_free(st->rcache);
	free(st);
}

static uint32_t active_budget(const struct zns_geometry *g)
{
	uint32_t lim = g->max_active;

	if (g->max_open && (!lim || g->max_open < lim))
		lim = g->max_open;
	if (!lim)
		return 16;
	/* one superblock zone and one journal zone are active too */
	return lim > 3 ? lim - 2 : 1;
}

/* Superblock, geometry and the zone table. */
static int mount_layout(struct slab_store *st, struct zns_zone **zr)
{
	struct slab_ckpt_ref *ref = malloc(sizeof(*ref));
	bool has_ref = false;
	int ret;

	if (!ref)
		return -ENOMEM;
	ret = slab_sb_read_ckpt(st->dev, &st->sb, ref, &has_ref);
	if (ret || !has_ref) {
		free(ref);
	} else {
		st->ck = ref;
		st->ck_last = ref->seq;
	}
	if (!ret && !has_ref && (st->sb.features_compat & SLAB_FEAT_COMPAT_CKPT))
		syslog(LOG_WARNING,
		       "tslabfs: slab: malformed checkpoint reference ignored");
	if (ret)
		return ret;
	uint64_t unknown = st->sb.features_ro_compat & ~SLAB_FEAT_RO_COMPAT_KNOWN;

	if (unknown && !st->ro) {
		syslog(LOG_WARNING,
		       "tslabfs: slab: unknown read-only compatible features 0x%llx "
		       "(a newer tslabfs wrote this filesystem): mounting read-only",
		       (unsigned long long)unknown);
		st->ro = true;
	}
	if ((st->sb.features_ro_compat & SLAB_FEAT_RO_COMPAT_ERROR) && !st->check &&
	    !st->ro) {
		syslog(LOG_WARNING,
		       "tslabfs: slab: the filesystem has errors (damage found "
		       "earlier): mounting read-only; run fsck.tslabfs");
		st->ro = true;
	}
	st->nzones = st->geo.nr_zones;
	st->first_data = st->sb.first_data_zone;
	st->nr_journal = st->sb.journal_zones;
	st->reserve = st->sb.reserve_zones;
	st->budget = active_budget(&st->geo);
	st->zones = calloc(st->nzones, sizeof(*st->zones));
	*zr = calloc(st->nzones, sizeof(**zr));
	if (!st->zones || !*zr)
		return -ENOMEM;
	for (uint32_t z = 0; z < st->nzones; z++) {
		pthread_mutex_init(&st->zones[z].wlock, NULL);
		st->zones[z].state = z < st->first_data ? ZS_META : ZS_FREE;
	}
	for (uint32_t z = 0; z < st->nzones; z += 256) {
		uint32_t n = st->nzones - z < 256 ? st->nzones - z : 256;

		if (slab_dev_report(st, z, n, *zr + z) != (int)n)
			return -EIO;
	}
	for (uint32_t j = 0; j < st->nr_journal; j++)
		st->jwp[j] = (*zr)[SLAB_JOURNAL_FIRST + j].wp;
	return 0;
}

static int recov_alloc(struct recov *rc, struct slab_store *st)
{
	memset(rc, 0, sizeof(*rc));
	rc->st = st;
	rc->scan_end = calloc(st->nzones, sizeof(*rc->scan_end));
	rc->scan_start = calloc(st->nzones, sizeof(*rc->scan_start));
	rc->torn = calloc(st->nzones, sizeof(*rc->torn));
	rc->reset_ok = calloc(st->nzones, sizeof(*rc->reset_ok));
	rc->ckzone = calloc(st->nzones, sizeof(*rc->ckzone));
	rc->egen_seen = malloc(SLAB_EPOCH_SLOTS * sizeof(*rc->egen_seen));
	rc->ck_wp = calloc(st->nzones, sizeof(*rc->ck_wp));
	if (!rc->scan_end || !rc->scan_start || !rc->torn || !rc->reset_ok ||
	    !rc->ckzone || !rc->egen_seen || !rc->ck_wp)
		return -ENOMEM;
	rc->slot_bound = slab_slot_bound(st);
	memset(rc->egen_seen, 0xff, SLAB_EPOCH_SLOTS * sizeof(*rc->egen_seen));
	return 0;
}

static void recov_free(struct recov *rc)
{
	free(rc->recs.v);
	free(rc->drops.v);
	free(rc->live.v);
	free(rc->dzones.v);
	free(rc->ezones.v);
	free(rc->damage.v);
	free(rc->ck_wp);
	free(rc->scan_end);
	free(rc->scan_start);
	free(rc->torn);
	free(rc->reset_ok);
	free(rc->ckzone);
	slab_ckpt_img_free(&rc->img);
	free(rc->egen_seen);
}

/* ---- starting from a checkpoint ---------------------------------------------- */

/* Is data zone Z unchanged since the checkpoint (same first page, not
 * rewound)? Then its records below the recorded write pointer are known. */
static int ck_zone_same(struct recov *rc, const struct zns_zone *zr, uint32_t z,
                        bool *same)
{
	struct slab_ckpt_zone cz;
	uint64_t pseq;
	int ret;

	*same = false;
	slab_ckpt_zone_get(&rc->img, z, &cz);
	if (!cz.wp || rc->ckzone[z] || zr[z].cond == ZNS_COND_EMPTY ||
	    zr[z].cond == ZNS_COND_OFFLINE || zr[z].cond == ZNS_COND_NOT_WP ||
	    (zr[z].wp < cz.wp && zr[z].cond != ZNS_COND_FULL))
		return 0;
	ret = slab_ckpt_first_pseq(rc->st->dev, z, &pseq);
	if (ret)
		return ret;
	if (pseq && pseq == cz.first_pseq) {
		*same = true;
		rc->scan_start[z] = cz.wp;
		rc->scan_end[z] = cz.wp;
		if (pseq > rc->max_page_seq)
			rc->max_page_seq = pseq;
	}
	return 0;
}

static bool ck_trusted(const struct recov *rc, uint32_t z, uint64_t off, uint32_t len)
{
	return z >= rc->st->first_data && z < rc->st->nzones &&
	       off + len <= rc->scan_start[z];
}

/* Checkpoint entries in unchanged parts become records, as if scanned. */
static int ck_inject(struct recov *rc)
{
	const struct slab_ckpt_img *img = &rc->img;
	struct slab_ckpt_ent e;
	size_t pos = img->ent_off, at = pos;
	int ret;

	while ((ret = slab_ckpt_next(img, &pos, &e)) > 0) {
		bool drop = e.rtype == SLAB_REC_DROP;
		struct rent x = {.handle = e.handle,
		                 .seq = e.seq,
		                 .aux = e.aux,
		                 .xbase = e.xbase,
		                 .zone = e.zone,
		                 .off = e.off,
		                 .len = e.len,
		                 .rtype = e.rtype,
		                 .kind = e.kind,
		                 .meta = (uint32_t)at + 1};

		at = pos;
		see_epoch(rc, drop ? (uint32_t)e.aux : slab_handle_epoch(e.handle));
		for (uint32_t i = 0; i < e.nz; i++) {
			struct rent p = {.handle =
			                     drop ? e.aux : slab_handle_epoch(e.handle),
			                 .zone = tslab_get32(e.zl + 4 * i)};

			/* only zones unchanged since still hold those records */
			if (p.zone < rc->st->nzones && rc->scan_start[p.zone] &&
			    (ret = rvec_push(drop ? &rc->dzones : &rc->ezones, &p)))
				return ret;
		}
		if (!ck_trusted(rc, e.zone, e.off, e.len))
			continue;
		ret = rvec_push(drop ? &rc->drops : &rc->recs, &x);
		if (ret)
			return ret;
	}
	return ret;
}

/* Zones of the checkpoint, unchanged zones, entries, generations, sequences. */
static int ck_start(struct recov *rc, const struct zns_zone *zr)
{
	struct slab_store *st = rc->st;
	const struct slab_ckpt_img *img = &rc->img;
	bool same;
	int ret;

	for (uint32_t i = 0; i < st->ck->nzones; i++)
		rc->ckzone[st->ck->zones[i]] = true;
	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		ret = ck_zone_same(rc, zr, z, &same);
		if (ret)
			return ret;
		/* fsck reads every zone whole; what the checkpoint saw written
		 * must still be there (a zeroed tail is not unwritten space) */
		if (same && st->check) {
			rc->ck_wp[z] = rc->scan_start[z];
			rc->scan_start[z] = rc->scan_end[z] = 0;
		}
	}
	ret = ck_inject(rc);
	if (ret)
		return ret;
	for (uint32_t s = 0; s < img->neslots; s++)
		if (img->egen[s])
			see_epoch(rc, slab_epoch_id(s, (uint8_t)(img->egen[s] - 1)));
	if (img->seq && img->seq - 1 > rc->max_seq)
		rc->max_seq = img->seq - 1;
	if (img->page_seq && img->page_seq - 1 > rc->max_page_seq)
		rc->max_page_seq = img->page_seq - 1;
	st->ck_loaded = true;
	return 0;
}

/* Load the checkpoint the superblock names; on failure mount scans all. */
static void ck_load(struct recov *rc, const struct slab_mount_opts *o)
{
	struct slab_store *st = rc->st;
	int ret;

	if (!st->ck || (o && o->no_checkpoint))
		return;
	ret = slab_ckpt_load(st, st->ck, &rc->img);
	st->ck_error = ret;
	if (ret) {
		syslog(
		    LOG_WARNING,
		    "tslabfs: slab: checkpoint %llu unusable (%s): scanning every zone",
		    (unsigned long long)st->ck->seq, strerror(-ret));
		return;
	}
	rc->use_ck = true;
}

/*
 * After recovery of a writable mount: a checkpoint not used is forgotten
 * (its zones were scanned as data and are reset as dead); one in use is kept
 * as the base for the next mount (a crash then replays only what was
 * written since) unless live data leaves GC less than reserve + 4 zones of
 * room without the checkpoint's zones.
 */
static int ck_settle(struct recov *rc)
{
	struct slab_store *st = rc->st;

	if (!st->ck)
		return 0;
	if (!rc->use_ck) {
		free(st->ck);
		st->ck = NULL;
		st->sb.sequence++;
		return slab_sb_write(st->dev, &st->sb);
	}
	if (!slab_ckpt_room(st, st->ck->nzones))
		return slab_ckpt_release(st); /* GC needs the room */
	return 0;
}

/* A store formatted before FDATA existed gets the incompatible bit before
 * the first FDATA record can be written: older software must refuse it. */
static int fdata_feature(struct slab_store *st)
{
	if (st->sb.features_incompat & SLAB_FEAT_INCOMPAT_FDATA)
		return 0;
	st->sb.features_incompat |= SLAB_FEAT_INCOMPAT_FDATA;
	st->sb.sequence++;
	return slab_sb_write_ckpt(st->dev, &st->sb, st->ck);
}

/* Pass 1 and the decisions; leaves the store ready for pass 2. */
static int mount_recover(struct recov *rc, const struct zns_zone *zr)
{
	struct slab_store *st = rc->st;
	int ret = 0;

	if (!rc_epoch(rc, SLAB_EPOCH_ROOT, &ret))
		return ret ? ret : -EIO;
	if (rc->use_ck && (ret = ck_start(rc, zr)))
		return ret;
	for (uint32_t z = SLAB_JOURNAL_FIRST; z < st->nzones; z++) {
		if (zr[z].cond == ZNS_COND_OFFLINE || zr[z].cond == ZNS_COND_NOT_WP ||
		    !zr[z].wp || rc->ckzone[z])
			continue;
		ret = scan_zone(rc, z, zr[z].wp, zr[z].cond == ZNS_COND_FULL);
		if (!ret && rc->ck_wp[z] && rc->scan_end[z] < rc->ck_wp[z])
			ret = ck_short(rc, z);
		if (ret)
			return ret;
		if (zr[z].wp > rc->scan_start[z])
			st->ck_replayed += zr[z].wp - rc->scan_start[z];
	}
	/* Before anything is decided or written (no zone is finished). */
	ret = rc_damage(rc);
	if (ret)
		return ret;
	if (rc->damage.n && !st->check) {
		syslog(LOG_ERR,
		       "tslabfs: slab: %zu damaged place(s) found: not mounting (the "
		       "newest versions there cannot be read); run fsck.tslabfs",
		       rc->damage.n);
		slab_error_mark_set(st);
		return -EUCLEAN;
	}
	drops_dedupe(rc);
	ret = rc_decide(rc);
	if (!ret)
		ret = rc_ezones(rc);
	if (ret)
		return ret;
	rc_zones(rc, zr);
	ret = rc_drops(rc);
	if (ret)
		return ret;
	atomic_store(&st->seq, rc->max_seq + 1);
	atomic_store(&st->page_seq, rc->max_page_seq + 1);
	return rc_epochs(rc);
}

int slab_mount(struct zns_dev *dev, const struct slab_mount_opts *o, slab_recover_fn fn,
               void *ctx, struct slab_store **out)
{
	struct slab_store *st;
	struct zns_zone *zr = NULL;
	struct recov rc;
	int ret;

	if (!dev || !out)
		return -EINVAL;
	ret = slab_store_alloc(dev, &st);
	if (ret)
		return ret;
	st->ro = o && o->read_only;
	st->mounted_ro = st->ro;
	st->check = o && o->check;
	st->commit_ms = o && o->commit_ms ? o->commit_ms : 5000;
	ret = mount_layout(st, &zr);
	if (ret)
		goto fail_store;
	ret = recov_alloc(&rc, st);
	if (ret)
		goto fail_recov;
	ck_load(&rc, o);
	/* What we are about to read must outlive a later power cut. */
	if (!st->ro && (ret = zns_flush(dev)))
		goto fail_recov;
	ret = mount_recover(&rc, zr);
	if (ret)
		goto fail_recov;
	if (!st->ro) {
		ret = ck_settle(&rc);
		if (!ret)
			ret = fdata_feature(st);
		if (ret)
			goto fail_recov;
		/* fsck resets nothing before it has dropped what is damaged */
		if (!st->check)
			rc_reset_dead(&rc);
	}
	slab_space_recount(st); /* before the callbacks, which may free */
	ret = rc_pass2(&rc, fn, ctx);
	if (ret)
		goto fail_recov;
	if (!st->ro) {
		ret = rc_markers(st);
		if (!ret)
			ret = slab_journal_cycle(st, true);
		if (ret)
			goto fail_recov;
		slab_drops_retire(st);
		ret = slab_bg_start(st);
		if (ret)
			goto fail_recov;
	}
	recov_free(&rc);
	free(zr);
	*out = st;
	return 0;

fail_recov:
	recov_free(&rc);
fail_store:
	free(zr);
	slab_store_free(st);
	return ret;
}

int slab_unmount(struct slab_store *st)
{
	int ret = 0;

	if (!st)
		return -EINVAL;
	slab_bg_stop(st);
	if (!st->ro)
		ret = slab_sync_all(st, true);
	if (!ret && !st->ro)
		slab_ckpt_write(st, false); /* optional: else the next mount scans */
	slab_store_free(st);
	return ret;
}

void slab_counters_get(struct slab_store *st, struct slab_counters *out)
{
	uint64_t live = 0, written = 0;

	pthread_mutex_lock(&st->zlock);
	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		live += atomic_load(&st->zones[z].live);
		written += st->zones[z].wp;
	}
	pthread_mutex_unlock(&st->zlock);
	out->objects = atomic_load(&st->c_objects);
	out->bytes_live = live;
	out->bytes_dead = written > live ? written - live : 0;
	out->pages_written = atomic_load(&st->c_pages);
	out->journal_writes = atomic_load(&st->c_jwrites);
	out->zone_resets = atomic_load(&st->c_resets);
	out->gc_runs = atomic_load(&st->c_gc_runs);
	out->gc_bytes_moved = atomic_load(&st->c_gc_moved);
	out->user_bytes_written = atomic_load(&st->c_user);
	out->device_bytes_written = atomic_load(&st->c_dev);
	out->slow_path_hits = atomic_load(&st->c_slow);
}
