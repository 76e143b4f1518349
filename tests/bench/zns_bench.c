// SPDX-License-Identifier: MIT
/*
 * zns_bench: sequential append throughput through zns_zone_write on an
 * emulated image file, side by side with plain O_DIRECT pwrite of the same
 * sizes to a file in the same directory, same total bytes, and the ratio.
 *
 *   zns_bench [DIR (default /var/tmp)] [MIB per run (default 256)] [RUNS (default 3)]
 *
 * Each measurement writes MIB sequentially (zone after zone for zns) into a
 * fresh sparse file and ends with zns_flush() / fdatasync(), which is
 * included in the time. The best of RUNS is printed.
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

/* Returns seconds, or < 0 on error. */
static double run_pwrite(const char *path, size_t bs, uint64_t total, const void *buf)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	double t0, t;

	if (fd < 0 || ftruncate(fd, (off_t)total) < 0) {
		perror(path);
		return -1;
	}
	t0 = now();
	for (uint64_t off = 0; off < total; off += bs) {
		if (pwrite(fd, buf, bs, (off_t)off) != (ssize_t)bs) {
			perror("pwrite");
			close(fd);
			return -1;
		}
	}
	if (fdatasync(fd) < 0)
		perror("fdatasync");
	t = now() - t0;
	close(fd);
	unlink(path);
	return t;
}

static double run_zns(const char *path, size_t bs, uint64_t total, const void *buf)
{
	const uint64_t zone = 64ull << 20;
	struct zns_emul_params p = {
	    .lba_size = 4096,
	    .zone_size = zone,
	    .nr_zones = (uint32_t)((total + zone - 1) / zone),
	};
	struct zns_dev *dev = NULL;
	double t0, t;
	int ret = zns_emul_create(path, &p);

	if (ret == 0)
		ret = zns_open(path, 0, &dev);
	if (ret < 0) {
		fprintf(stderr, "zns %s: %s\n", path, strerror(-ret));
		return -1;
	}
	t0 = now();
	for (uint64_t done = 0; done < total; done += bs) {
		uint32_t z = (uint32_t)(done / zone);
		ssize_t w = zns_zone_write(dev, z, done % zone, buf, bs);

		if (w != (ssize_t)bs) {
			fprintf(stderr, "zns_zone_write: %s\n", strerror((int)-w));
			zns_close(dev);
			return -1;
		}
	}
	ret = zns_flush(dev);
	t = now() - t0;
	zns_close(dev);
	unlink(path);
	return ret < 0 ? -1 : t;
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
	printf("%-8s %14s %14s %8s\n", "write", "pwrite MiB/s", "zns MiB/s", "zns/pw");
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t bs = sizes[i];
		uint64_t n = total / bs * bs;
		double best_pw = 1e30, best_z = 1e30;

		for (int r = 0; r < runs; r++) {
			double a = run_pwrite(pw_path, bs, n, buf);
			double b = run_zns(zns_path, bs, n, buf);

			if (a < 0 || b < 0)
				return 1;
			best_pw = a < best_pw ? a : best_pw;
			best_z = b < best_z ? b : best_z;
		}
		double mpw = (double)n / (1 << 20) / best_pw,
		       mz = (double)n / (1 << 20) / best_z;

		printf("%-8s %14.1f %14.1f %8.2f\n", bs == 4096 ? "4KiB" : "128KiB", mpw,
		       mz, mz / mpw);
	}
	zns_buf_free(buf);
	return 0;
}
