// SPDX-License-Identifier: MIT
/*
 * Read cache of device blocks.
 *
 * Small objects share pages, so a cold read of one file brings in the page
 * its neighbours live in; keeping that page in DRAM turns the next reads of
 * the same page into copies instead of device reads.
 *
 * Invariants
 *   - Only 4 KiB blocks of data zones that lie wholly below the zone's write
 *     pointer are cached: such a block never changes until the zone is reset.
 *   - An entry is keyed by (zone, zone generation, block). A reset bumps the
 *     zone's generation, so entries of the old contents are never found
 *     again; they age out like any other entry.
 *   - The cache is set-associative: a block maps to one set of WAYS entries;
 *     each set has its own mutex (a leaf lock), held only to look up or copy.
 *   - Its memory is mapped once at mount and holds RSS only for blocks that
 *     were read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "slab/slab_cache.h"

#define WAYS    8u
#define BLK     4096u
#define NOENTRY UINT32_MAX

struct rc_ent {
	uint32_t zone, gen, blk;
	uint32_t stamp; /* per-set use counter, for LRU within the set */
};

struct rc_set {
	pthread_mutex_t lock;
	uint32_t clock;
	struct rc_ent e[WAYS];
};

struct slab_rcache {
	uint32_t nsets; /* power of two */
	struct rc_set *sets;
	uint8_t *mem; /* nsets * WAYS blocks */
	size_t mem_len;
	_Atomic uint64_t hits, misses;
};

int slab_rcache_new(size_t bytes, struct slab_rcache **out)
{
	struct slab_rcache *c;
	uint32_t nsets = 1;

	*out = NULL;
	if (bytes < (size_t)WAYS * BLK)
		return 0; /* disabled */
	while ((size_t)nsets * 2 * WAYS * BLK <= bytes)
		nsets *= 2;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->nsets = nsets;
	c->sets = calloc(nsets, sizeof(*c->sets));
	if (!c->sets)
		goto out_free;
	c->mem_len = (size_t)nsets * WAYS * BLK;
	c->mem = mmap(NULL, c->mem_len, PROT_READ | PROT_WRITE,
	              MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (c->mem == MAP_FAILED)
		goto out_free_sets;
	for (uint32_t s = 0; s < nsets; s++) {
		pthread_mutex_init(&c->sets[s].lock, NULL);
		for (uint32_t w = 0; w < WAYS; w++)
			c->sets[s].e[w].zone = NOENTRY;
	}
	*out = c;
	return 0;
out_free_sets:
	free(c->sets);
out_free:
	free(c);
	return -ENOMEM;
}

void slab_rcache_free(struct slab_rcache *c)
{
	if (!c)
		return;
	for (uint32_t s = 0; s < c->nsets; s++)
		pthread_mutex_destroy(&c->sets[s].lock);
	munmap(c->mem, c->mem_len);
	free(c->sets);
	free(c);
}

static uint32_t set_of(const struct slab_rcache *c, uint32_t zone, uint32_t blk)
{
	uint64_t k = ((uint64_t)zone << 32 | blk) * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(k >> 32) & (c->nsets - 1);
}

static uint8_t *way_mem(const struct slab_rcache *c, uint32_t set, uint32_t way)
{
	return c->mem + ((size_t)set * WAYS + way) * BLK;
}

bool slab_rcache_get(struct slab_rcache *c, uint32_t zone, uint32_t gen, uint32_t blk,
                     uint32_t off, uint32_t len, uint8_t *out)
{
	uint32_t si = set_of(c, zone, blk);
	struct rc_set *s = &c->sets[si];
	bool hit = false;

	pthread_mutex_lock(&s->lock);
	for (uint32_t w = 0; w < WAYS; w++) {
		struct rc_ent *e = &s->e[w];

		if (e->zone == zone && e->gen == gen && e->blk == blk) {
			e->stamp = ++s->clock;
			memcpy(out, way_mem(c, si, w) + off, len);
			hit = true;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_add_explicit(hit ? &c->hits : &c->misses, 1, memory_order_relaxed);
	return hit;
}

void slab_rcache_put(struct slab_rcache *c, uint32_t zone, uint32_t gen, uint32_t blk,
                     const uint8_t *data)
{
	uint32_t si = set_of(c, zone, blk);
	struct rc_set *s = &c->sets[si];
	uint32_t victim = 0;

	pthread_mutex_lock(&s->lock);
	for (uint32_t w = 0; w < WAYS; w++) {
		struct rc_ent *e = &s->e[w];

		if (e->zone == zone && e->gen == gen && e->blk == blk)
			goto out_unlock; /* another reader got here first */
		if (e->zone == NOENTRY) {
			victim = w;
			break;
		}
		if ((int32_t)(e->stamp - s->e[victim].stamp) < 0)
			victim = w;
	}
	memcpy(way_mem(c, si, victim), data, BLK);
	s->e[victim] = (struct rc_ent){zone, gen, blk, ++s->clock};
out_unlock:
	pthread_mutex_unlock(&s->lock);
}

void slab_rcache_stats(const struct slab_rcache *c, uint64_t *hits, uint64_t *misses)
{
	*hits = c ? atomic_load(&c->hits) : 0;
	*misses = c ? atomic_load(&c->misses) : 0;
}
