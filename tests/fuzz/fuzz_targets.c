// SPDX-License-Identifier: MIT
/*
 * libFuzzer targets for every on-disk parser (issue 11). One source, one
 * target per FUZZ_TARGET value (run-fuzz.sh builds each with clang-14,
 * -fsanitize=fuzzer,address,undefined):
 *
 *   sb      slab_sb_decode + the checkpoint reference (slab_sb_read_ckpt's
 *           parser) on one 4096-byte block
 *   page    slab_page_hdr_decode, then every record of the page
 *   record  slab_rec_decode on one record
 *   ckpt    a checkpoint image: header, zone table, epoch table and every
 *           entry through slab_ckpt_next
 *   emul    the emulator's header and zone table: the input is the start
 *           of an image file, which is opened (zns_open) and reported
 *   image   a whole small filesystem (emulator header, zone table,
 *           superblock, checkpoint zones, journal, slab pages) built once
 *           by mkfs + a workload; each input is a list of patches
 *           (u32 offset, u8 length, bytes) applied to a copy, which is then
 *           opened and mounted read-only in check mode and every object
 *           read. This is the path mount and fsck take.
 *
 * Crashes found stay in tests/fuzz/regress/<target>/ and are run as inputs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "slab/slab_int.h"
#include "zns/zns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define T_SB     1
#define T_PAGE   2
#define T_RECORD 3
#define T_CKPT   4
#define T_IMAGE  5
#define T_EMUL   6

#if FUZZ_TARGET == T_EMUL
static char emul_path[4200];
#endif

#if FUZZ_TARGET == T_IMAGE
static char base_path[4200], work_path[4200];
static uint8_t *base_img;
static size_t base_len;

static int read_all(int fd, uint8_t *p, size_t n)
{
	for (size_t d = 0; d < n;) {
		ssize_t r = pread(fd, p + d, n - d, (off_t)d);

		if (r <= 0)
			return -1;
		d += (size_t)r;
	}
	return 0;
}

/* mkfs and a small workload: three epochs, chunked objects, frees, a drop. */
static int build_base(void)
{
	struct zns_emul_params p = {.lba_size = 4096,
	                            .zone_size = 128 << 10,
	                            .nr_zones = 20,
	                            .size = 20u * (128 << 10) + (1 << 20)};
	struct zns_dev *dev;
	struct slab_store *st;
	uint32_t ep[4];
	char buf[9000];
	int fd;

	const char *dir = getenv("TSLAB_FUZZ_DIR") ? getenv("TSLAB_FUZZ_DIR") : "/tmp";

	snprintf(base_path, sizeof(base_path), "%s/base-%d", dir, (int)getpid());
	snprintf(work_path, sizeof(work_path), "%s/work-%d", dir, (int)getpid());
	unlink(base_path);
	if (zns_emul_create(base_path, &p) || zns_open(base_path, 0, &dev))
		return -1;
	if (slab_format(dev, NULL) || slab_mount(dev, NULL, NULL, NULL, &st))
		return -1;
	for (int e = 0; e < 4; e++) {
		if (slab_epoch_create(st, &ep[e]))
			return -1;
		for (int i = 0; i < 20; i++) {
			slab_handle_t h;
			size_t n = (size_t)(i * 457) % sizeof(buf);
			struct slab_obj o = {
			    .kind = 1,
			    .attr = {.mode = 0100644, .nlink = 1, .size = n},
			    .parent = SLAB_HANDLE_ROOT,
			    .name = "f",
			    .name_len = 1,
			    .data = buf,
			    .data_len = n};

			memset(buf, 'a' + i, n);
			if (slab_obj_alloc(st, ep[e], &h) || slab_obj_put(st, h, &o))
				return -1;
			if (i % 7 == 3 && slab_obj_free(st, h))
				return -1;
		}
		if (slab_sync(st))
			return -1;
	}
	if (slab_epoch_drop(st, ep[3]) || slab_unmount(st))
		return -1;
	zns_close(dev);
	fd = open(base_path, O_RDONLY);
	if (fd < 0)
		return -1;
	base_len = (size_t)lseek(fd, 0, SEEK_END);
	base_img = malloc(base_len);
	if (!base_img || read_all(fd, base_img, base_len))
		return -1;
	close(fd);
	unlink(base_path);
	return 0;
}

static int visit(void *ctx, slab_handle_t h, const struct slab_obj *o)
{
	slab_handle_t *hs = ctx;

	(void)o;
	for (int i = 0; i < 64; i++)
		if (!hs[i]) {
			hs[i] = h;
			break;
		}
	return 0;
}
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
#if FUZZ_TARGET == T_EMUL
	snprintf(emul_path, sizeof(emul_path), "%s/emul-%d",
	         getenv("TSLAB_FUZZ_DIR") ? getenv("TSLAB_FUZZ_DIR") : "/tmp",
	         (int)getpid());
#endif
#if FUZZ_TARGET == T_IMAGE
	if (build_base()) {
		fprintf(stderr, "fuzz: cannot build the base image\n");
		abort();
	}
#endif
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
#if FUZZ_TARGET == T_SB
	uint8_t blk[SLAB_SB_BLOCK] = {0};
	struct slab_sb_info sb;
	struct slab_sb_geom g;

	memcpy(blk, data, size < sizeof(blk) ? size : sizeof(blk));
	(void)slab_sb_decode(blk, &sb, &g);
#elif FUZZ_TARGET == T_PAGE
	struct slab_page_hdr ph;

	if (size < SLAB_PAGE_HDR || slab_page_hdr_decode(data, &ph))
		return 0;
	for (uint32_t off = SLAB_PAGE_HDR; off < ph.used && off < size;) {
		struct slab_rec r;
		size_t lim = (ph.used < size ? ph.used : size) - off;

		if (slab_rec_decode(data + off, lim, ph.def_uid, ph.def_gid, &r))
			break;
		off += r.len;
	}
#elif FUZZ_TARGET == T_RECORD
	struct slab_rec r;

	(void)slab_rec_decode(data, size, 1000, 1000, &r);
#elif FUZZ_TARGET == T_CKPT
	struct slab_ckpt_img img = {0};
	struct slab_ckpt_ent e;
	uint8_t *copy = malloc(size ? size : 1);
	size_t pos;
	int n = 0;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	img.buf = copy;
	img.len = size;
	img.nzones = 16;
	img.first_data = 4;
	pos = 0;
	img.ent_off = 0;
	while (n++ < 100000 && slab_ckpt_next(&img, &pos, &e) > 0)
		;
	free(copy);
#elif FUZZ_TARGET == T_IMAGE
	struct zns_dev *dev;
	struct slab_store *st;
	struct slab_mount_opts mo = {.read_only = true, .check = true};
	slab_handle_t hs[64] = {0};
	uint8_t *img;
	int fd = open(work_path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0)
		abort();
	img = mmap(NULL, base_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ftruncate(fd, (off_t)base_len) || img == MAP_FAILED)
		abort();
	memcpy(img, base_img, base_len);
	/* patches: u32 offset (mod the image), u8 length, bytes */
	for (size_t i = 0; i + 5 <= size;) {
		uint32_t off = (uint32_t)data[i] | (uint32_t)data[i + 1] << 8 |
		               (uint32_t)data[i + 2] << 16 | (uint32_t)data[i + 3] << 24;
		size_t len = data[i + 4];

		i += 5;
		if (len > size - i)
			len = size - i;
		off %= (uint32_t)base_len;
		if (len > base_len - off)
			len = base_len - off;
		memcpy(img + off, data + i, len);
		i += len;
	}
	munmap(img, base_len);
	close(fd);
	if (zns_open(work_path, ZNS_OPEN_RDONLY, &dev) == 0) {
		if (slab_mount(dev, &mo, visit, hs, &st) == 0) {
			char buf[4096];

			for (int i = 0; i < 64 && hs[i]; i++)
				(void)slab_obj_read(st, hs[i], 0, buf, sizeof(buf));
			slab_unmount(st);
		}
		zns_close(dev);
	}
#elif FUZZ_TARGET == T_EMUL
	struct zns_dev *dev;
	int fd = open(emul_path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if (zns_open(emul_path, ZNS_OPEN_RDONLY, &dev) == 0) {
		const struct zns_geometry *g = zns_geometry(dev);
		struct zns_zone zr[16];
		uint32_t n = g->nr_zones < 16 ? g->nr_zones : 16;

		(void)zns_zone_report(dev, 0, n, zr);
		zns_close(dev);
	}
#else
#error "FUZZ_TARGET not set"
#endif
	return 0;
}
