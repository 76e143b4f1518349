/*
 * fs_bench: one small-file workload per invocation against a directory that
 * is the root of a mounted filesystem, results as key=value lines on stdout.
 * Driven by tests/bench/run-fs-bench.sh, which runs the same workloads on
 * ext4, xfs, btrfs and tslabfs and tabulates them.
 *
 * Layout (ingest creates it, every other workload derives the same names
 * from -n/-d, so no workload needs a readdir to find its files):
 *
 *   DIR/w0000 .. DIR/w{D-1}       top-level directories ("windows"; on
 *                                 tslabfs each one is an epoch)
 *   DIR/wWWWW/sensor-IIIIIIII     file I lives in window I / ceil(N/D)
 *
 * File I holds S bytes of a pattern derived from I; read verifies every byte,
 * so a filesystem that loses or mixes up data fails the run instead of
 * producing a number. Any failing system call ends the run with exit status 1
 * and a message on stderr; nothing is printed as a result after an error.
 *
 * The cycles workload (memory of a daemon over many epochs) uses its own
 * top-level directories DIR/cycleCCCCC, one per cycle, each removed again
 * with one rmdir() (a tslabfs epoch drop) or rm -rf style (-m tree).
 *
 * With T threads, thread t handles files t, t+T, t+2T, ...: all threads fan
 * in to the same current window, as concurrent writers of time-windowed data
 * do. Times are CLOCK_MONOTONIC wall-clock times of the whole phase.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_THREADS 64
#define BENCH_MAX_DIRS    10000
#define BENCH_MAX_SIZE    (1u << 20)
#define BENCH_NAME_MAX    32
#define BENCH_NFTW_FDS    64

struct bench_opts {
	const char *workload;
	const char *dir;
	uint64_t files;   /* -n: files in the data set */
	uint32_t size;    /* -s: payload bytes per file */
	uint32_t dirs;    /* -d: top-level directories */
	uint32_t threads; /* -t */
	uint64_t count;   /* -c: files to read (0: all) */
	uint32_t percent; /* -p: share of files overwritten */
	uint32_t window;  /* -w: window removed by expire */
	uint64_t seed;    /* -r: order of reads and overwrites */
	bool use_rmdir;   /* -m rmdir: expire is one rmdir() call */
	bool tree;        /* -m tree given: cycles remove files one by one */
	uint32_t cycles;  /* -y: create/fill/drop cycles */
	long pid;         /* -P: process whose memory the cycles track */
	uint32_t settle;  /* -u: ms to wait after each drop before sampling */
};

/* One thread's share of ingest or overwrite; the worker writes only err, failed_file. */
struct bench_worker {
	pthread_t tid;
	const struct bench_opts *o;
	const int *dirfds;     /* one per window, owned by the caller */
	const uint64_t *order; /* overwrite: file indexes, NULL for ingest */
	uint64_t first, stride, end;
	int err; /* negative errno of the first failure */
	uint64_t failed_file;
};

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t bench_per_dir(const struct bench_opts *o)
{
	return (o->files + o->dirs - 1) / o->dirs;
}

static void bench_file_name(char *buf, uint64_t i)
{
	snprintf(buf, BENCH_NAME_MAX, "sensor-%08" PRIu64, i);
}

static void bench_dir_name(char *buf, uint32_t w)
{
	snprintf(buf, BENCH_NAME_MAX, "w%04" PRIu32, w);
}

static void bench_fill(unsigned char *buf, uint64_t i, uint32_t size)
{
	for (uint32_t j = 0; j < size; j++)
		buf[j] = (unsigned char)('a' + (i + j) % 26);
}

/* splitmix64: a fixed seed gives every filesystem the same order. */
static uint64_t bench_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t *bench_permutation(uint64_t n, uint64_t seed)
{
	uint64_t *p = malloc((n ? n : 1) * sizeof(*p));
	uint64_t state = seed;

	if (!p)
		return NULL;
	for (uint64_t i = 0; i < n; i++)
		p[i] = i;
	for (uint64_t i = n; i > 1; i--) {
		uint64_t j = bench_rand(&state) % i;
		uint64_t t = p[i - 1];

		p[i - 1] = p[j];
		p[j] = t;
	}
	return p;
}

static int bench_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void bench_print_common(const struct bench_opts *o)
{
	printf("workload=%s\ndir=%s\nfiles=%" PRIu64 "\nsize=%" PRIu32 "\ndirs=%" PRIu32
	       "\nthreads=%" PRIu32 "\n",
	       o->workload, o->dir, o->files, o->size, o->dirs, o->threads);
}

static int bench_fail(const char *what, const char *name, int err)
{
	fprintf(stderr, "fs_bench: %s %s: %s\n", what, name ? name : "", strerror(-err));
	return 1;
}

/*
 * Opens (creating them when @create) the window directories under @root.
 * The caller owns the returned fds and closes them with bench_close_dirs().
 */
static int bench_open_dirs(int root, uint32_t dirs, bool create, int **fdsp)
{
	int *fds = calloc(dirs, sizeof(*fds));
	char name[BENCH_NAME_MAX];
	uint32_t w;
	int err;

	if (!fds)
		return -ENOMEM;
	for (w = 0; w < dirs; w++) {
		bench_dir_name(name, w);
		if (create && mkdirat(root, name, 0755) < 0 && errno != EEXIST)
			goto fail_dir;
		fds[w] = openat(root, name, O_RDONLY | O_DIRECTORY);
		if (fds[w] < 0)
			goto fail_dir;
	}
	*fdsp = fds;
	return 0;

fail_dir:
	err = -errno;
	fprintf(stderr, "fs_bench: window %s: %s\n", name, strerror(errno));
	while (w--)
		close(fds[w]);
	free(fds);
	return err;
}

static void bench_close_dirs(int *fds, uint32_t dirs)
{
	for (uint32_t w = 0; w < dirs; w++)
		close(fds[w]);
	free(fds);
}

/*
 * The durability point of ingest, overwrite and expire: syncfs(), then fsync()
 * of every window directory and of the root. On a kernel filesystem the
 * fsyncs find nothing left to write. A FUSE daemon never sees syncfs() (the
 * kernel sends FUSE_SYNCFS to virtiofs only) but does see FSYNCDIR, and a
 * directory fsync must make the entries created in it durable, so this is the
 * same promise on every filesystem.
 */
static int bench_sync(const struct bench_opts *o, int root, const int *dirfds,
                      uint32_t dirs)
{
	if (syncfs(root) < 0)
		return bench_fail("syncfs", o->dir, -errno);
	for (uint32_t w = 0; w < dirs; w++) {
		if (fsync(dirfds[w]) < 0) {
			char name[BENCH_NAME_MAX];

			bench_dir_name(name, w);
			return bench_fail("fsync", name, -errno);
		}
	}
	if (fsync(root) < 0)
		return bench_fail("fsync", o->dir, -errno);
	return 0;
}

/* Ingest (order == NULL) creates full files; overwrite replaces content. */
static void *bench_write_worker(void *arg)
{
	struct bench_worker *wk = arg;
	const struct bench_opts *o = wk->o;
	uint64_t per = bench_per_dir(o);
	char counter[32];
	unsigned char *data = NULL;
	char name[BENCH_NAME_MAX];

	if (!wk->order) {
		data = malloc(o->size ? o->size : 1);
		if (!data) {
			wk->err = -ENOMEM;
			return NULL;
		}
	}
	for (uint64_t k = wk->first; k < wk->end; k += wk->stride) {
		uint64_t i = wk->order ? wk->order[k] : k;
		int flags = O_WRONLY | O_TRUNC | (wk->order ? 0 : O_CREAT);
		const void *src = data;
		size_t len = o->size;
		int fd, err;

		bench_file_name(name, i);
		if (wk->order) {
			/* A counter's new value: a few bytes, as rate limiters write. */
			len = (size_t)snprintf(counter, sizeof(counter), "%" PRIu64 "\n",
			                       i * 7 + 1);
			src = counter;
		} else {
			bench_fill(data, i, o->size);
		}
		fd = openat(wk->dirfds[i / per], name, flags, 0644);
		if (fd < 0) {
			wk->err = -errno;
			wk->failed_file = i;
			break;
		}
		err = bench_write_all(fd, src, len);
		if (close(fd) < 0 && !err)
			err = -errno;
		if (err) {
			wk->err = err;
			wk->failed_file = i;
			break;
		}
	}
	free(data);
	return NULL;
}

/* Runs @o->threads workers over [0, @end) and reports the first failure. */
static int bench_run_workers(const struct bench_opts *o, const int *dirfds,
                             const uint64_t *order, uint64_t end)
{
	struct bench_worker wk[BENCH_MAX_THREADS];
	uint32_t started = 0;
	int err = 0;

	for (uint32_t t = 0; t < o->threads; t++) {
		wk[t] = (struct bench_worker){
		    .o = o,
		    .dirfds = dirfds,
		    .order = order,
		    .first = t,
		    .stride = o->threads,
		    .end = end,
		};
		err = -pthread_create(&wk[t].tid, NULL, bench_write_worker, &wk[t]);
		if (err)
			break;
		started++;
	}
	for (uint32_t t = 0; t < started; t++) {
		char name[BENCH_NAME_MAX];

		pthread_join(wk[t].tid, NULL);
		if (wk[t].err && !err) {
			err = wk[t].err;
			bench_file_name(name, wk[t].failed_file);
			fprintf(stderr, "fs_bench: %s: %s\n", name, strerror(-err));
		}
	}
	return err;
}

static int bench_ingest(const struct bench_opts *o, int root)
{
	double t0, t1, t2;
	int *dirfds;
	int err;

	t0 = bench_now();
	err = bench_open_dirs(root, o->dirs, true, &dirfds);
	if (err)
		return 1;
	err = bench_run_workers(o, dirfds, NULL, o->files);
	t1 = bench_now();
	if (!err && bench_sync(o, root, dirfds, o->dirs))
		err = -EIO;
	t2 = bench_now();
	bench_close_dirs(dirfds, o->dirs);
	if (err)
		return 1;
	bench_print_common(o);
	printf("create_s=%.6f\nsync_s=%.6f\ntotal_s=%.6f\n", t1 - t0, t2 - t1, t2 - t0);
	printf("files_per_s_nosync=%.1f\nfiles_per_s=%.1f\n",
	       (double)o->files / (t1 - t0), (double)o->files / (t2 - t0));
	return 0;
}

static int bench_overwrite(const struct bench_opts *o, int root)
{
	uint64_t n = o->files * o->percent / 100;
	uint64_t *order = bench_permutation(o->files, o->seed);
	double t0, t1, t2;
	int *dirfds;
	int err;

	if (!order)
		return bench_fail("permutation", NULL, -ENOMEM);
	if (bench_open_dirs(root, o->dirs, false, &dirfds)) {
		free(order);
		return 1;
	}
	t0 = bench_now();
	err = bench_run_workers(o, dirfds, order, n);
	t1 = bench_now();
	if (!err && bench_sync(o, root, dirfds, o->dirs))
		err = -EIO;
	t2 = bench_now();
	bench_close_dirs(dirfds, o->dirs);
	free(order);
	if (err)
		return 1;
	bench_print_common(o);
	printf("overwritten=%" PRIu64 "\nwrite_s=%.6f\nsync_s=%.6f\ntotal_s=%.6f\n", n,
	       t1 - t0, t2 - t1, t2 - t0);
	printf("files_per_s_nosync=%.1f\nfiles_per_s=%.1f\n", (double)n / (t1 - t0),
	       (double)n / (t2 - t0));
	return 0;
}

/* Reads one whole file into @buf (capacity @cap) and checks its content. */
static int bench_read_one(int dirfd, uint64_t i, uint32_t size, unsigned char *buf,
                          unsigned char *want, size_t cap)
{
	char name[BENCH_NAME_MAX];
	size_t got = 0;
	int fd, err = 0;

	bench_file_name(name, i);
	fd = openat(dirfd, name, O_RDONLY);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0 || (got += (size_t)n) == cap)
			break;
	}
	close(fd);
	if (err)
		return err;
	bench_fill(want, i, size);
	if (got != size || memcmp(buf, want, size) != 0)
		return -EBADMSG;
	return 0;
}

static int bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void bench_print_latency(uint64_t *lat, uint64_t n, double secs)
{
	double sum = 0;

	qsort(lat, n, sizeof(*lat), bench_cmp_u64);
	for (uint64_t k = 0; k < n; k++)
		sum += (double)lat[k];
	printf("read_files=%" PRIu64 "\ntotal_s=%.6f\nfiles_per_s=%.1f\n", n, secs,
	       (double)n / secs);
	printf("p50_us=%.1f\np90_us=%.1f\np99_us=%.1f\np999_us=%.1f\nmax_us=%.1f\n"
	       "mean_us=%.1f\n",
	       (double)lat[(n - 1) * 50 / 100] / 1e3,
	       (double)lat[(n - 1) * 90 / 100] / 1e3,
	       (double)lat[(n - 1) * 99 / 100] / 1e3,
	       (double)lat[(n - 1) * 999 / 1000] / 1e3, (double)lat[n - 1] / 1e3,
	       sum / (double)n / 1e3);
}

/* open/read/close in a seeded random order; latency per file. */
static int bench_read(const struct bench_opts *o, int root)
{
	uint64_t n = o->count && o->count < o->files ? o->count : o->files;
	uint64_t *order = bench_permutation(o->files, o->seed);
	uint64_t *lat = malloc((n ? n : 1) * sizeof(*lat));
	size_t cap = (size_t)o->size + 1;
	unsigned char *buf = malloc(cap), *want = malloc(cap);
	uint64_t per = bench_per_dir(o);
	int *dirfds = NULL;
	int rc = 1;
	double t0;

	if (!order || !lat || !buf || !want || !n) {
		bench_fail("read setup", NULL, -ENOMEM);
		goto out_free;
	}
	if (bench_open_dirs(root, o->dirs, false, &dirfds))
		goto out_free;
	t0 = bench_now();
	for (uint64_t k = 0; k < n; k++) {
		uint64_t i = order[k], s = bench_now_ns();
		int err = bench_read_one(dirfds[i / per], i, o->size, buf, want, cap);

		lat[k] = bench_now_ns() - s;
		if (err) {
			char name[BENCH_NAME_MAX];

			bench_file_name(name, i);
			bench_fail("read", name, err);
			goto out_dirs;
		}
	}
	bench_print_common(o);
	bench_print_latency(lat, n, bench_now() - t0);
	rc = 0;
out_dirs:
	bench_close_dirs(dirfds, o->dirs);
out_free:
	free(want);
	free(buf);
	free(lat);
	free(order);
	return rc;
}

/* nftw() passes no context to its callback; one walk per process. */
static uint64_t walk_files, walk_dirs, walk_other;
static int walk_err;

/* Records why a walk stopped; nftw() returns the callback's nonzero value. */
static int walk_fail(int err)
{
	walk_err = err;
	return -1;
}

static int bench_stat_cb(const char *path, const struct stat *st, int type,
                         struct FTW *ftw)
{
	if (type == FTW_F)
		walk_files++;
	else if (type == FTW_D || type == FTW_DP)
		walk_dirs++;
	else if (type == FTW_NS || type == FTW_DNR)
		return walk_fail(-EACCES);
	else
		walk_other++;
	return 0;
}

static int bench_statwalk(const struct bench_opts *o)
{
	double t0 = bench_now(), secs;

	if (nftw(o->dir, bench_stat_cb, BENCH_NFTW_FDS, FTW_PHYS) != 0)
		return bench_fail("nftw", o->dir, walk_err ? walk_err : -errno);
	secs = bench_now() - t0;
	printf("workload=statwalk\ndir=%s\nwalked_files=%" PRIu64 "\nwalked_dirs=%" PRIu64
	       "\nwalked_other=%" PRIu64 "\ntotal_s=%.6f\nfiles_per_s=%.1f\n",
	       o->dir, walk_files, walk_dirs, walk_other, secs,
	       (double)walk_files / secs);
	return 0;
}

/* rm -rf: unlink every entry depth-first, then rmdir each directory. */
static int bench_rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_DP) {
		if (rmdir(path) < 0)
			return walk_fail(-errno);
		walk_dirs++;
		return 0;
	}
	if (type == FTW_D || type == FTW_NS || type == FTW_DNR)
		return walk_fail(-EACCES);
	if (unlink(path) < 0)
		return walk_fail(-errno);
	walk_files++;
	return 0;
}

static int bench_expire(const struct bench_opts *o, int root)
{
	char name[BENCH_NAME_MAX], path[4096];
	uint64_t per = bench_per_dir(o);
	uint64_t first = (uint64_t)o->window * per;
	uint64_t k = first < o->files ? o->files - first : 0;
	double t0, t1, t2;
	struct stat st;

	if (k > per)
		k = per;
	bench_dir_name(name, o->window);
	snprintf(path, sizeof(path), "%s/%s", o->dir, name);
	t0 = bench_now();
	if (o->use_rmdir) {
		if (rmdir(path) < 0)
			return bench_fail("rmdir (epoch drop)", path, -errno);
	} else if (nftw(path, bench_rm_cb, BENCH_NFTW_FDS, FTW_DEPTH | FTW_PHYS) != 0) {
		return bench_fail("rm -rf", path, walk_err ? walk_err : -errno);
	}
	t1 = bench_now();
	if (bench_sync(o, root, NULL, 0))
		return 1;
	t2 = bench_now();
	if (fstatat(root, name, &st, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT)
		return bench_fail("expired window still present:", path, -EEXIST);
	if (!o->use_rmdir && walk_files != k) {
		fprintf(stderr,
		        "fs_bench: rm -rf %s removed %" PRIu64 " files, expected %" PRIu64
		        "\n",
		        path, walk_files, k);
		return 1;
	}
	bench_print_common(o);
	printf("method=%s\nexpired_files=%" PRIu64 "\nexpire_s=%.6f\nsync_s=%.6f\n"
	       "expire_sync_s=%.6f\n",
	       o->use_rmdir ? "rmdir" : "tree", k, t1 - t0, t2 - t1, t2 - t0);
	return 0;
}

/* A number from /proc/PID/status ("VmRSS:" in kB, "Threads:"); -errno. */
static long bench_proc_kb(long pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long kb = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen)) {
			kb = strtol(line + klen, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

/* One cycle: mkdir DIR/NAME, N files of S bytes in it, sync, remove it. */
static int bench_one_cycle(const struct bench_opts *o, int root, const char *name)
{
	struct bench_opts one = *o;
	char path[4096];
	int dfd, err;

	one.dirs = 1;
	if (mkdirat(root, name, 0755) < 0)
		return bench_fail("mkdir", name, -errno);
	dfd = openat(root, name, O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return bench_fail("open", name, -errno);
	err = bench_run_workers(&one, &dfd, NULL, o->files);
	if (!err && bench_sync(o, root, &dfd, 1))
		err = -EIO;
	close(dfd);
	if (err)
		return 1;
	snprintf(path, sizeof(path), "%s/%s", o->dir, name);
	walk_files = 0;
	if (!o->tree) {
		if (rmdir(path) < 0)
			return bench_fail("rmdir (epoch drop)", path, -errno);
	} else if (nftw(path, bench_rm_cb, BENCH_NFTW_FDS, FTW_DEPTH | FTW_PHYS) != 0) {
		return bench_fail("rm -rf", path, walk_err ? walk_err : -errno);
	}
	if (fsync(root) < 0)
		return bench_fail("fsync", o->dir, -errno);
	return 0;
}

/*
 * Memory over epochs: C cycles of create (mkdir) / fill (N files of S
 * bytes, T threads, sync) / drop (rmdir); VmRSS of process -P sampled
 * after every drop (after -u ms, for memory released in the background).
 * Growth = RSS after the last cycle against RSS after the first.
 */
static int bench_cycles(const struct bench_opts *o, int root)
{
	char name[BENCH_NAME_MAX];
	long first = 0, last = 0, kb, threads = 0;
	double t0 = bench_now();
	struct timespec settle = {o->settle / 1000, (long)(o->settle % 1000) * 1000000};

	if (o->pid > 0 && bench_proc_kb(o->pid, "VmRSS:") < 0)
		return bench_fail("reading /proc status of", "-P", -ESRCH);
	printf("workload=cycles\ndir=%s\ncycles=%" PRIu32 "\nfiles=%" PRIu64
	       "\nsize=%" PRIu32 "\nthreads=%" PRIu32 "\nmethod=%s\n",
	       o->dir, o->cycles, o->files, o->size, o->threads,
	       o->tree ? "tree" : "rmdir");
	printf("rss_series_kb=");
	for (uint32_t c = 0; c < o->cycles; c++) {
		snprintf(name, sizeof(name), "cycle%05" PRIu32, c);
		if (bench_one_cycle(o, root, name)) {
			printf("\n");
			return 1;
		}
		if (o->pid <= 0)
			continue;
		nanosleep(&settle, NULL);
		kb = bench_proc_kb(o->pid, "VmRSS:");
		if (kb < 0) {
			printf("\n");
			return bench_fail("reading VmRSS of", "-P", (int)kb);
		}
		if (!c) {
			first = kb;
			threads = bench_proc_kb(o->pid, "Threads:");
		}
		last = kb;
		printf("%s%" PRIu32 ":%ld", c ? "," : "", c + 1, kb);
		fflush(stdout);
	}
	printf("\ntotal_s=%.6f\nfiles_per_s=%.1f\n", bench_now() - t0,
	       (double)o->files * o->cycles / (bench_now() - t0));
	if (o->pid > 0)
		printf("rss_kb_first=%ld\nrss_kb_last=%ld\nrss_growth_pct=%.2f\n"
		       "hwm_kb=%ld\nthreads_first=%ld\nthreads_last=%ld\n",
		       first, last,
		       first ? (double)(last - first) * 100.0 / (double)first : 0.0,
		       bench_proc_kb(o->pid, "VmHWM:"), threads,
		       bench_proc_kb(o->pid, "Threads:"));
	return 0;
}

static int bench_statfs(const struct bench_opts *o)
{
	struct statvfs sv;

	if (statvfs(o->dir, &sv) < 0)
		return bench_fail("statvfs", o->dir, -errno);
	printf(
	    "workload=statfs\ndir=%s\nfrsize=%lu\nblocks=%llu\nbfree=%llu\nbavail=%llu\n"
	    "inodes=%llu\nifree=%llu\nused_bytes=%llu\n",
	    o->dir, sv.f_frsize, (unsigned long long)sv.f_blocks,
	    (unsigned long long)sv.f_bfree, (unsigned long long)sv.f_bavail,
	    (unsigned long long)sv.f_files, (unsigned long long)sv.f_ffree,
	    (unsigned long long)(sv.f_blocks - sv.f_bfree) * sv.f_frsize);
	return 0;
}

static void bench_usage(FILE *out)
{
	fprintf(out,
	        "Usage: fs_bench [options] WORKLOAD DIR\n"
	        "\n"
	        "Workloads (DIR is the root of the filesystem under test):\n"
	        "  ingest     create N files of S bytes in D windows DIR/wNNNN with T\n"
	        "             threads, then sync; files/s includes the sync\n"
	        "  read       open/read/close files in random order, verify content;\n"
	        "             latency percentiles and files/s\n"
	        "  statwalk   stat every entry under DIR (nftw)\n"
	        "  overwrite  rewrite P%% of the files with a few bytes (O_TRUNC), sync\n"
	        "  expire     remove window W: rm -rf style (nftw, unlink, rmdir) or,\n"
	        "             with -m rmdir, one rmdir() (a tslabfs epoch drop)\n"
	        "  statfs     print statvfs() of DIR\n"
	        "  cycles     Y times: mkdir DIR/cycleNNNNN, fill it with N files of S\n"
	        "             bytes (T threads), sync, remove it (one rmdir, or file\n"
	        "             by file with -m tree); with -P, VmRSS of that process\n"
	        "             after each cycle, first and last, growth in %%\n"
	        "Sync is syncfs(DIR), then fsync() of every window and of DIR.\n"
	        "\n"
	        "Options:\n"
	        "  -n N        files in the data set (default 10000)\n"
	        "  -s S        bytes per file (default 100)\n"
	        "  -d D        top-level directories (default 10)\n"
	        "  -t T        threads for ingest and overwrite (default 1)\n"
	        "  -c C        files read (default all N)\n"
	        "  -p P        percent of files overwritten (default 10)\n"
	        "  -w W        window expired (default 0)\n"
	        "  -m METHOD   expire method: tree (default) or rmdir\n"
	        "  -r SEED     order of reads and overwrites (default 1)\n"
	        "  -y Y        cycles (default 100)\n"
	        "  -P PID      process whose VmRSS the cycles sample (the daemon)\n"
	        "  -u MS       wait after each drop before sampling (default 200)\n"
	        "Output: key=value lines. Exit status 0 ok, 1 failure, 2 usage.\n");
}

static int bench_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int bench_parse_opt(struct bench_opts *o, int c, const char *arg)
{
	uint64_t v = 0;
	int err = 0;

	switch (c) {
	case 'n':
		return bench_parse_u64(arg, 1, UINT64_C(1) << 32, &o->files);
	case 'c':
		return bench_parse_u64(arg, 0, UINT64_C(1) << 32, &o->count);
	case 'r':
		return bench_parse_u64(arg, 0, UINT64_MAX, &o->seed);
	case 'm':
		if (strcmp(arg, "rmdir") && strcmp(arg, "tree"))
			return -EINVAL;
		o->use_rmdir = !strcmp(arg, "rmdir");
		o->tree = !o->use_rmdir;
		return 0;
	case 's':
		err = bench_parse_u64(arg, 0, BENCH_MAX_SIZE, &v);
		o->size = (uint32_t)v;
		break;
	case 'd':
		err = bench_parse_u64(arg, 1, BENCH_MAX_DIRS, &v);
		o->dirs = (uint32_t)v;
		break;
	case 't':
		err = bench_parse_u64(arg, 1, BENCH_MAX_THREADS, &v);
		o->threads = (uint32_t)v;
		break;
	case 'p':
		err = bench_parse_u64(arg, 0, 100, &v);
		o->percent = (uint32_t)v;
		break;
	case 'w':
		err = bench_parse_u64(arg, 0, BENCH_MAX_DIRS - 1, &v);
		o->window = (uint32_t)v;
		break;
	case 'y':
		err = bench_parse_u64(arg, 1, 100000, &v);
		o->cycles = (uint32_t)v;
		break;
	case 'P':
		err = bench_parse_u64(arg, 1, INT32_MAX, &v);
		o->pid = (long)v;
		break;
	case 'u':
		err = bench_parse_u64(arg, 0, 60000, &v);
		o->settle = (uint32_t)v;
		break;
	default:
		return -EINVAL;
	}
	return err;
}

static int bench_parse(struct bench_opts *o, int argc, char **argv)
{
	int c;

	*o = (struct bench_opts){
	    .files = 10000,
	    .size = 100,
	    .dirs = 10,
	    .threads = 1,
	    .percent = 10,
	    .seed = 1,
	    .cycles = 100,
	    .settle = 200,
	};
	while ((c = getopt(argc, argv, "n:s:d:t:c:p:w:m:r:y:P:u:h")) != -1) {
		if (c == 'h') {
			bench_usage(stdout);
			exit(0);
		}
		if (bench_parse_opt(o, c, optarg)) {
			fprintf(stderr, "fs_bench: bad option -%c %s\n", c,
			        optarg ? optarg : "");
			return -EINVAL;
		}
	}
	if (argc - optind != 2)
		return -EINVAL;
	o->workload = argv[optind];
	o->dir = argv[optind + 1];
	if (o->dirs > o->files || o->window >= o->dirs) {
		fprintf(stderr, "fs_bench: need D <= N and W < D\n");
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	int root, rc;

	if (bench_parse(&o, argc, argv)) {
		bench_usage(stderr);
		return 2;
	}
	root = open(o.dir, O_RDONLY | O_DIRECTORY);
	if (root < 0)
		return bench_fail("open", o.dir, -errno);
	if (!strcmp(o.workload, "ingest")) {
		rc = bench_ingest(&o, root);
	} else if (!strcmp(o.workload, "read")) {
		rc = bench_read(&o, root);
	} else if (!strcmp(o.workload, "statwalk")) {
		rc = bench_statwalk(&o);
	} else if (!strcmp(o.workload, "overwrite")) {
		rc = bench_overwrite(&o, root);
	} else if (!strcmp(o.workload, "expire")) {
		rc = bench_expire(&o, root);
	} else if (!strcmp(o.workload, "statfs")) {
		rc = bench_statfs(&o);
	} else if (!strcmp(o.workload, "cycles")) {
		rc = bench_cycles(&o, root);
	} else {
		bench_usage(stderr);
		rc = 2;
	}
	close(root);
	return rc;
}
