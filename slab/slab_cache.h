/* SPDX-License-Identifier: MIT */
/*
 * Private to slab/: the read cache of 4 KiB device blocks (cache.c). The
 * caller decides what may be cached (see cache.c for the invariants).
 */
#ifndef SLAB_CACHE_H
#define SLAB_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct slab_rcache;

/* Default size: 64 MiB, RSS only for blocks read (see docs/design.md). */
#define SLAB_RCACHE_BYTES ((size_t)64 << 20)

/* A cache of about BYTES (rounded down to a power-of-two number of sets);
 * *out is NULL (cache disabled) when BYTES is below one set. */
int slab_rcache_new(size_t bytes, struct slab_rcache **out);
void slab_rcache_free(struct slab_rcache *c);
/* Copy LEN bytes at OFF of block BLK of ZONE (generation GEN) into OUT if
 * cached. */
bool slab_rcache_get(struct slab_rcache *c, uint32_t zone, uint32_t gen, uint32_t blk,
                     uint32_t off, uint32_t len, uint8_t *out);
/* Remember the 4 KiB DATA of block BLK of ZONE (generation GEN). */
void slab_rcache_put(struct slab_rcache *c, uint32_t zone, uint32_t gen, uint32_t blk,
                     const uint8_t *data);
void slab_rcache_stats(const struct slab_rcache *c, uint64_t *hits, uint64_t *misses);

#endif
