// SPDX-License-Identifier: MIT
/*
 * Store state, epochs and their object slot tables, and the object API.
 *
 * Ownership and invariants
 *   - st->etab[eslot] is set once and never freed before unmount; an epoch
 *     struct is reused by the next generation of its slot. Lookups read the
 *     pointer without a lock, then take the epoch lock and check gen/state.
 *   - A record is live iff the slot (or chunk table, epoch marker, drop entry)
 *     that names it points at its location. Every record is counted in its
 *     zone's live bytes from the moment its page is written until its slot
 *     points elsewhere (slab_loc_kill()).
 *   - Slot tables grow geometrically (256, 256, 512, ... 32768 slots, then
 *     65536 per chunk), so a slot lookup is O(1) and a drop frees O(chunks).
 *
 * Locks: the lock rules (what each lock guards, the order) are in
 * slab_int.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "slab/slab_int.h"

/* ---- slot table ---------------------------------------------------------- */

static void slot_index(uint32_t s, uint32_t *chunk, uint32_t *idx, uint32_t *csize)
{
	if (s < 256) {
		*chunk = 0;
		*idx = s;
		*csize = 256;
	} else if (s < 65536) {
		unsigned p = 31u - (unsigned)__builtin_clz(s);

		*chunk = p - 7;
		*idx = s - (1u << p);
		*csize = 1u << p;
	} else {
		*chunk = 8 + (s >> 16);
		*idx = s & 0xffffu;
		*csize = 65536;
	}
}

/*
 * Slot chunks of SLOT_HUGE bytes (65536 slots) are mapped 2 MiB-aligned and
 * marked MADV_HUGEPAGE, so an epoch of a million objects holds its slot
 * table in 16 huge pages and a drop unmaps it in 16 cheap munmap calls
 * instead of returning 8192 small pages one by one. Chunks from SLOT_MMAP
 * up (all of them with the current geometry: the smallest is 256 slots,
 * 8 KiB) are mapped directly too, so that a drop returns the slot table to
 * the system whatever the malloc heap looks like. From malloc, chunks of
 * 128 KiB and more were mmapped by glibc, but freeing one raises its
 * dynamic mmap threshold, after which the next epoch's tables came from the
 * heap and stayed there after its drop (measured: +1.8 MiB RSS from the
 * 2nd create/fill 100k/drop cycle on); smaller ones fragmented the heap.
 */
#define SLOT_HUGE ((size_t)2 << 20)
#define SLOT_MMAP ((size_t)8 << 10)

static size_t slot_chunk_bytes(uint32_t n)
{
	return (size_t)n * sizeof(struct slab_slot);
}

static struct slab_slot *slot_chunk_alloc(uint32_t n)
{
	size_t len = slot_chunk_bytes(n);
	struct slab_slot *c;

	if (len < SLOT_MMAP) {
		c = malloc(len);
	} else if (len < SLOT_HUGE) {
		c = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		         -1, 0);
		if (c == MAP_FAILED)
			return NULL;
	} else {
		uint8_t *m = mmap(NULL, len + SLOT_HUGE, PROT_READ | PROT_WRITE,
		                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED)
			return NULL;
		uintptr_t a =
		    ((uintptr_t)m + SLOT_HUGE - 1) & ~(uintptr_t)(SLOT_HUGE - 1);
		size_t head = a - (uintptr_t)m;

		if (head)
			munmap(m, head);
		munmap((uint8_t *)a + len, SLOT_HUGE - head);
		c = (struct slab_slot *)a;
		madvise(c, len, MADV_HUGEPAGE);
	}
	if (!c)
		return NULL;
	memset(c, 0, len);
	for (uint32_t j = 0; j < n; j++)
		c[j].loc.zone = SLAB_LOC_NONE;
	return c;
}

static void slot_chunk_free(struct slab_slot *c, uint32_t n)
{
	size_t len = slot_chunk_bytes(n);

	if (len < SLOT_MMAP)
		free(c);
	else if (c)
		munmap(c, len);
}

/* Number of slots in chunk K of a slot directory. */
static uint32_t chunk_slots(uint32_t k)
{
	uint32_t first = k == 0 ? 0 : (k <= 8 ? 128u << k : (k - 8) << 16), c, i, n;

	slot_index(first, &c, &i, &n);
	return n;
}

struct slab_slot *slab_slot_get(struct slab_epoch *e, uint32_t slot)
{
	uint32_t c, i, n;

	if (slot >= e->nslots)
		return NULL;
	slot_index(slot, &c, &i, &n);
	return &e->sdir[c][i];
}

int slab_slot_grow(struct slab_epoch *e, uint32_t nslots)
{
	uint32_t c, i, n;

	if (nslots <= e->nslots)
		return 0;
	slot_index(nslots - 1, &c, &i, &n);
	if (c >= e->sdir_n) {
		struct slab_slot **d = realloc(e->sdir, (c + 1) * sizeof(*d));

		if (!d)
			return -ENOMEM;
		e->sdir = d;
		for (uint32_t k = e->sdir_n; k <= c; k++) {
			d[k] = slot_chunk_alloc(chunk_slots(k));
			if (!d[k]) {
				e->sdir_n = k;
				return -ENOMEM;
			}
		}
		e->sdir_n = c + 1;
	}
	e->nslots = nslots;
	return 0;
}

/* ---- epochs -------------------------------------------------------------- */

int slab_epoch_init_slot(struct slab_store *st, uint32_t eslot)
{
	struct slab_epoch *e;

	if (st->etab[eslot])
		return 0;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	pthread_mutex_init(&e->lock, NULL);
	e->eslot = eslot;
	e->cur_zone = e->wzone = SLAB_LOC_NONE;
	e->state = EPOCH_FREE;
	st->etab[eslot] = e;
	if (eslot >= st->neslots)
		st->neslots = eslot + 1;
	return 0;
}

/* Give a FREE epoch struct what an open epoch needs (epoch lock held). */
static int epoch_setup(struct slab_epoch *e)
{
	e->arena = slab_arena_new();
	if (!e->arena)
		return -ENOMEM;
	if (slab_page_init(&e->page) || slab_slot_grow(e, 1)) {
		slab_epoch_free_contents(e);
		return -ENOMEM;
	}
	e->free_head = e->free_tail = 0;
	e->objects = e->pages = 0;
	e->cur_zone = e->wzone = SLAB_LOC_NONE;
	e->journaled = false;
	e->sealed = false;
	return 0;
}

void slab_grave_free(struct slab_grave *g)
{
	slab_arena_destroy(g->arena);
	for (uint32_t k = 0; k < g->sdir_n; k++)
		slot_chunk_free(g->sdir[k], chunk_slots(k));
	free(g->sdir);
	zns_buf_free(g->pagebuf);
}

/* Detach the epoch's arena, slot directory and page buffer into G. */
static void epoch_bury(struct slab_epoch *e, struct slab_grave *g)
{
	*g = (struct slab_grave){.arena = e->arena,
	                         .sdir = e->sdir,
	                         .sdir_n = e->sdir_n,
	                         .pagebuf = e->page.buf};
	e->arena = NULL;
	e->sdir = NULL;
	e->sdir_n = e->nslots = 0;
	e->page.buf = NULL;
}

void slab_epoch_free_contents(struct slab_epoch *e)
{
	struct slab_grave g;

	epoch_bury(e, &g);
	slab_grave_free(&g);
	free(e->ez);
	e->ez = NULL;
	e->ez_n = e->ez_cap = 0;
}

/* Look up an open epoch and return it locked, or NULL. */
struct slab_epoch *slab_epoch_lock(struct slab_store *st, uint32_t epoch)
{
	uint32_t s = slab_eslot(epoch);
	struct slab_epoch *e;

	if (s >= SLAB_EPOCH_SLOTS)
		return NULL;
	e = __atomic_load_n(&st->etab[s], __ATOMIC_ACQUIRE);
	if (!e)
		return NULL;
	pthread_mutex_lock(&e->lock);
	if (e->gen != slab_egen(epoch) || e->state != EPOCH_OPEN) {
		pthread_mutex_unlock(&e->lock);
		return NULL;
	}
	return e;
}

static uint32_t epoch_id(const struct slab_epoch *e)
{
	return slab_epoch_id(e->eslot, e->gen);
}

void slab_dirty_add(struct slab_store *st, struct slab_epoch *e)
{
	if (e->dirty)
		return;
	pthread_mutex_lock(&st->dlock);
	if (st->ndirty == st->dirty_cap) {
		uint32_t ncap = st->dirty_cap ? st->dirty_cap * 2 : 64;
		uint32_t *n = realloc(st->dirty, ncap * sizeof(*n));

		if (!n) {
			/* The commit tick and unmount also visit every epoch. */
			pthread_mutex_unlock(&st->dlock);
			return;
		}
		st->dirty = n;
		st->dirty_cap = ncap;
	}
	st->dirty[st->ndirty++] = e->eslot;
	e->dirty = true;
	pthread_mutex_unlock(&st->dlock);
}

/* Account DELTA live bytes of epoch E in ZONE (generation ZGEN). Epoch lock held. */
int slab_ezone_add(struct slab_epoch *e, uint32_t zone, uint32_t zgen, int64_t delta)
{
	for (uint32_t i = 0; i < e->ez_n; i++) {
		if (e->ez[i].zone != zone)
			continue;
		if (e->ez[i].zgen != zgen) {
			e->ez[i].zgen = zgen;
			e->ez[i].live = 0;
		}
		e->ez[i].live += (uint64_t)delta;
		return 0;
	}
	if (e->ez_n == e->ez_cap) {
		uint32_t ncap = e->ez_cap ? e->ez_cap * 2 : 4;
		struct slab_ezone *n = realloc(e->ez, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		e->ez = n;
		e->ez_cap = ncap;
	}
	e->ez[e->ez_n++] = (struct slab_ezone){zone, zgen, (uint64_t)delta};
	return 0;
}

/* The record at LOC (LEN bytes) of epoch E stopped being live. */
void slab_loc_kill(struct slab_store *st, struct slab_epoch *e, struct slab_loc loc,
                   uint32_t len)
{
	tslab_mutex_assert_held(&e->lock);

	if (loc.zone >= st->nzones || loc.zone < st->first_data)
		return; /* open page, none, or journal: not counted */
	slab_zone_live_sub(st, loc.zone, len);
	for (uint32_t i = 0; i < e->ez_n; i++) {
		if (e->ez[i].zone == loc.zone) {
			e->ez[i].live -= len;
			return;
		}
	}
}

int slab_epoch_create(struct slab_store *st, uint32_t *epoch_out)
{
	struct slab_epoch *e;
	uint32_t s;
	int ret;

	if (!st || !epoch_out)
		return -EINVAL;
	if (st->ro)
		return -EROFS;
	pthread_mutex_lock(&st->elock);
	if (st->efree_head) {
		s = st->efree_head;
		e = st->etab[s];
		st->efree_head = e->next_efree;
		if (!st->efree_head)
			st->efree_tail = 0;
	} else if (st->neslots < SLAB_EPOCH_SLOTS) {
		s = st->neslots;
		ret = slab_epoch_init_slot(st, s);
		if (ret) {
			pthread_mutex_unlock(&st->elock);
			return ret;
		}
		e = st->etab[s];
	} else {
		pthread_mutex_unlock(&st->elock);
		return -ENOSPC;
	}
	pthread_mutex_unlock(&st->elock);

	pthread_mutex_lock(&e->lock);
	ret = epoch_setup(e);
	if (ret)
		goto fail_setup;
	e->state = EPOCH_OPEN;
	struct slab_rec r = {.rtype = SLAB_REC_EPOCH,
	                     .kind = SLAB_EPOCH_KIND_OPEN,
	                     .handle = slab_handle_make(epoch_id(e), 0, 0),
	                     .seq = atomic_fetch_add(&st->seq, 1)};
	struct slab_loc loc;
	struct slab_slot *m = slab_slot_get(e, 0);

	ret = slab_page_append(st, e, &r, false, &loc);
	if (ret) {
		e->state = EPOCH_FREE;
		slab_epoch_free_contents(e);
		goto fail_setup;
	}
	m->loc = loc;
	m->len = (uint16_t)SLAB_REC_HDR;
	m->state = SLOT_LIVE;
	*epoch_out = epoch_id(e);
	pthread_mutex_unlock(&e->lock);
	return 0;

fail_setup:
	pthread_mutex_unlock(&e->lock);
	pthread_mutex_lock(&st->elock);
	e->next_efree = st->efree_head;
	st->efree_head = s;
	if (!st->efree_tail)
		st->efree_tail = s;
	pthread_mutex_unlock(&st->elock);
	return ret;
}

struct slab_arena *slab_epoch_arena(struct slab_store *st, uint32_t epoch)
{
	struct slab_epoch *e = st ? slab_epoch_lock(st, epoch) : NULL;
	struct slab_arena *a;

	if (!e)
		return NULL;
	a = e->arena;
	pthread_mutex_unlock(&e->lock);
	return a;
}

int slab_epoch_stats(struct slab_store *st, uint32_t epoch, struct slab_epoch_stats *out)
{
	struct slab_epoch *e = st ? slab_epoch_lock(st, epoch) : NULL;

	if (!e)
		return -ESTALE;
	memset(out, 0, sizeof(*out));
	out->objects = e->objects;
	out->pages = e->pages;
	pthread_mutex_lock(&st->zlock);
	for (uint32_t i = 0; i < e->ez_n; i++) {
		if (e->ez[i].zgen != st->zones[e->ez[i].zone].gen)
			continue;
		out->live_bytes += e->ez[i].live;
		out->zones++;
	}
	out->sealed = e->sealed;
	pthread_mutex_unlock(&st->zlock);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* ---- objects --------------------------------------------------------------- */

/* Slot of a handed-out handle (ALLOC or LIVE) with its epoch locked, or NULL. */
struct slab_slot *slab_obj_lookup(struct slab_store *st, slab_handle_t h,
                                  struct slab_epoch **ep)
{
	struct slab_epoch *e;
	struct slab_slot *s;

	if (!st || slab_handle_slot(h) == 0)
		return NULL;
	e = slab_epoch_lock(st, slab_handle_epoch(h));
	if (!e)
		return NULL;
	s = slab_slot_get(e, slab_handle_slot(h));
	if (!s || s->gen != slab_handle_gen(h) ||
	    (s->state != SLOT_ALLOC && s->state != SLOT_LIVE)) {
		pthread_mutex_unlock(&e->lock);
		return NULL;
	}
	*ep = e;
	return s;
}

/* Lock EPOCH for a change: 0 with *out locked, -EROFS on a read-only
 * store, -ESTALE if it is not open, 1 (not locked) if it is sealed. */
static int epoch_lock_rw(struct slab_store *st, uint32_t epoch, struct slab_epoch **out)
{
	if (st->ro)
		return -EROFS;
	*out = slab_epoch_lock(st, epoch);
	if (!*out)
		return -ESTALE;
	if ((*out)->sealed) {
		pthread_mutex_unlock(&(*out)->lock);
		return 1;
	}
	return 0;
}

/* The slot of H locked for a change, as obj_lookup(); -EROFS when its epoch
 * is sealed. */
int slab_obj_lookup_rw(struct slab_store *st, slab_handle_t h, struct slab_epoch **ep,
                       struct slab_slot **out)
{
	if (st->ro)
		return -EROFS;
	*out = slab_obj_lookup(st, h, ep);
	if (!*out)
		return -ESTALE;
	if ((*ep)->sealed) {
		pthread_mutex_unlock(&(*ep)->lock);
		return -EROFS;
	}
	return 0;
}

int slab_obj_alloc(struct slab_store *st, uint32_t epoch, slab_handle_t *out)
{
	struct slab_epoch *e;
	struct slab_slot *s;
	uint32_t slot;
	int ret;

	if (!st || !out)
		return -EINVAL;
	ret = epoch_lock_rw(st, epoch, &e);
	if (ret)
		return ret > 0 ? -EROFS : ret;
	if (e->free_head) {
		slot = e->free_head;
		s = slab_slot_get(e, slot);
		e->free_head = s->next_free;
		if (!e->free_head)
			e->free_tail = 0;
	} else {
		slot = e->nslots;
		if (slot == UINT32_MAX || slab_slot_grow(e, slot + 1)) {
			pthread_mutex_unlock(&e->lock);
			return slot == UINT32_MAX ? -ENOSPC : -ENOMEM;
		}
		s = slab_slot_get(e, slot);
	}
	s->state = SLOT_ALLOC;
	s->priv = NULL;
	s->next_free = 0;
	*out = slab_handle_make(epoch, s->gen, slot);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

static void slot_push_free(struct slab_epoch *e, uint32_t slot, struct slab_slot *s)
{
	s->state = SLOT_FREE;
	s->gen++;
	s->priv = NULL;
	s->next_free = 0;
	if (e->free_tail)
		slab_slot_get(e, e->free_tail)->next_free = slot;
	else
		e->free_head = slot;
	e->free_tail = slot;
}

void slab_chunks_kill(struct slab_store *st, struct slab_epoch *e, struct slab_chunks *ch)
{
	for (uint32_t i = 0; i < ch->n; i++) {
		uint32_t clen =
		    SLAB_REC_HDR +
		    (i + 1 < ch->n
		         ? SLAB_CHUNK_MAX
		         : (uint32_t)(ch->total - (uint64_t)i * SLAB_CHUNK_MAX));

		slab_loc_kill(st, e, ch->loc[i], clen);
	}
	slab_arena_free_any(e->arena, ch, sizeof(*ch) + ch->n * sizeof(ch->loc[0]));
}

/* Kill the records of the slot's current version: the head at LOC and CH,
 * the slot's chunk field (a chunk table or a tagged chunk map). */
static void slot_kill_version(struct slab_store *st, struct slab_epoch *e,
                              struct slab_loc loc, uint16_t len, struct slab_chunks *ch)
{
	slab_loc_kill(st, e, loc, len);
	if (!ch)
		return;
	if ((uintptr_t)ch & 1u)
		slab_fmap_destroy(st, e,
		                  (struct slab_fmap *)((uintptr_t)ch & ~(uintptr_t)1));
	else
		slab_chunks_kill(st, e, ch);
}

static void rec_from_obj(struct slab_rec *r, slab_handle_t h, const struct slab_obj *o,
                         uint64_t seq)
{
	memset(r, 0, sizeof(*r));
	r->rtype = SLAB_REC_OBJ;
	r->kind = o->kind;
	r->name_len = o->name_len;
	r->mode = (uint16_t)o->attr.mode;
	r->handle = h;
	r->parent = o->parent;
	r->seq = seq;
	r->mtime_ns = o->attr.mtime_ns;
	r->ctime_ns = o->attr.ctime_ns;
	r->atime_ns = o->attr.atime_ns;
	r->uid = o->attr.uid;
	r->gid = o->attr.gid;
	r->nlink = o->attr.nlink;
	r->rdev = o->attr.rdev;
	r->size = o->attr.size;
	r->name = o->name;
}

/* Append the chunks then the head of a chunked version (epoch lock held). */
static int put_chunked(struct slab_store *st, struct slab_epoch *e, struct slab_slot *s,
                       struct slab_rec *r, const struct slab_obj *o,
                       struct slab_loc *head)
{
	uint32_t n = (uint32_t)((o->data_len + SLAB_CHUNK_MAX - 1) / SLAB_CHUNK_MAX);
	struct slab_chunks *ch =
	    slab_arena_alloc_any(e->arena, sizeof(*ch) + n * sizeof(ch->loc[0]));
	int ret;

	tslab_mutex_assert_held(&e->lock);

	if (!ch)
		return -ENOMEM;
	ch->n = n;
	ch->total = o->data_len;
	for (uint32_t i = 0; i < n; i++)
		ch->loc[i].zone = SLAB_LOC_NONE;
	/* Installed first so that a page written meanwhile finds the chunks. */
	s->chunks = ch;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t off = (uint64_t)i * SLAB_CHUNK_MAX;
		struct slab_rec c = {.rtype = SLAB_REC_CHUNK,
		                     .handle = r->handle,
		                     .parent = i,
		                     .seq = r->seq,
		                     .data = (const uint8_t *)o->data + off};

		c.data_len =
		    (uint16_t)(o->data_len - off < SLAB_CHUNK_MAX ? o->data_len - off
		                                                  : SLAB_CHUNK_MAX);
		ret = slab_page_append(st, e, &c, false, &ch->loc[i]);
		if (ret)
			return ret;
		atomic_fetch_add(&st->c_user, SLAB_REC_HDR + c.data_len);
	}
	r->flags = SLAB_RF_CHUNKED;
	r->total = o->data_len;
	r->data_len = 0;
	return slab_page_append(st, e, r, false, head);
}

/* A slot becomes LIVE with its first version. */
static void slot_set_live(struct slab_store *st, struct slab_epoch *e,
                          struct slab_slot *s)
{
	if (s->state != SLOT_LIVE) {
		s->state = SLOT_LIVE;
		e->objects++;
		atomic_fetch_add(&st->c_objects, 1);
	}
}

/*
 * Append an extents head (epoch lock held). The chunk map stays in place
 * during the append, so that a page written meanwhile relocates its chunks;
 * the previous head, and a chunked predecessor's chunks, die only once the
 * new head is appended. SLAB_EXT_RESET: the head's own sequence number is
 * the new data base and every chunk so far dies with it.
 */
static int put_extents(struct slab_store *st, struct slab_epoch *e, struct slab_slot *s,
                       slab_handle_t h, const struct slab_obj *o)
{
	struct slab_fmap *fm = slab_slot_fmap(s);
	uint64_t old_cost = slab_slot_cost(s);
	struct slab_rec r;
	struct slab_loc loc;
	int ret;

	if (o->data_len)
		return -EINVAL;
	if (!fm) {
		fm = slab_fmap_new(e);
		if (!fm)
			return -ENOMEM;
		fm->legacy = s->chunks;
		fm->dbase = atomic_fetch_add(&st->seq, 1);
		slab_slot_set_fmap(s, fm);
	}
	rec_from_obj(&r, h, o, atomic_fetch_add(&st->seq, 1));
	r.flags = SLAB_RF_EXTENTS;
	r.dbase = o->extents == SLAB_EXT_RESET ? r.seq : fm->dbase;
	ret = slab_page_append(st, e, &r, false, &loc);
	if (ret)
		return ret;
	/* Read only now: a page written during the append may have moved it. */
	slab_loc_kill(st, e, s->loc, s->len);
	slab_fmap_drop_legacy(st, e, fm);
	/* The slot costs its head; the chunks count apart (fdata.c), and a
	 * reset takes theirs away as the map goes. */
	s->cost = slab_cost32(slab_obj_cost(0, o->name_len));
	slab_cost_add(st, e, (int64_t)s->cost - (int64_t)old_cost);
	s->loc = loc;
	s->len = (uint16_t)r.len;
	slot_set_live(st, e, s);
	atomic_fetch_add(&st->c_user, s->len);
	if (o->extents == SLAB_EXT_RESET) {
		slab_fmap_destroy(st, e, fm);
		fm = slab_fmap_new(e);
		if (!fm) {
			/* the map is gone: reads fail until the next reset */
			s->chunks = NULL;
			return -ENOMEM;
		}
		fm->dbase = r.seq;
		slab_slot_set_fmap(s, fm);
	}
	return 0;
}

static int obj_check_args(const struct slab_obj *o)
{
	if (!o || (o->name_len && !o->name) || (o->data_len && !o->data) ||
	    o->attr.mode > 0xffffu || o->data_len > (1ull << 40))
		return -EINVAL;
	return 0;
}

int slab_obj_put(struct slab_store *st, slab_handle_t h, const struct slab_obj *o)
{
	struct slab_epoch *e;
	struct slab_slot *s;
	struct slab_rec r;
	struct slab_loc loc;
	int ret = obj_check_args(o);

	if (ret)
		return ret;
	if (!st)
		return -EINVAL;
	if (st->ro)
		return -EROFS;
	slab_throttle(st);
	ret = slab_obj_lookup_rw(st, h, &e, &s);
	if (ret)
		return ret;
	if (o->extents) {
		ret = put_extents(st, e, s, h, o);
		pthread_mutex_unlock(&e->lock);
		return ret;
	}
	struct slab_chunks *old_ch = s->chunks;
	uint64_t old_cost = slab_slot_cost(s);

	rec_from_obj(&r, h, o, atomic_fetch_add(&st->seq, 1));
	r.data_len = (uint16_t)o->data_len;
	r.data = o->data;
	r.uid = ~o->attr.uid; /* worst case: uid/gid extension present */
	uint32_t rlen = slab_rec_size(&r, o->attr.uid, o->attr.gid);
	bool single = o->data_len <= SLAB_CHUNK_MAX && rlen <= SLAB_REC_MAX;

	/* A big version that does not fit the open page: head + one chunk
	 * (page.c, slab_page_spills), so the open page stays open. */
	if (single && e->page.used + rlen > SLAB_PAGE_SIZE &&
	    slab_page_spills(e, SLAB_REC_HDR + (uint32_t)o->data_len))
		single = false;

	r.uid = o->attr.uid;
	s->chunks = NULL;
	if (single)
		ret = slab_page_append(st, e, &r, false, &loc);
	else
		ret = put_chunked(st, e, s, &r, o, &loc);
	if (ret) {
		/* Records appended so far are dead: nothing points at them. The
		 * chunks already written in pages of their own were counted. */
		if (s->chunks)
			slot_kill_version(st, e, (struct slab_loc){SLAB_LOC_NONE, 0}, 0,
			                  s->chunks);
		s->chunks = old_ch;
		pthread_mutex_unlock(&e->lock);
		return ret;
	}
	/* Read only now: a page written during the append may have moved it. */
	slot_kill_version(st, e, s->loc, s->len, old_ch);
	s->loc = loc;
	s->len = (uint16_t)r.len;
	if (s->state != SLOT_LIVE) {
		s->state = SLOT_LIVE;
		e->objects++;
		atomic_fetch_add(&st->c_objects, 1);
	}
	s->cost = slab_cost32(slab_obj_cost(o->data_len, o->name_len));
	slab_cost_add(st, e, (int64_t)s->cost - (int64_t)old_cost);
	atomic_fetch_add(&st->c_user, s->len);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int slab_obj_free(struct slab_store *st, slab_handle_t h)
{
	struct slab_epoch *e;
	struct slab_slot *s;
	int ret;

	if (!st)
		return -EINVAL;
	if (st->ro)
		return -EROFS;
	slab_throttle(st);
	ret = slab_obj_lookup_rw(st, h, &e, &s);
	if (ret)
		return ret;
	if (s->state == SLOT_LIVE) {
		struct slab_rec r = {.rtype = SLAB_REC_TOMB,
		                     .handle = h,
		                     .seq = atomic_fetch_add(&st->seq, 1)};
		struct slab_loc loc;
		ret = slab_page_append(st, e, &r, false, &loc);
		if (ret) {
			pthread_mutex_unlock(&e->lock);
			return ret;
		}
		uint64_t old_cost = slab_slot_cost(s);

		slot_kill_version(st, e, s->loc, s->len, s->chunks);
		s->chunks = NULL;
		s->loc = loc;
		s->len = SLAB_REC_HDR;
		slab_cost_add(st, e,
		              (int64_t)slab_rec_cost(SLAB_REC_HDR) - (int64_t)old_cost);
		e->objects--;
		atomic_fetch_sub(&st->c_objects, 1);
		atomic_fetch_add(&st->c_user, SLAB_REC_HDR);
	}
	slot_push_free(e, slab_handle_slot(h), s);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int slab_obj_check(struct slab_store *st, slab_handle_t h)
{
	struct slab_epoch *e;

	if (!slab_obj_lookup(st, h, &e))
		return -ESTALE;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int slab_obj_set_priv(struct slab_store *st, slab_handle_t h, void *priv)
{
	struct slab_epoch *e;
	struct slab_slot *s = slab_obj_lookup(st, h, &e);

	if (!s)
		return -ESTALE;
	s->priv = priv;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

int slab_obj_get_priv(struct slab_store *st, slab_handle_t h, void **priv)
{
	struct slab_epoch *e;
	struct slab_slot *s = slab_obj_lookup(st, h, &e);

	if (!s)
		return -ESTALE;
	*priv = s->priv;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* ---- seal ------------------------------------------------------------------ */

/* Replace the epoch marker by a sealed one and write the open page out
 * (epoch lock held). */
static int seal_locked(struct slab_store *st, struct slab_epoch *e, uint32_t epoch)
{
	struct slab_rec r = {.rtype = SLAB_REC_EPOCH,
	                     .kind = SLAB_EPOCH_KIND_SEALED,
	                     .handle = slab_handle_make(epoch, 0, 0),
	                     .seq = atomic_fetch_add(&st->seq, 1)};
	struct slab_slot *m = slab_slot_get(e, 0);
	struct slab_loc loc;
	int ret = slab_page_append(st, e, &r, false, &loc);

	tslab_mutex_assert_held(&e->lock);

	if (ret)
		return ret;
	/* Read only now: a page written during the append may have moved it. */
	slab_loc_kill(st, e, m->loc, m->len);
	m->loc = loc;
	m->len = (uint16_t)r.len;
	e->sealed = true;
	/* Best effort: if this write fails the marker still goes to the
	 * journal with the sync, which reports the device error. */
	if (slab_page_write(st, e, false) == 0)
		slab_zone_release(st, e);
	return 0;
}

int slab_epoch_seal(struct slab_store *st, uint32_t epoch)
{
	struct slab_epoch *e;
	int ret = 0;

	if (!st || slab_eslot(epoch) == 0)
		return -EINVAL;
	ret = epoch_lock_rw(st, epoch, &e);
	if (ret)
		return ret > 0 ? 0 : ret; /* sealed already: nothing to do */
	ret = seal_locked(st, e, epoch);
	pthread_mutex_unlock(&e->lock);
	if (ret)
		return ret;
	return slab_sync_all(st, false);
}

/* ---- drop ------------------------------------------------------------------ */

static struct slab_drop *drop_find(struct slab_store *st, uint32_t epoch)
{
	for (uint32_t i = 0; i < st->ndrops; i++)
		if (st->drops[i].epoch == epoch)
			return &st->drops[i];
	return NULL;
}

/* Append the DROP record to the root epoch and register its drop entry. */
static int drop_record(struct slab_store *st, uint32_t epoch, bool jwait, uint64_t jcycle)
{
	struct slab_epoch *root = slab_epoch_lock(st, SLAB_EPOCH_ROOT);
	struct slab_rec r = {.rtype = SLAB_REC_DROP, .parent = epoch};
	struct slab_loc loc;
	int ret = 0;

	if (!root)
		return -EIO;
	if (st->ndrops == st->drops_cap) {
		uint32_t ncap = st->drops_cap ? st->drops_cap * 2 : 16;
		struct slab_drop *n = realloc(st->drops, ncap * sizeof(*n));

		if (!n) {
			ret = -ENOMEM;
			goto out;
		}
		st->drops = n;
		st->drops_cap = ncap;
	}
	r.seq = atomic_fetch_add(&st->seq, 1);
	/* Registered first so that a page written by the append finds it. */
	st->drops[st->ndrops] = (struct slab_drop){.epoch = epoch,
	                                           .seq = r.seq,
	                                           .loc = {SLAB_LOC_NONE, 0},
	                                           .len = SLAB_REC_HDR,
	                                           .jwait = jwait,
	                                           .jcycle = jcycle};
	st->ndrops++;
	ret = slab_page_append(st, root, &r, false, &loc);
	if (ret) {
		st->ndrops--;
		goto out;
	}
	drop_find(st, epoch)->loc = loc;
	atomic_fetch_add(&st->c_user, SLAB_REC_HDR);
out:
	pthread_mutex_unlock(&root->lock);
	return ret;
}

/* Hand the epoch's DRAM to the background thread (or free it here when
 * there is none, or no memory for the hand-over). */
static void drop_bury(struct slab_store *st, struct slab_epoch *e)
{
	struct slab_grave *g = st->bg_started ? malloc(sizeof(*g)) : NULL;

	if (!g) {
		slab_epoch_free_contents(e);
		return;
	}
	epoch_bury(e, g);
	slab_epoch_free_contents(e);
	pthread_mutex_lock(&st->bglock);
	g->next = st->graves;
	st->graves = g;
	st->reclaim_asked++;
	pthread_cond_signal(&st->bgcond);
	pthread_mutex_unlock(&st->bglock);
}

/* Take the dropped epoch's bytes out of its zones and release its memory.
 * Returns the (zone, zgen) list of zones that still hold its pages. */
static struct slab_ezone *drop_release(struct slab_store *st, struct slab_epoch *e,
                                       uint32_t *nz)
{
	struct slab_ezone *ez = malloc((e->ez_n ? e->ez_n : 1) * sizeof(*ez));
	uint32_t n = 0;

	tslab_mutex_assert_held(&e->lock);

	if (e->cur_zone != SLAB_LOC_NONE)
		slab_zone_detach(st, e);
	pthread_mutex_lock(&st->zlock);
	for (uint32_t i = 0; i < e->ez_n; i++) {
		if (e->ez[i].zgen != st->zones[e->ez[i].zone].gen)
			continue;
		slab_zone_live_sub(st, e->ez[i].zone, e->ez[i].live);
		if (ez)
			ez[n++] = e->ez[i];
	}
	if (!ez)
		n = UINT32_MAX;
	pthread_mutex_unlock(&st->zlock);
	atomic_fetch_sub(&st->c_objects, e->objects);
	slab_cost_add(st, e, -(int64_t)e->cost);
	drop_bury(st, e);
	e->state = EPOCH_DROPPED;
	*nz = n;
	return ez;
}

int slab_epoch_drop(struct slab_store *st, uint32_t epoch)
{
	struct slab_epoch *e;
	struct slab_ezone *ez;
	uint32_t nz;
	int ret;

	if (!st || slab_eslot(epoch) == 0)
		return -EINVAL;
	if (st->ro)
		return -EROFS;
	e = slab_epoch_lock(st, epoch);
	if (!e)
		return -ESTALE;
	/* CLOSING: puts fail and its open page is never written again. */
	e->state = EPOCH_CLOSING;
	bool jwait = e->journaled;
	uint64_t jcycle = e->jlast;

	pthread_mutex_unlock(&e->lock);
	ret = drop_record(st, epoch, jwait, jcycle);
	if (ret) {
		pthread_mutex_lock(&e->lock);
		e->state = EPOCH_OPEN;
		pthread_mutex_unlock(&e->lock);
		return ret;
	}
	/*
	 * The drop record is durable before the epoch's bytes count as dead,
	 * so no sync can reset one of its zones ahead of the record. What is
	 * left is O(zones) and goes to the background thread: the resets (a
	 * sync that finds the zones' live bytes at 0) and freeing the DRAM.
	 */
	ret = slab_sync_all(st, false);
	pthread_mutex_lock(&e->lock);
	ez = drop_release(st, e, &nz);
	pthread_mutex_unlock(&e->lock);

	struct slab_epoch *root = st->etab[0];

	pthread_mutex_lock(&root->lock);
	struct slab_drop *d = drop_find(st, epoch);

	if (nz == UINT32_MAX) {
		/* Out of memory for the zone list: keep the drop record for good. */
		d->jwait = true;
		d->jcycle = UINT64_MAX;
		nz = 0;
	}
	d->ez = ez;
	d->ez_n = nz;
	d->ready = true;
	pthread_mutex_unlock(&root->lock);
	if (!st->bg_started) {
		int r = slab_sync_all(st, false);

		if (!ret)
			ret = r;
	}
	return ret;
}

/* ---- reads ------------------------------------------------------------------- */

/* Location field for chunk IDX (-1: the head record) of a live slot. */
static struct slab_loc *slot_field(struct slab_slot *s, int64_t idx, uint32_t *len)
{
	if (idx < 0) {
		*len = s->len;
		return &s->loc;
	}
	struct slab_chunks *ch = slab_slot_chunks(s);

	if (!ch || (uint64_t)idx >= ch->n)
		return NULL;
	uint64_t off = (uint64_t)idx * SLAB_CHUNK_MAX;
	uint64_t n = ch->total - off;

	*len = SLAB_REC_HDR + (uint32_t)(n < SLAB_CHUNK_MAX ? n : SLAB_CHUNK_MAX);
	return &ch->loc[idx];
}

/*
 * Fetch record IDX of H into OUT and decode it into R. Device reads happen
 * without the epoch lock; the slot is checked again afterwards and the read
 * retried if the record moved meanwhile (GC, overwrite).
 */
static int fetch_rec(struct slab_store *st, slab_handle_t h, int64_t idx, uint8_t *out,
                     struct slab_rec *r)
{
	struct slab_epoch *e;
	struct slab_slot *s;
	struct slab_loc *f, loc;
	uint32_t len = 0;
	int ret = -EIO;

	for (int tries = 0; tries < 16; tries++) {
		s = slab_obj_lookup(st, h, &e);
		if (!s)
			return -ESTALE;
		f = s->state == SLOT_LIVE ? slot_field(s, idx, &len) : NULL;
		if (!f) {
			pthread_mutex_unlock(&e->lock);
			return -ENODATA;
		}
		loc = *f;
		if (loc.zone == SLAB_LOC_OPEN) {
			memcpy(out, e->page.buf + loc.off, len);
			pthread_mutex_unlock(&e->lock);
			ret = 0;
			break;
		}
		pthread_mutex_unlock(&e->lock);
		ret = slab_read_rec(st, loc, len, out);
		s = slab_obj_lookup(st, h, &e);
		if (!s)
			return -ESTALE;
		f = s->state == SLOT_LIVE ? slot_field(s, idx, &len) : NULL;
		bool same = f && f->zone == loc.zone && f->off == loc.off;

		pthread_mutex_unlock(&e->lock);
		if (same)
			break;
		ret = -EAGAIN;
	}
	if (ret)
		return ret == -EAGAIN ? -EIO : ret;
	if (slab_rec_decode(out, len, 0, 0, r) || r->handle != h ||
	    r->rtype != (idx < 0 ? SLAB_REC_OBJ : SLAB_REC_CHUNK) ||
	    (idx >= 0 && r->parent != (uint64_t)idx)) {
		char what[96];

		snprintf(what, sizeof(what), "reading object %#llx (epoch %u)",
		         (unsigned long long)h, slab_handle_epoch(h));
		slab_damage_report(st, loc.zone, loc.off, what);
		return -EUCLEAN;
	}
	return 0;
}

ssize_t slab_obj_read(struct slab_store *st, slab_handle_t h, uint64_t off, void *buf,
                      size_t len)
{
	uint8_t rec[SLAB_REC_MAX];
	struct slab_rec r;
	int ret;

	if (!st || (len && !buf))
		return -EINVAL;
	ret = fetch_rec(st, h, -1, rec, &r);
	if (ret == -ENODATA)
		return 0; /* allocated, never put */
	if (ret)
		return ret;
	if (r.flags & SLAB_RF_EXTENTS)
		return slab_fdata_read_range(st, h, r.size, off, buf, len);
	if (!(r.flags & SLAB_RF_CHUNKED)) {
		if (off >= r.data_len)
			return 0;
		size_t n = r.data_len - off < len ? r.data_len - off : len;

		memcpy(buf, (const uint8_t *)r.data + off, n);
		return (ssize_t)n;
	}
	uint64_t end = off + len < r.total ? off + len : r.total;
	size_t done = 0;

	for (uint64_t pos = off; pos < end;) {
		uint64_t idx = pos / SLAB_CHUNK_MAX, in = pos % SLAB_CHUNK_MAX;
		struct slab_rec c;

		ret = fetch_rec(st, h, (int64_t)idx, rec, &c);
		if (ret)
			return ret == -ENODATA ? -EIO : ret;
		if (in >= c.data_len)
			return -EUCLEAN;
		size_t n = c.data_len - in < end - pos ? c.data_len - in : end - pos;

		memcpy((uint8_t *)buf + done, (const uint8_t *)c.data + in, n);
		done += n;
		pos += n;
	}
	return (ssize_t)done;
}
