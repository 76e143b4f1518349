// SPDX-License-Identifier: MIT
/*
 * Size-classed DRAM arena. Blocks are carved from 64 KiB chunks obtained with
 * mmap (so that destroying an arena returns its memory to the system at once)
 * through a small process-wide cache of spare chunks.
 *
 * Free blocks are never written to: each class keeps a LIFO stack of block
 * pointers in segments of SEG_SLOTS entries, and only the stack top is
 * touched by alloc and free. The allocator therefore takes no cache or TLB
 * miss on a cold block (a free list threaded through the blocks would read
 * or write the block on every call); the stack tops of the 28 classes fit in
 * 14 cache lines that stay hot. Segments are 4 KiB pieces of the arena's own
 * chunks, so they are released with the arena. A class keeps one empty
 * segment in reserve so that a push/pop pair at a segment boundary does not
 * carve or recycle a segment each time; further empty segments go to the
 * arena's segment pool.
 *
 * Size classes: 16..128 in steps of 16, then four classes per power of two
 * (160, 192, 224, 256, 320, ..., 3584, 4096): 28 classes, worst-case rounding
 * 1 - 129/160 = 19.4 %, see docs/design.md for the measured average. The
 * class of a size is a few shifts (no division, no table walk).
 *
 * Concurrency: one spinlock per arena (an atomic flag), held for a few
 * instructions on the fast path; the chunk cache has its own mutex and is
 * only touched when an arena needs or releases a chunk. Lock order: arena
 * lock -> chunk cache lock.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "slab/slab_int.h"

#define SEG_BYTES 4096u
#define SEG_SLOTS ((SEG_BYTES - sizeof(void *)) / sizeof(void *))

/* One segment of a class's free stack. */
struct seg {
	struct seg *prev; /* older (full) segment below this one; pool link */
	void *slot[SEG_SLOTS];
};
_Static_assert(sizeof(struct seg) == SEG_BYTES, "segment is one 4 KiB piece");

/* Free stack of one class. Empty arena: all NULL (top == base == end).
 * Invariant: base == seg->slot, end == seg->slot + SEG_SLOTS, and every
 * segment below seg is full. */
struct fstack {
	void **top, **base, **end;
	struct seg *seg;
};

struct big_hdr {
	struct big_hdr *prev, *next;
	size_t size;
	size_t pad; /* keeps the payload 16-byte aligned */
};

struct slab_arena {
	atomic_flag lock;
	uint8_t *bump, *bump_end;
	/* Hot: the fast path reads one fstack (half a cache line). */
	_Alignas(64) struct fstack fs[SLAB_ARENA_NCLASS];
	/* Cold: touched only at segment boundaries, refills and destroy. */
	struct seg *spare[SLAB_ARENA_NCLASS]; /* one empty segment per class */
	struct seg *seg_pool;                 /* further empty segments */
	void **chunks;                        /* every chunk, for O(chunks) destroy */
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
	size_t s = size ? size - 1 : 0;

	if (s < 128)
		return (unsigned)(s >> 4);
	unsigned p = 63u - (unsigned)__builtin_clzll((unsigned long long)s);

	return 8 + (p - 7) * 4 + (unsigned)((s >> (p - 2)) & 3);
}

/* Block size of each class (checked against slab_arena_class() by the unit
 * tests: every size maps to the tightest class that holds it). */
static const uint16_t class_bytes[SLAB_ARENA_NCLASS] = {
    16,  32,  48,  64,  80,  96,   112,  128,  160,  192,  224,  256,  320,  384,
    448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096};

size_t slab_arena_class_size(unsigned cls)
{
	return cls < SLAB_ARENA_NCLASS ? class_bytes[cls] : 0;
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
	c = mmap(NULL, SLAB_ARENA_CHUNK, PROT_READ | PROT_WRITE,
	         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return c == MAP_FAILED ? NULL : c;
}

/* Cached chunks were returned with MADV_DONTNEED so that they hold no RSS. */
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
	struct slab_arena *a = aligned_alloc(_Alignof(struct slab_arena), sizeof(*a));

	if (!a)
		return NULL;
	memset(a, 0, sizeof(*a));
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

static int push(struct slab_arena *a, unsigned cls, void *p);

/*
 * Called with the arena lock held: a fresh chunk becomes the bump region
 * and the unused tail of the previous one is cut into blocks of the largest
 * classes that fit, which go on their free stacks (those pushes may carve
 * segments from the new chunk).
 */
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
	uint8_t *tail = a->bump, *tail_end = a->bump_end;

	a->chunks[a->nchunks++] = c;
	a->bump = c;
	a->bump_end = c + SLAB_ARENA_CHUNK;
	while (tail && tail_end - tail >= 16) {
		size_t left = (size_t)(tail_end - tail);
		unsigned cls = slab_arena_class(left);

		if (class_bytes[cls] > left)
			cls--;
		if (push(a, cls, tail))
			break; /* no segment: the rest of the tail stays unused */
		tail += class_bytes[cls];
	}
	return 0;
}

/* Carve BYTES from the bump region (lock held). */
static void *bump_take(struct slab_arena *a, size_t bytes)
{
	void *p;

	if ((size_t)(a->bump_end - a->bump) < bytes && arena_refill(a))
		return NULL;
	p = a->bump;
	a->bump += bytes;
	return p;
}

/* An empty segment: the class's reserve, the pool, or a new 4 KiB piece. */
static struct seg *seg_get(struct slab_arena *a, unsigned cls)
{
	struct seg *s = a->spare[cls];

	if (s) {
		a->spare[cls] = NULL;
		return s;
	}
	s = a->seg_pool;
	if (s) {
		a->seg_pool = s->prev;
		return s;
	}
	return bump_take(a, SEG_BYTES);
}

/* Slow push: the top segment is full (or there is none). */
static int push_grow(struct slab_arena *a, unsigned cls, void *p)
{
	struct fstack *f = &a->fs[cls];
	struct seg *s = seg_get(a, cls);

	if (!s)
		return -ENOMEM;
	if (f->top != f->end) {
		/* seg_get() refilled, and the old chunk's tail brought this
		 * class a segment with room: keep S for later. */
		s->prev = a->seg_pool;
		a->seg_pool = s;
		*f->top++ = p;
		return 0;
	}
	s->prev = f->seg;
	f->seg = s;
	f->base = f->top = s->slot;
	f->end = s->slot + SEG_SLOTS;
	*f->top++ = p;
	return 0;
}

static int push(struct slab_arena *a, unsigned cls, void *p)
{
	struct fstack *f = &a->fs[cls];

	if (__builtin_expect(f->top == f->end, 0))
		return push_grow(a, cls, p);
	*f->top++ = p;
	return 0;
}

/* Slow pop: the top segment is empty. Steps down to the full segment below
 * and keeps the empty one in reserve; NULL when the class has no free block. */
static void *pop_shrink(struct slab_arena *a, unsigned cls)
{
	struct fstack *f = &a->fs[cls];
	struct seg *s = f->seg;

	if (!s || !s->prev)
		return NULL;
	if (a->spare[cls]) {
		a->spare[cls]->prev = a->seg_pool;
		a->seg_pool = a->spare[cls];
	}
	a->spare[cls] = s;
	f->seg = s->prev;
	f->base = f->seg->slot;
	f->end = f->top = f->seg->slot + SEG_SLOTS;
	return *--f->top;
}

void *slab_arena_alloc(struct slab_arena *a, size_t size)
{
	if (!a || size - 1 >= SLAB_ARENA_MAX)
		return NULL;
	unsigned cls = slab_arena_class(size);
	struct fstack *f = &a->fs[cls];
	void *p;

	arena_lock(a);
	if (__builtin_expect(f->top != f->base, 1))
		p = *--f->top;
	else if (!(p = pop_shrink(a, cls)))
		p = bump_take(a, class_bytes[cls]);
	arena_unlock(a);
	return p;
}

void slab_arena_free(struct slab_arena *a, void *p, size_t size)
{
	if (!a || !p || size - 1 >= SLAB_ARENA_MAX)
		return;
	unsigned cls = slab_arena_class(size);
	struct fstack *f = &a->fs[cls];

	arena_lock(a);
	if (__builtin_expect(f->top != f->end, 1))
		*f->top++ = p;
	else
		/* Without memory for a stack segment the block stays unused
		 * until the arena is destroyed (it is still counted as held). */
		(void)push_grow(a, cls, p);
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
