/* SPDX-License-Identifier: MIT */
/*
 * Space admission: what every live object costs on the device, what the
 * callers have reserved for versions not put yet, and the limit both must
 * stay under so that everything admitted can always be written.
 *
 * Cost of a record: its length rounded the way the page packer spends a
 * page on it. A record of more than half a page shares its page with at
 * most small records, so it costs a page (plus a head record when its
 * payload may be split off as a chunk, page.c slab_page_spills); a
 * smaller one costs its share
 * of the page when pages hold only records of its size:
 * SLAB_PAGE_SIZE / floor(SLAB_REC_MAX / len). Page tails left by mixed
 * sizes and partial pages written at journal cycles are dead bytes that GC
 * wins back; the headroom zones below are what it needs to do so.
 *
 * Invariants
 *   - st->committed = sum of the costs of every slot's current record(s)
 *     (a live version, or the tombstone of a freed one) and of every FDATA
 *     record an extents object's chunk map names (slab_fent_cost: data or
 *     hole), per epoch in e->cost (epoch lock); a drop subtracts the
 *     epoch's cost at once. A chunk counts from its append (fdata.c) until
 *     it is replaced, punched, or its map destroyed (free, a put of another
 *     kind, SLAB_EXT_RESET); an extents slot's own cost is its head's.
 *   - st->reserved = sum of what callers hold (slab_space_reserve minus
 *     slab_space_release). A caller reserves before accepting a change and
 *     releases once the change is put (the put then counts in committed).
 *   - slab_space_reserve() succeeds only while committed + reserved stays
 *     at most the limit: the data zones minus the GC reserve and the
 *     headroom (slab_space_limit).
 */
#include <errno.h>

#include "slab/slab_int.h"

/* Largest extension area of an OBJ record (every SLAB_RF_* field). */
#define SLAB_REC_EXT_MAX (8u + 8u + 8u + 8u + 4u + 4u + 8u)

uint64_t slab_rec_cost(uint32_t len)
{
	if (!len)
		return 0;
	if (len > SLAB_PAGE_SIZE / 2)
		return SLAB_PAGE_SIZE;
	uint32_t k = SLAB_REC_MAX / len;

	return (SLAB_PAGE_SIZE + k - 1) / k;
}

uint64_t slab_obj_cost(uint64_t data_len, uint32_t name_len)
{
	uint64_t head = SLAB_REC_HDR + SLAB_REC_EXT_MAX + name_len;

	if (data_len <= SLAB_CHUNK_MAX && head + data_len <= SLAB_REC_MAX) {
		/* A chunk of more than half a page may be split off (store.c,
		 * page.c slab_page_spills): a page for it and a head record. */
		if (SLAB_REC_HDR + data_len > SLAB_PAGE_SIZE / 2)
			return SLAB_PAGE_SIZE + slab_rec_cost((uint32_t)head + 8);
		return slab_rec_cost((uint32_t)(head + data_len));
	}
	uint64_t full = data_len / SLAB_CHUNK_MAX, rest = data_len % SLAB_CHUNK_MAX;

	return slab_rec_cost((uint32_t)head) +
	       full * slab_rec_cost(SLAB_REC_HDR + SLAB_CHUNK_MAX) +
	       slab_rec_cost(rest ? SLAB_REC_HDR + (uint32_t)rest : 0);
}

uint64_t slab_fdata_cost(uint32_t len)
{
	return slab_rec_cost(SLAB_REC_HDR + len);
}

/* Cost of a slot's own records as they are: its head (or tombstone) and a
 * chunked head's chunks (mount: the put-time cost of recovered versions is
 * not known). An extents head's chunk records are counted apart
 * (fmap_cost_found): they are not part of the slot's cost. */
static uint64_t slot_cost_found(const struct slab_slot *s)
{
	uint64_t c = s->loc.zone == SLAB_LOC_NONE ? 0 : slab_rec_cost(s->len);
	const struct slab_chunks *ch = slab_slot_chunks(s);

	if (s->state == SLOT_LIVE && ch && ch->n) {
		uint32_t n = ch->n;
		uint64_t last = ch->total - (uint64_t)(n - 1) * SLAB_CHUNK_MAX;

		c += (uint64_t)(n - 1) * slab_rec_cost(SLAB_REC_HDR + SLAB_CHUNK_MAX) +
		     slab_rec_cost(SLAB_REC_HDR + (uint32_t)last);
	}
	return c;
}

uint64_t slab_fent_cost(const struct slab_fent *fe)
{
	return fe->loc.zone == SLAB_LOC_NONE ? 0 : slab_rec_cost(fe->len);
}

/* The chunk records (data and holes) an extents slot's map names. */
static uint64_t fmap_cost_found(const struct slab_slot *s)
{
	struct slab_fmap *fm = s->state == SLOT_LIVE ? slab_slot_fmap(s) : NULL;
	struct slab_fent *fe;
	uint64_t c = 0;

	for (uint64_t i = 0; fm && (fe = slab_fmap_next(fm, &i, false)); i++)
		c += slab_fent_cost(fe);
	return c;
}

/* A live version costs what slab_obj_cost() said when it was put (so a
 * put releases exactly what its caller reserved); a freed slot its
 * tombstone, if any. */
uint64_t slab_slot_cost(const struct slab_slot *s)
{
	if (s->state == SLOT_LIVE)
		return s->cost;
	return s->loc.zone == SLAB_LOC_NONE ? 0 : slab_rec_cost(s->len);
}

uint32_t slab_cost32(uint64_t cost)
{
	return cost > UINT32_MAX ? UINT32_MAX : (uint32_t)cost;
}

void slab_cost_add(struct slab_store *st, struct slab_epoch *e, int64_t delta)
{
	e->cost += (uint64_t)delta;
	atomic_fetch_add(&st->committed, (uint64_t)delta);
}

/* Headroom zones GC needs to win back page tails and dead versions: 1/16
 * of the data zones, at least 2. */
static uint32_t headroom_zones(uint32_t ndata)
{
	return ndata / 16 > 2 ? ndata / 16 : 2;
}

uint64_t slab_space_limit(const struct slab_store *st)
{
	uint32_t ndata = st->nzones - st->first_data;
	uint32_t keep = st->reserve + headroom_zones(ndata);

	return ndata > keep ? (uint64_t)(ndata - keep) * st->geo.zone_capacity : 0;
}

int slab_space_reserve(struct slab_store *st, uint64_t bytes)
{
	uint64_t limit = slab_space_limit(st);
	uint64_t r = atomic_load(&st->reserved);

	if (st->ro)
		return -EROFS;
	do {
		if (atomic_load(&st->committed) + r + bytes > limit)
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak(&st->reserved, &r, r + bytes));
	return 0;
}

void slab_space_charge(struct slab_store *st, uint64_t bytes)
{
	atomic_fetch_add(&st->reserved, bytes);
}

void slab_space_release(struct slab_store *st, uint64_t bytes)
{
	atomic_fetch_sub(&st->reserved, bytes);
}

void slab_space_recount(struct slab_store *st)
{
	uint64_t total = 0;

	for (uint32_t i = 0; i < st->neslots; i++) {
		struct slab_epoch *e = st->etab[i];

		if (!e)
			continue;
		pthread_mutex_lock(&e->lock);
		e->cost = 0;
		for (uint32_t n = 1; e->state == EPOCH_OPEN && n < e->nslots; n++) {
			struct slab_slot *s = slab_slot_get(e, n);
			uint64_t c = slot_cost_found(s);

			if (s->state == SLOT_LIVE)
				s->cost = slab_cost32(c);
			e->cost += c + fmap_cost_found(s);
		}
		total += e->cost;
		pthread_mutex_unlock(&e->lock);
	}
	atomic_store(&st->committed, total);
}

void slab_space_get(struct slab_store *st, struct slab_space *out)
{
	uint64_t cap = st->geo.zone_capacity, live = atomic_load(&st->live_total);
	uint32_t ndata = st->nzones - st->first_data;
	uint64_t used = atomic_load(&st->committed) + atomic_load(&st->reserved);
	uint64_t limit = slab_space_limit(st);

	memset(out, 0, sizeof(*out));
	out->device_bytes = (uint64_t)st->nzones * cap;
	out->total_bytes = (uint64_t)ndata * cap;
	out->free_bytes = out->total_bytes > live ? out->total_bytes - live : 0;
	out->limit_bytes = limit;
	out->used_bytes = used;
	out->avail_bytes = limit > used ? limit - used : 0;
	out->objects = atomic_load(&st->c_objects);
	out->zones_total = ndata;
	out->zones_empty = atomic_load(&st->zones_free);
}
