// SPDX-License-Identifier: MIT
/*
 * fsync_bench: acknowledged ingest. T threads each create, write S bytes,
 * fsync and close their own files in one directory (an MQTT broker or a
 * queue consumer that acknowledges every reading), for a fixed number of
 * files per thread. Prints key=value lines:
 *   files, threads, size, seconds, files_per_s   the whole run (wall time)
 *   fsync_p50_us, fsync_p99_us, fsync_max_us     latency of the fsync() call
 *   create_p50_us                                open(O_CREAT)+write
 * Every file's content is read back and compared after the run (a run
 * that stored the wrong bytes fails, exit 1).
 *
 *   fsync_bench [-t THREADS] [-n FILES_PER_THREAD] [-s SIZE] DIR
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fb_opts {
	const char *dir;
	unsigned threads, per_thread, size;
};

struct fb_thread {
	const struct fb_opts *o;
	unsigned id;
	uint32_t *fsync_us, *create_us;
	int err;
	pthread_t th;
};

static uint64_t fb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fb_fill(unsigned t, unsigned i, unsigned size, char *buf)
{
	uint64_t x = ((uint64_t)t << 32 | i) * 0x9E3779B97F4A7C15ull + 1;

	for (unsigned k = 0; k < size; k++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[k] = (char)('a' + x % 26);
	}
}

static void *fb_worker(void *arg)
{
	struct fb_thread *w = arg;
	const struct fb_opts *o = w->o;
	char path[4096], *buf = malloc(o->size + 1);

	if (!buf) {
		w->err = ENOMEM;
		return NULL;
	}
	for (unsigned i = 0; i < o->per_thread; i++) {
		uint64_t t0, t1, t2;
		int fd;

		snprintf(path, sizeof(path), "%s/t%03u-%08u", o->dir, w->id, i);
		fb_fill(w->id, i, o->size, buf);
		t0 = fb_now_ns();
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0 || write(fd, buf, o->size) != (ssize_t)o->size) {
			w->err = errno ? errno : EIO;
			fprintf(stderr, "fsync_bench: %s: %s\n", path, strerror(w->err));
			if (fd >= 0)
				close(fd);
			break;
		}
		t1 = fb_now_ns();
		if (fsync(fd) < 0) {
			w->err = errno;
			fprintf(stderr, "fsync_bench: fsync %s: %s\n", path,
			        strerror(errno));
			close(fd);
			break;
		}
		t2 = fb_now_ns();
		close(fd);
		w->create_us[i] = (uint32_t)((t1 - t0) / 1000);
		w->fsync_us[i] = (uint32_t)((t2 - t1) / 1000);
	}
	free(buf);
	return NULL;
}

static int fb_verify(const struct fb_opts *o)
{
	char path[4096], *want = malloc(o->size + 1), *got = malloc(o->size + 2);
	int ret = 0;

	if (!want || !got) {
		free(want);
		free(got);
		return -1;
	}
	for (unsigned t = 0; t < o->threads && !ret; t++)
		for (unsigned i = 0; i < o->per_thread && !ret; i++) {
			int fd;
			ssize_t r;

			snprintf(path, sizeof(path), "%s/t%03u-%08u", o->dir, t, i);
			fb_fill(t, i, o->size, want);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			r = fd >= 0 ? read(fd, got, o->size + 1) : -1;
			if (fd >= 0)
				close(fd);
			if (r != (ssize_t)o->size || memcmp(got, want, o->size)) {
				fprintf(stderr, "fsync_bench: %s: wrong content\n", path);
				ret = -1;
			}
		}
	free(want);
	free(got);
	return ret;
}

static int fb_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t fb_pct(uint32_t *v, size_t n, double p)
{
	size_t k = (size_t)(p * (double)(n - 1) + 0.5);

	return n ? v[k] : 0;
}

int main(int argc, char **argv)
{
	struct fb_opts o = {.threads = 1, .per_thread = 1000, .size = 100};
	struct fb_thread *w;
	uint32_t *fs_us, *cr_us;
	uint64_t t0, t1;
	size_t n;
	int c, err = 0;

	while ((c = getopt(argc, argv, "t:n:s:h")) != -1) {
		switch (c) {
		case 't':
			o.threads = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'n':
			o.per_thread = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 's':
			o.size = (unsigned)strtoul(optarg, NULL, 0);
			break;
		case 'h':
			printf("Usage: fsync_bench [-t THREADS] [-n FILES_PER_THREAD] "
			       "[-s SIZE] DIR\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind + 1 != argc || !o.threads || o.threads > 999 || !o.per_thread ||
	    !o.size || o.size > (1u << 20)) {
		fprintf(stderr,
		        "Usage: fsync_bench [-t THREADS 1..999] [-n FILES_PER_THREAD] "
		        "[-s SIZE 1..1048576] DIR\n");
		return 2;
	}
	o.dir = argv[optind];
	n = (size_t)o.threads * o.per_thread;
	w = calloc(o.threads, sizeof(*w));
	fs_us = calloc(n, sizeof(*fs_us));
	cr_us = calloc(n, sizeof(*cr_us));
	if (!w || !fs_us || !cr_us)
		return 1;
	t0 = fb_now_ns();
	for (unsigned t = 0; t < o.threads; t++) {
		w[t] = (struct fb_thread){.o = &o,
		                          .id = t,
		                          .fsync_us = fs_us + (size_t)t * o.per_thread,
		                          .create_us = cr_us + (size_t)t * o.per_thread};
		if (pthread_create(&w[t].th, NULL, fb_worker, &w[t]))
			return 1;
	}
	for (unsigned t = 0; t < o.threads; t++) {
		pthread_join(w[t].th, NULL);
		if (w[t].err)
			err = w[t].err;
	}
	t1 = fb_now_ns();
	if (err)
		return 1;
	qsort(fs_us, n, sizeof(*fs_us), fb_cmp);
	qsort(cr_us, n, sizeof(*cr_us), fb_cmp);
	printf("files=%zu\nthreads=%u\nsize=%u\nseconds=%.3f\nfiles_per_s=%.0f\n"
	       "fsync_p50_us=%u\nfsync_p99_us=%u\nfsync_max_us=%u\ncreate_p50_us=%u\n",
	       n, o.threads, o.size, (double)(t1 - t0) / 1e9,
	       (double)n / ((double)(t1 - t0) / 1e9), fb_pct(fs_us, n, 0.5),
	       fb_pct(fs_us, n, 0.99), fs_us[n - 1], fb_pct(cr_us, n, 0.5));
	if (fb_verify(&o)) {
		printf("verify=failed\n");
		return 1;
	}
	printf("verify=ok\n");
	free(w);
	free(fs_us);
	free(cr_us);
	return 0;
}
