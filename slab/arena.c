// SPDX-License-Identifier: MIT
/*
 * Size-classed DRAM arena. Blocks are carved from 64 KiB chunks obtained with
 * mmap (so that destroying an arena returns its memory to the system at once)
 * through a small process-wide cache of spare chunks. Freed blocks go on
 * per-class LIFO free lists threaded through the blocks themselves.
 *
 * Size classes: 16..128 in steps of 16, then four classes per power of two
 * (160, 192, 224, 256, 320, ..., 3584, 4096): 28 classes, worst-case rounding
 * 1 - 129/160 = 19.4 %, see docs/design.md for the measured average.
 *
 * Concurrency: one spinlock per arena (an atomic flag), held for a few
 * instructions on the fast path; the chunk cache has its own mutex and is
 * only touched when an arena needs or releases a chunk.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "slab/slab_int.h"

struct big_hdr {
	struct big_hdr *prev, *next;
	size_t size;
	size_t pad; /* keeps the payload 16-byte aligned */
};

struct slab_arena {
	atomic_flag lock;
	void *free[SLAB_ARENA_NCLASS];
	uint8_t *bump, *bump_end;
	void **chunks; /* every chunk, for O(chunks) destroy */
	size_t nchunks, chunks_cap;
	struct big_hdr *big;
	size_t big_bytes;
};

/* Spare chunks kept for the next arena (bounded: at most 4 MiB idle). */
#define CHUNK_CACHE_MAX 64
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static void *chunk_cache[CHUNK_CACHE_MAX];
static unsigned chunk_cache_n;

static void arena_lock(struct slab_arena *a)
{
	unsigned spins = 0;

	while (atomic_flag_test_and_set_explicit(&a->lock, memory_order_acquire)) {
		if (++spins > 64) {
			sched_yield();
			spins = 0;
		}
	}
}

static void arena_unlock(struct slab_arena *a)
{
	atomic_flag_clear_explicit(&a->lock, memory_order_release);
}

unsigned slab_arena_class(size_t size)
{
	if (size <= 128)
		return size ? (unsigned)((size + 15) / 16 - 1) : 0;
	unsigned p = 63u - (unsigned)__builtin_clzll((unsigned long long)(size - 1));
	size_t step = (size_t)1 << (p - 2);
	unsigned idx = (unsigned)((size - 1 - ((size_t)1 << p)) / step);

	return 8 + (p - 7) * 4 + idx;
}

size_t slab_arena_class_size(unsigned cls)
{
	if (cls < 8)
		return (cls + 1) * 16u;
	unsigned p = 7 + (cls - 8) / 4;
	unsigned idx = (cls - 8) % 4;

	return ((size_t)1 << p) + (idx + 1) * ((size_t)1 << (p - 2));
}

static void *chunk_get(void)
{
	void *c = NULL;

	pthread_mutex_lock(&cache_lock);
	if (chunk_cache_n)
		c = chunk_cache[--chunk_cache_n];
	pthread_mutex_unlock(&cache_lock);
	if (c)
		return c;
	c = mmap(NULL, SLAB_ARENA_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		 -1, 0);
	return c == MAP_FAILED ? NULL : c;
}

/* Cached chunks are returned with MADV_DONTNEED so that they hold no RSS. */
static void chunk_put(void *c)
{
	pthread_mutex_lock(&cache_lock);
	if (chunk_cache_n < CHUNK_CACHE_MAX) {
		chunk_cache[chunk_cache_n++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&cache_lock);
	if (c)
		munmap(c, SLAB_ARENA_CHUNK);
}

struct slab_arena *slab_arena_new(void)
{
	struct slab_arena *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	atomic_flag_clear(&a->lock);
	return a;
}

void slab_arena_destroy(struct slab_arena *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->nchunks; i++) {
		madvise(a->chunks[i], SLAB_ARENA_CHUNK, MADV_DONTNEED);
		chunk_put(a->chunks[i]);
	}
	free(a->chunks);
	while (a->big) {
		struct big_hdr *b = a->big;

		a->big = b->next;
		free(b);
	}
	free(a);
}

/* Called with the arena lock held; refills the bump region. */
static int arena_refill(struct slab_arena *a)
{
	if (a->nchunks == a->chunks_cap) {
		size_t ncap = a->chunks_cap ? a->chunks_cap * 2 : 8;
		void **n = realloc(a->chunks, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		a->chunks = n;
		a->chunks_cap = ncap;
	}
	uint8_t *c = chunk_get();

	if (!c)
		return -ENOMEM;
	/* The unused tail of the previous chunk feeds the smaller classes. */
	while (a->bump && a->bump_end - a->bump >= 16) {
		size_t left = (size_t)(a->bump_end - a->bump);
		unsigned cls = slab_arena_class(left);

		if (slab_arena_class_size(cls) > left)
			cls--;
		*(void **)a->bump = a->free[cls];
		a->free[cls] = a->bump;
		a->bump += slab_arena_class_size(cls);
	}
	a->chunks[a->nchunks++] = c;
	a->bump = c;
	a->bump_end = c + SLAB_ARENA_CHUNK;
	return 0;
}

void *slab_arena_alloc(struct slab_arena *a, size_t size)
{
	if (!a || size == 0 || size > SLAB_ARENA_MAX)
		return NULL;
	unsigned cls = slab_arena_class(size);
	size_t bsz = slab_arena_class_size(cls);
	void *p;

	arena_lock(a);
	p = a->free[cls];
	if (p) {
		a->free[cls] = *(void **)p;
		arena_unlock(a);
		return p;
	}
	if ((size_t)(a->bump_end - a->bump) < bsz && arena_refill(a)) {
		arena_unlock(a);
		return NULL;
	}
	p = a->bump;
	a->bump += bsz;
	arena_unlock(a);
	return p;
}

void slab_arena_free(struct slab_arena *a, void *p, size_t size)
{
	if (!a || !p || size == 0 || size > SLAB_ARENA_MAX)
		return;
	unsigned cls = slab_arena_class(size);

	arena_lock(a);
	*(void **)p = a->free[cls];
	a->free[cls] = p;
	arena_unlock(a);
}

void *slab_arena_alloc_any(struct slab_arena *a, size_t size)
{
	if (size <= SLAB_ARENA_MAX)
		return slab_arena_alloc(a, size);
	struct big_hdr *b = malloc(sizeof(*b) + size);

	if (!b)
		return NULL;
	b->size = size;
	b->prev = NULL;
	arena_lock(a);
	b->next = a->big;
	if (a->big)
		a->big->prev = b;
	a->big = b;
	a->big_bytes += size;
	arena_unlock(a);
	return b + 1;
}

void slab_arena_free_any(struct slab_arena *a, void *p, size_t size)
{
	if (size <= SLAB_ARENA_MAX) {
		slab_arena_free(a, p, size);
		return;
	}
	if (!p)
		return;
	struct big_hdr *b = (struct big_hdr *)p - 1;

	arena_lock(a);
	if (b->prev)
		b->prev->next = b->next;
	else
		a->big = b->next;
	if (b->next)
		b->next->prev = b->prev;
	a->big_bytes -= b->size;
	arena_unlock(a);
	free(b);
}

size_t slab_arena_bytes(const struct slab_arena *a)
{
	if (!a)
		return 0;
	return a->nchunks * SLAB_ARENA_CHUNK + a->big_bytes;
}
