// SPDX-License-Identifier: MIT
/*
 * zns_bench: sequential append throughput through zns_zone_write on an
 * emulated image file, side by side with plain O_DIRECT pwrite of the same
 * sizes to a file in the same directory, same total bytes, and the ratio.
 *
 *   zns_bench [DIR (default /var/tmp)] [MIB per run (default 256)] [RUNS (default 3)]
 *
 * Each measurement writes MIB sequentially (zone after zone for zns), twice:
 * "fresh" into a new sparse file (the filesystem allocates blocks during
 * the writes), "rewrite" over the same space again (pwrite overwrites in
 * place; zns resets its zones first, which keeps their blocks). Each pass
 * ends with zns_flush() / fdatasync(), included in the time. The best of
 * RUNS is printed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zns/zns.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Each run function times two passes over TOTAL bytes and returns 0, or -1
 * on error: t[0] the first pass into a fresh sparse file (the filesystem
 * allocates blocks as the writes arrive), t[1] a second pass over the same
 * space (pwrite: overwrite in place; zns: after resetting every zone, whose
 * blocks stay allocated). Each pass ends with fdatasync / zns_flush.
 */
static int run_pwrite(const char *path, size_t bs, uint64_t total, const void *buf,
                      double t[2])
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	int ret = 0;

	if (fd < 0 || ftruncate(fd, (off_t)total) < 0) {
		perror(path);
		return -1;
	}
	for (int pass = 0; pass < 2 && ret == 0; pass++) {
		double t0 = now();

		for (uint64_t off = 0; off < total && ret == 0; off += bs)
			if (pwrite(fd, buf, bs, (off_t)off) != (ssize_t)bs) {
				perror("pwrite");
				ret = -1;
			}
		if (fdatasync(fd) < 0)
			perror("fdatasync");
		t[pass] = now() - t0;
	}
	close(fd);
	unlink(path);
	sync(); /* freed blocks (and online discard) settle outside the timing */
	return ret;
}

static int zns_pass(struct zns_dev *dev, size_t bs, uint64_t total, uint64_t zone,
                    const void *buf)
{
	for (uint64_t done = 0; done < total; done += bs) {
		uint32_t z = (uint32_t)(done / zone);
		ssize_t w = zns_zone_write(dev, z, done % zone, buf, bs);

		if (w != (ssize_t)bs) {
			fprintf(stderr, "zns_zone_write: %s\n", strerror((int)-w));
			return -1;
		}
	}
	return zns_flush(dev) < 0 ? -1 : 0;
}

static int run_zns(const char *path, size_t bs, uint64_t total, const void *buf,
                   double t[2])
{
	const uint64_t zone = 64ull << 20;
	struct zns_emul_params p = {
	    .lba_size = 4096,
	    .zone_size = zone,
	    .nr_zones = (uint32_t)((total + zone - 1) / zone),
	};
	struct zns_dev *dev = NULL;
	int ret = zns_emul_create(path, &p);

	if (ret == 0)
		ret = zns_open(path, 0, &dev);
	if (ret < 0) {
		fprintf(stderr, "zns %s: %s\n", path, strerror(-ret));
		return -1;
	}
	for (int pass = 0; pass < 2 && ret == 0; pass++) {
		double t0 = now();

		for (uint32_t z = 0; pass && z < p.nr_zones && ret == 0; z++)
			ret = zns_zone_reset(dev, z);
		if (ret == 0)
			ret = zns_pass(dev, bs, total, zone, buf);
		t[pass] = now() - t0;
	}
	zns_close(dev);
	unlink(path);
	sync();
	return ret < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	uint64_t total = (argc > 2 ? strtoull(argv[2], NULL, 0) : 256) << 20;
	int runs = argc > 3 ? atoi(argv[3]) : 3;
	const size_t sizes[] = {4096, 128 << 10};
	char pw_path[4096], zns_path[4096];
	void *buf = zns_buf_alloc(128 << 10);

	if (!buf || runs < 1 || total == 0) {
		fprintf(stderr, "usage: %s [DIR] [MIB] [RUNS]\n", argv[0]);
		return 2;
	}
	memset(buf, 0xa5, 128 << 10);
	snprintf(pw_path, sizeof(pw_path), "%s/zns-bench-pwrite.%d", dir, (int)getpid());
	snprintf(zns_path, sizeof(zns_path), "%s/zns-bench-image.%d", dir, (int)getpid());
	printf("zns_bench: dir %s, %llu MiB per run, best of %d (flush included)\n", dir,
	       (unsigned long long)(total >> 20), runs);
	printf("%-8s %-8s %14s %14s %8s\n", "write", "pass", "pwrite MiB/s", "zns MiB/s",
	       "zns/pw");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t bs = sizes[i];
		uint64_t n = total / bs * bs;
		double best_pw[2] = {1e30, 1e30}, best_z[2] = {1e30, 1e30};

		for (int r = 0; r < runs; r++) {
			double a[2], b[2];

			/* alternate the order so neither always runs second */
			if (r % 2 == 0 && run_pwrite(pw_path, bs, n, buf, a) < 0)
				return 1;
			if (run_zns(zns_path, bs, n, buf, b) < 0)
				return 1;
			if (r % 2 == 1 && run_pwrite(pw_path, bs, n, buf, a) < 0)
				return 1;
			for (int k = 0; k < 2; k++) {
				best_pw[k] = a[k] < best_pw[k] ? a[k] : best_pw[k];
				best_z[k] = b[k] < best_z[k] ? b[k] : best_z[k];
			}
		}
		for (int k = 0; k < 2; k++) {
			double mpw = (double)n / (1 << 20) / best_pw[k];
			double mz = (double)n / (1 << 20) / best_z[k];

			printf("%-8s %-8s %14.1f %14.1f %8.2f\n",
			       bs == 4096 ? "4KiB" : "128KiB", k ? "rewrite" : "fresh",
			       mpw, mz, mz / mpw);
		}
	}
	zns_buf_free(buf);
	return 0;
}
