// SPDX-License-Identifier: MIT
/*
 * slab_bench [DIR=/var/tmp] [CYCLES=50] [SECTIONS=all]: slab layer numbers
 * on emulated images created in DIR (removed afterwards). SECTIONS (or the
 * environment variable SLAB_BENCH) picks a comma-separated subset of
 * arena,space,drop,gc,memory.
 *   arena    alloc/free latency vs malloc/free, sizes uniform in 16..4096,
 *            steady state with live sets of 10,000 blocks (20 MiB, beyond
 *            the CPU caches) and of 1,000 blocks (2 MiB); each step frees a
 *            random block and allocates a new one, both allocators get the
 *            same sizes and indices, and the first byte of every new block
 *            is written (outside the timed region). Each set runs with an
 *            mfence before every timed call (the caller's pending stores do
 *            not count) and without. Every call is timed on
 *            its own with rdtscp; the cost of an empty timed region is
 *            subtracted; TSC ticks are converted with a clock_gettime
 *            calibration.
 *   drop     time of slab_epoch_drop() (durable drop record) for epochs of
 *            1,000 and 1,000,000 objects of 100 B, median of 7 and 3 runs,
 *            and the time the background thread then takes to reset the
 *            epoch's zones and return its DRAM (slab_reclaim_wait()).
 *   memory   (run, like everything here, with the malloc settings of the
 *            tslabfs daemon: one arena, malloc_trim() after a drop)
 *            DRAM per live object (slab only: slots, slot tables, page
 *            buffers; then what fs/ adds in the epoch's arena: a 128 B
 *            inode and an 8 B name) and RSS after the 1st and the last of
 *            CYCLES create/fill 100k/drop cycles, with RSS and glibc heap sizes at
 *            cycles 1, 2, 10, 100, 1000 (about 0.06 s per cycle on an image
 *            in /dev/shm).
 *   space    device bytes per object (pages + journal) for 100, 512, 4000 B
 *            payloads with 8-byte names, 20,000 objects each, and for
 *            payloads uniform in 16..4000 B (fixed seed; "mixed"), where the
 *            ratio is device bytes / payload bytes of the whole set.
 *   gc       write amplification (user + GC bytes) / user bytes for FIFO
 *            epoch drops and for 30 % random frees across epochs.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "slab/slab.h"

static const char *dir = "/var/tmp";
static char img[512];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tsc_ghz(void)
{
	double t0 = now_s();
	unsigned aux;
	uint64_t c0 = __rdtscp(&aux);

	while (now_s() - t0 < 0.2)
		;
	return (double)(__rdtscp(&aux) - c0) / ((now_s() - t0) * 1e9);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void pct(const char *what, uint32_t *v, size_t n, double ghz, uint32_t base)
{
	qsort(v, n, sizeof(*v), cmp_u32);
	double p[3] = {0.5, 0.99, 0.999};

	printf("  %-14s", what);
	for (int i = 0; i < 3; i++) {
		uint32_t c = v[(size_t)(p[i] * (double)n)];

		printf("  p%-5g %6.1f ns", p[i] * 100,
		       (double)(c > base ? c - base : 0) / ghz);
	}
	printf("\n");
}

enum { LIVE_MAX = 10000, STEPS = 1000000 };

/*
 * One allocator (arena when A is set, else malloc) through the same
 * sequence: LIVE blocks, then STEPS steps each freeing the block at a
 * pseudo-random index and allocating a new one there. The first byte of each
 * new block is written outside the timed region, as a user would. With
 * FENCE, an mfence before each timed call lets that store (a cache miss in
 * a large live set) complete first; without it, an allocator that takes a
 * lock (an atomic read-modify-write, which drains the store buffer) also
 * pays for the caller's pending store.
 */
static void run_alloc(struct slab_arena *a, int live, int fence, const uint32_t *size_of,
                      uint32_t *t_alloc, uint32_t *t_free)
{
	static uint32_t sz[LIVE_MAX];
	static void *blk[LIVE_MAX];
	unsigned aux;

	for (int i = 0; i < live; i++) {
		sz[i] = size_of[i];
		blk[i] = a ? slab_arena_alloc(a, sz[i]) : malloc(sz[i]);
		*(volatile char *)blk[i] = 1;
	}
	for (int s = 0; s < STEPS; s++) {
		int k = (int)(size_of[s] * 2654435761u % (unsigned)live);

		if (fence)
			_mm_mfence();
		uint64_t c0 = __rdtscp(&aux);

		if (a)
			slab_arena_free(a, blk[k], sz[k]);
		else
			free(blk[k]);
		uint64_t c1 = __rdtscp(&aux);

		sz[k] = size_of[(s + 7) % STEPS];
		if (fence)
			_mm_mfence();
		uint64_t c2 = __rdtscp(&aux);

		blk[k] = a ? slab_arena_alloc(a, sz[k]) : malloc(sz[k]);
		uint64_t c3 = __rdtscp(&aux);

		*(volatile char *)blk[k] = 1;
		t_free[s] = (uint32_t)(c1 - c0);
		t_alloc[s] = (uint32_t)(c3 - c2);
	}
	for (int i = 0; i < live; i++) {
		if (a)
			slab_arena_free(a, blk[i], sz[i]);
		else
			free(blk[i]);
	}
}

/* Steady-state latency for a live set of LIVE blocks of sizes uniform in
 * 16..4096 (mean 2 KiB per block). */
static void bench_arena_live(int live, int fence, double ghz, uint32_t base)
{
	static uint32_t ta[STEPS], tf[STEPS], ma[STEPS], mf[STEPS];
	static uint32_t size_of[STEPS];
	struct slab_arena *a = slab_arena_new();

	srand(1);
	for (int i = 0; i < STEPS; i++)
		size_of[i] = 16 + (uint32_t)rand() % (4096 - 15);
	run_alloc(a, live, fence, size_of, ta, tf);
	run_alloc(NULL, live, fence, size_of, ma, mf);
	printf("live set %d blocks (~%d MiB), %d steps, %s:\n", live,
	       (live * 2056 + (1 << 19)) >> 20, STEPS,
	       fence ? "caller's stores drained before each call (mfence)" : "no fence");
	pct("arena alloc", ta, STEPS, ghz, base);
	pct("arena free", tf, STEPS, ghz, base);
	pct("malloc", ma, STEPS, ghz, base);
	pct("free", mf, STEPS, ghz, base);
	printf("  arena held %zu KiB at the end\n", slab_arena_bytes(a) / 1024);
	slab_arena_destroy(a);
}

static void bench_arena(void)
{
	double ghz = tsc_ghz();
	unsigned aux;
	uint32_t base = UINT32_MAX;

	for (int i = 0; i < 100000; i++) {
		uint64_t c0 = __rdtscp(&aux), c1 = __rdtscp(&aux);

		if (c1 - c0 < base)
			base = (uint32_t)(c1 - c0);
	}
	printf("arena vs malloc (TSC %.2f GHz, timer overhead %u ticks subtracted):\n",
	       ghz, base);
	bench_arena_live(LIVE_MAX, 1, ghz, base);
	bench_arena_live(1000, 1, ghz, base);
	bench_arena_live(LIVE_MAX, 0, ghz, base);
	bench_arena_live(1000, 0, ghz, base);
}

static struct zns_dev *mkdev(uint32_t nzones, uint64_t zsize)
{
	struct zns_emul_params p = {.lba_size = 4096,
	                            .zone_size = zsize,
	                            .nr_zones = nzones,
	                            .size = (uint64_t)(nzones + 2) * zsize + (4u << 20)};
	struct zns_dev *dev;

	snprintf(img, sizeof(img), "%s/slab_bench-%d.img", dir, (int)getpid());
	if (zns_emul_create(img, &p) || zns_open(img, 0, &dev) ||
	    slab_format(dev, NULL)) {
		fprintf(stderr, "cannot create %s\n", img);
		exit(1);
	}
	return dev;
}

static void rmdev(struct zns_dev *dev)
{
	zns_close(dev);
	unlink(img);
}

static struct slab_store *mount(struct zns_dev *dev)
{
	struct slab_mount_opts mo = {.commit_ms = 1000};
	struct slab_store *st;

	if (slab_mount(dev, &mo, NULL, NULL, &st)) {
		fprintf(stderr, "mount failed\n");
		exit(1);
	}
	return st;
}

/* Payload length of object I of a "mixed" set: uniform in 16..4000. */
static uint32_t mixed_len(long i)
{
	uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull + 12345;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return 16 + (uint32_t)(x % (4000 - 16 + 1));
}

/* N objects of LEN payload bytes (LEN 0: mixed_len(i) for object I). */
static int fill(struct slab_store *st, uint32_t ep, long n, uint32_t len,
                slab_handle_t *hs)
{
	static uint8_t data[8192];
	bool mixed = len == 0;
	char name[16];
	struct slab_obj o = {
	    .kind = 1,
	    .attr = {.mode = 0100644, .uid = 1000, .gid = 1000, .nlink = 1, .size = len},
	    .name = name,
	    .name_len = 8,
	    .data = data,
	    .data_len = len};

	for (long i = 0; i < n; i++) {
		slab_handle_t h;
		int r;

		if (mixed) {
			o.data_len = o.attr.size = mixed_len(i);
			len = (uint32_t)o.data_len;
		}
		snprintf(name, sizeof(name), "%08x", (unsigned)(i & 0xffffffff));
		memset(data, (int)i, len);
		r = slab_obj_alloc(st, ep, &h);
		if (!r)
			r = slab_obj_put(st, h, &o);
		if (r)
			return r;
		if (hs)
			hs[i] = h;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One epoch of N objects: fill, sync, then time the drop call itself, the
 * zone resets it caused (counter delta) and the wait for its DRAM. */
static int drop_once(struct slab_store *st, long n, double *t_drop, double *t_dram,
                     uint32_t *zones, uint64_t *resets)
{
	struct slab_epoch_stats es;
	struct slab_counters c0, c1;
	uint32_t ep;
	int r;

	if (slab_epoch_create(st, &ep) || fill(st, ep, n, 100, NULL) || slab_sync(st))
		return -1;
	slab_epoch_stats(st, ep, &es);
	slab_counters_get(st, &c0);
	double t0 = now_s();

	r = slab_epoch_drop(st, ep);
	double t1 = now_s();

	slab_reclaim_wait(st);
	*t_dram = now_s() - t1;
	*t_drop = t1 - t0;
	slab_counters_get(st, &c1);
	*zones = es.zones;
	*resets = c1.zone_resets - c0.zone_resets;
	return r;
}

static void bench_drop(void)
{
	struct zns_dev *dev = mkdev(12, 64ull << 20);
	struct slab_store *st = mount(dev);
	const long sizes[2] = {1000, 1000000};
	const int reps[2] = {7, 3};
	double med[2];

	printf("drop (100 B objects, 64 MiB zones; median of the runs):\n");
	for (int i = 0; i < 2; i++) {
		double t[8], tm[8];
		uint32_t zones = 0;
		uint64_t resets = 0;

		for (int k = 0; k < reps[i]; k++) {
			if (drop_once(st, sizes[i], &t[k], &tm[k], &zones, &resets)) {
				printf("  fill or drop failed\n");
				goto out_unmount;
			}
			printf(
			    "  %8ld objects, %u zones: drop %.3f ms; background: %" PRIu64
			    " zone resets and DRAM returned %.3f ms later\n",
			    sizes[i], zones, t[k] * 1e3, resets, tm[k] * 1e3);
		}
		qsort(t, (size_t)reps[i], sizeof(t[0]), cmp_double);
		med[i] = t[reps[i] / 2];
	}
	printf("  median drop: 1k %.3f ms, 1M %.3f ms, ratio 1M / 1k: %.2f\n",
	       med[0] * 1e3, med[1] * 1e3, med[1] / med[0]);
out_unmount:
	slab_unmount(st);
	rmdev(dev);
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* What fs/ keeps per file in the epoch's arena: an inode (about 128 B) and
 * its name (8 B here). Released wholesale by the drop. */
static int arena_fill(struct slab_store *st, uint32_t ep, long n, double *per)
{
	struct slab_arena *a = slab_epoch_arena(st, ep);

	if (!a)
		return -1;
	for (long i = 0; i < n; i++) {
		void *ino = slab_arena_alloc(a, 128), *name = slab_arena_alloc(a, 8);

		if (!ino || !name)
			return -1;
		memset(ino, (int)i, 128);
		memcpy(name, "01234567", 8);
	}
	*per = (double)slab_arena_bytes(a) / (double)n;
	return 0;
}

/* Checkpoints printed by bench_memory: cycles 1, 2, 10, 100, 1000, ... and
 * the last one. */
static int memory_checkpoint(int c, int cycles)
{
	if (c == cycles || c <= 2)
		return 1;
	while (c % 10 == 0)
		c /= 10;
	return c == 1;
}

static void bench_memory(int cycles)
{
	struct zns_dev *dev = mkdev(16, 64ull << 20);
	struct slab_store *st = mount(dev);
	long first = 0, last = 0, before = 0, base = rss_kib();
	double per = 0, per_arena = 0, arena_per = 0, t0 = now_s();

	printf("memory (create / fill 100k x 100 B + arena blocks / drop cycles: %d; RSS "
	       "after mount "
	       "%ld KiB):\n",
	       cycles, base);
	for (int c = 1; c <= cycles; c++) {
		uint32_t ep;

		before = rss_kib();
		slab_epoch_create(st, &ep);
		if (fill(st, ep, 100000, 100, NULL)) {
			printf("  fill failed\n");
			break;
		}
		long filled_slab = rss_kib();

		if (arena_fill(st, ep, 100000, &arena_per)) {
			printf("  arena fill failed\n");
			break;
		}
		long filled = rss_kib();

		if (c == 1) {
			per = (double)(filled_slab - before) * 1024.0 / 100000.0;
			per_arena = (double)(filled - filled_slab) * 1024.0 / 100000.0;
		}
		slab_epoch_drop(st, ep);
		slab_reclaim_wait(st);
		malloc_trim(0); /* what tslabfs does after a drop */
		last = rss_kib();
		if (c == 1)
			first = last;
		if (memory_checkpoint(c, cycles)) {
			struct mallinfo2 mi = mallinfo2();

			printf("  cycle %5d: RSS filled %6ld KiB, after drop %6ld KiB; "
			       "malloc "
			       "heap %zu KiB (%zu KiB in use), mmapped %zu KiB; %.1f s\n",
			       c, filled, last, mi.arena / 1024, mi.uordblks / 1024,
			       mi.hblkhd / 1024, now_s() - t0);
		}
	}
	printf("  DRAM per live object (slab layer, RSS delta while filled): %.1f B\n",
	       per);
	printf(
	    "  + fs-like arena blocks (128 B inode + 8 B name) per object: %.1f B RSS, "
	    "%.1f B held by the arena\n",
	    per_arena, arena_per);
	printf("  RSS after cycle 1: %ld KiB, after cycle %d: %ld KiB (%+.2f %%)\n",
	       first, cycles, last, 100.0 * (double)(last - first) / (double)first);
	slab_unmount(st);
	rmdev(dev);
}

static void bench_space(void)
{
	uint32_t lens[4] = {100, 512, 4000, 0};

	printf("space (20,000 objects, 8-byte names, device bytes = pages + journal):\n");
	for (int i = 0; i < 4; i++) {
		struct zns_dev *dev = mkdev(16, 64ull << 20);
		struct slab_store *st = mount(dev);
		struct slab_counters c0, c1;
		double payload = 0;
		uint32_t ep;

		for (long k = 0; k < 20000; k++)
			payload += lens[i] ? lens[i] : mixed_len(k);
		slab_epoch_create(st, &ep);
		slab_counters_get(st, &c0);
		fill(st, ep, 20000, lens[i], NULL);
		slab_sync(st);
		slab_counters_get(st, &c1);
		double dev_b =
		    (double)(c1.device_bytes_written - c0.device_bytes_written) / 20000;
		double rec_b = (double)(c1.bytes_live) / 20000;

		if (lens[i])
			printf("  %4u B payload: ", lens[i]);
		else
			printf("  16..4000 B mixed: ");
		printf("%.1f device B/object (%.3fx payload), record %.1f B live\n",
		       dev_b, dev_b * 20000 / payload, rec_b);
		slab_unmount(st);
		rmdev(dev);
	}
}

static void gc_report(const char *what, struct slab_store *st)
{
	struct slab_counters c;

	slab_counters_get(st, &c);
	printf("  %-26s gc runs %6llu, GC WA (user+gc)/user %.2f, device/user %.2f\n",
	       what, (unsigned long long)c.gc_runs,
	       (double)(c.user_bytes_written + c.gc_bytes_moved) /
	           (double)c.user_bytes_written,
	       (double)c.device_bytes_written / (double)c.user_bytes_written);
}

static void bench_gc(void)
{
	printf("gc (24 zones x 4 MiB):\n");
	struct zns_dev *dev = mkdev(24, 4ull << 20);
	struct slab_store *st = mount(dev);
	uint32_t ring[4];

	/* FIFO: 4 live epochs of 12,000 x 200 B; 60 epochs written in all */
	for (int e = 0; e < 60; e++) {
		if (e >= 4)
			slab_epoch_drop(st, ring[e % 4]);
		slab_epoch_create(st, &ring[e % 4]);
		if (fill(st, ring[e % 4], 12000, 200, NULL)) {
			printf("  FIFO fill failed\n");
			break;
		}
	}
	gc_report("FIFO epoch drops:", st);
	slab_unmount(st);
	rmdev(dev);

	dev = mkdev(24, 4ull << 20);
	st = mount(dev);
	enum { NOBJ = 150000 };
	static slab_handle_t hs[NOBJ];
	static uint32_t hep[NOBJ];
	uint32_t eps[8];
	long puts = 0;

	for (int e = 0; e < 8; e++)
		slab_epoch_create(st, &eps[e]);
	/* ~55 % of the device live, then rounds of 30 % random frees + refills */
	long n = 40000;

	for (long i = 0; i < n; i++) {
		hep[i] = eps[i % 8];
		if (fill(st, hep[i], 1, 300, &hs[i]))
			break;
		puts++;
	}
	srand(3);
	for (int round = 0; round < 12; round++) {
		for (long i = 0; i < n; i++) {
			if (rand() % 100 >= 30)
				continue;
			slab_obj_free(st, hs[i]);
			if (fill(st, hep[i], 1, 300, &hs[i])) {
				printf("  refill failed at round %d\n", round);
				round = 12;
				break;
			}
			puts++;
		}
	}
	gc_report("30 % random frees:", st);
	slab_unmount(st);
	rmdev(dev);
}

/* SECTIONS: comma-separated subset of arena,space,drop,gc,memory; all when
 * absent or "all". */
static int want(const char *sections, const char *name)
{
	size_t n = strlen(name);

	if (!sections || !strcmp(sections, "all"))
		return 1;
	for (const char *p = sections; (p = strstr(p, name)); p += n)
		if ((p == sections || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	int cycles = argc > 2 ? atoi(argv[2]) : 50;
	const char *sections = argc > 3 ? argv[3] : getenv("SLAB_BENCH");

	if (argc > 1)
		dir = argv[1];
	/* The malloc configuration of the tslabfs daemon (fs/main.c). */
	mallopt(M_ARENA_MAX, 1);
	if (want(sections, "arena"))
		bench_arena();
	if (want(sections, "space"))
		bench_space();
	if (want(sections, "drop"))
		bench_drop();
	if (want(sections, "gc"))
		bench_gc();
	if (want(sections, "memory"))
		bench_memory(cycles);
	return 0;
}
