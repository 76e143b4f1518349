// SPDX-License-Identifier: MIT
/*
 * ckpt_bench [OBJECTS=200000] [DIR=$TMPDIR or /tmp]: mount time of a slab
 * store with and without its checkpoint. Two fills on a 64-zone emulated
 * image: OBJECTS files of 100-299 B, then OBJECTS/4 files of 2000-3499 B,
 * each written twice (half the device bytes dead). Each mount is timed
 * best of three, alternating full scan and checkpoint start; also the size
 * of the checkpoint and the time of the unmount that writes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "slab/slab_int.h"

static void must(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "ckpt_bench: %s: %s\n", what,
		        strerror(rc < 0 ? -rc : rc));
		exit(1);
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_cb(void *ctx, slab_handle_t h, const struct slab_obj *o)
{
	(void)h;
	(void)o;
	(*(uint64_t *)ctx)++;
	return 0;
}

static void mkimg(char *path, size_t n, const char *dir)
{
	struct zns_emul_params p = {.lba_size = 4096,
	                            .zone_size = 8 << 20,
	                            .nr_zones = 64,
	                            .size = (uint64_t)66 * (8 << 20) + (4u << 20),
	                            .max_open = 14,
	                            .max_active = 14};
	int fd;

	snprintf(path, n, "%s/ckpt-bench-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		must(-errno, "mkstemp");
	close(fd);
	must(zns_emul_create(path, &p), "zns_emul_create");
}

/* One read-only mount of IMG; returns its wall time, the objects it
 * reported in *N and whether it started from the checkpoint in *LOADED. */
static double time_mount(const char *img, bool no_ck, uint64_t *n, bool *loaded)
{
	struct slab_mount_opts o = {.read_only = true, .no_checkpoint = no_ck};
	struct zns_dev *dev;
	struct slab_store *st;
	double t;

	*n = 0;
	must(zns_open(img, 0, &dev), "zns_open");
	t = now_s();
	must(slab_mount(dev, &o, count_cb, n, &st), "slab_mount");
	t = now_s() - t;
	*loaded = st->ck_loaded;
	must(slab_unmount(st), "slab_unmount");
	zns_close(dev);
	return t;
}

static void fill(const char *img, uint32_t n, uint32_t minlen, uint32_t span,
                 double *unmount_s)
{
	static const struct slab_mount_opts rw = {.commit_ms = 40};
	static uint8_t buf[4096];
	slab_handle_t *hs = calloc(n, sizeof(*hs));
	struct zns_dev *dev;
	struct slab_store *st;
	char name[32];

	if (!hs)
		must(-ENOMEM, "calloc");
	must(zns_open(img, 0, &dev), "zns_open");
	must(slab_format(dev, NULL), "slab_format");
	must(slab_mount(dev, &rw, NULL, NULL, &st), "slab_mount");
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < n; i++) {
			uint32_t len = minlen + i % span;
			struct slab_obj o = {
			    .kind = 1,
			    .attr = {.mode = 0100644, .nlink = 1, .size = len},
			    .parent = SLAB_HANDLE_ROOT,
			    .name = name,
			    .data = buf,
			    .data_len = len};

			if (pass == 0)
				must(slab_obj_alloc(st, SLAB_EPOCH_ROOT, &hs[i]),
				     "slab_obj_alloc");
			o.name_len = (uint8_t)snprintf(name, sizeof(name), "file-%u", i);
			memset(buf, (int)(i + (uint32_t)pass), len);
			must(slab_obj_put(st, hs[i], &o), "slab_obj_put");
		}
	double t0 = now_s();

	must(slab_unmount(st), "slab_unmount");
	*unmount_s = now_s() - t0;
	zns_close(dev);
	free(hs);
}

static void measure(const char *dir, uint32_t n, uint32_t minlen, uint32_t span)
{
	char img[256];
	double tu, tf = 1e9, tc = 1e9;
	struct slab_ckpt_ref ref;
	struct slab_sb_info sb;
	struct zns_dev *dev;
	bool has = false, loaded;
	uint64_t got;

	mkimg(img, sizeof(img), dir);
	fill(img, n, minlen, span, &tu);
	for (int k = 0; k < 3; k++) {
		double t = time_mount(img, true, &got, &loaded);

		if (got != n || loaded)
			must(-EIO, "full-scan mount found other objects");
		tf = t < tf ? t : tf;
		t = time_mount(img, false, &got, &loaded);
		if (got != n || !loaded)
			must(-EIO, "checkpoint mount found other objects");
		tc = t < tc ? t : tc;
	}
	must(zns_open(img, 0, &dev), "zns_open");
	must(slab_sb_read_ckpt(dev, &sb, &ref, &has), "slab_sb_read_ckpt");
	zns_close(dev);
	printf("%u objects of %u-%u B: mount full scan %.3f s, from checkpoint "
	       "%.3f s (%.1fx); checkpoint %.1f MiB in %u zones; unmount with "
	       "checkpoint %.3f s\n",
	       n, minlen, minlen + span - 1, tf, tc, tf / tc,
	       has ? (double)ref.bytes / (1 << 20) : 0.0, has ? ref.nzones : 0, tu);
	unlink(img);
}

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 200000;
	const char *dir = argc > 2 ? argv[2] : getenv("TMPDIR");

	if (n == 0 || (argc > 1 && !strcmp(argv[1], "--help"))) {
		fprintf(stderr, "usage: ckpt_bench [OBJECTS=200000] [DIR]\n");
		return 2;
	}
	measure(dir ? dir : "/tmp", n, 100, 200);
	measure(dir ? dir : "/tmp", n / 4, 2000, 1500);
	return 0;
}
