// SPDX-License-Identifier: MIT
/*
 * Emulated zones on a conventional block device: a loop device over a
 * temporary file. Needs root and losetup; exits 77 (skipped) without them.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "zns/zns.h"

static char dir[256], backing[512], loopdev[64];

static void fill(uint8_t *b, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(((off + i) * 13u) ^ ((off + i) >> 11));
}

static void test_blkdev(void **state)
{
	struct zns_emul_params p = {
	    .lba_size = 4096, .zone_size = 4 << 20, .max_open = 2, .max_active = 3};
	struct zns_dev *dev = NULL, *other = NULL;
	uint8_t *w = zns_buf_alloc(64 << 10), *r = zns_buf_alloc(64 << 10);
	struct zns_zone zz;

	assert_int_equal(zns_probe(loopdev), ZNS_BACKEND_EMUL_BLKDEV);
	assert_int_equal(zns_open(loopdev, 0, &dev), -EMEDIUMTYPE);
	assert_int_equal(zns_emul_create(loopdev, &p), 0);
	assert_int_equal(zns_open(loopdev, ZNS_OPEN_EXCL, &dev), 0);
	assert_int_equal(zns_open(loopdev, ZNS_OPEN_EXCL, &other), -EBUSY);
	assert_int_equal(zns_geometry(dev)->backend, ZNS_BACKEND_EMUL_BLKDEV);
	/* 64 MiB device: 1 MiB of metadata, then 15 zones of 4 MiB */
	assert_int_equal(zns_geometry(dev)->nr_zones, 15);

	fill(w, 64 << 10, 0);
	assert_int_equal(zns_zone_write(dev, 3, 0, w, 64 << 10), 64 << 10);
	assert_int_equal(zns_zone_write(dev, 3, 0, w, 4096), -EIO);
	assert_int_equal(zns_zone_read(dev, 3, 0, r, 64 << 10), 64 << 10);
	assert_memory_equal(w, r, 64 << 10);
	for (uint32_t z = 4; z < 6; z++)
		assert_int_equal(zns_zone_write(dev, z, 0, w, 4096), 4096);
	assert_int_equal(zns_zone_write(dev, 6, 0, w, 4096), -EOVERFLOW);
	assert_int_equal(zns_flush(dev), 0);
	zns_close(dev);

	assert_int_equal(zns_open(loopdev, 0, &dev), 0);
	assert_int_equal(zns_zone_report(dev, 3, 1, &zz), 1);
	assert_int_equal(zz.wp, 64 << 10);
	assert_int_equal(zz.cond, ZNS_COND_CLOSED); /* closed for zone 5's open */
	assert_int_equal(zz.start, zns_geometry(dev)->first_zone_off + 3ull * (4 << 20));
	assert_int_equal(zns_zone_read(dev, 3, 0, r, 64 << 10), 64 << 10);
	assert_memory_equal(w, r, 64 << 10);
	assert_int_equal(zns_zone_reset(dev, 3), 0);
	assert_int_equal(zns_zone_report(dev, 3, 1, &zz), 1);
	assert_int_equal(zz.cond, ZNS_COND_EMPTY);
	zns_close(dev);
	zns_buf_free(w);
	zns_buf_free(r);
	(void)state;
}

static int run(const char *cmd, char *out, size_t outlen)
{
	FILE *f = popen(cmd, "r");
	int st;

	if (!f)
		return -1;
	if (out && !fgets(out, (int)outlen, f))
		out[0] = 0;
	st = pclose(f);
	if (out)
		out[strcspn(out, "\n")] = 0;
	return st;
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_blkdev)};
	char cmd[700];
	int fd, ret;

	if (geteuid() != 0) {
		printf("skip: loop devices need root\n");
		return 77;
	}
	snprintf(dir, sizeof(dir), "%s/zns-blk-XXXXXX", tmp);
	if (!mkdtemp(dir))
		return 1;
	snprintf(backing, sizeof(backing), "%s/backing", dir);
	fd = open(backing, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 64 << 20) < 0)
		return 1;
	close(fd);
	snprintf(cmd, sizeof(cmd), "losetup -f --show %s 2>/dev/null", backing);
	if (run(cmd, loopdev, sizeof(loopdev)) != 0 || !loopdev[0]) {
		printf("skip: losetup could not attach a loop device\n");
		unlink(backing);
		rmdir(dir);
		return 77;
	}
	ret = cmocka_run_group_tests_name("zns-blkdev", tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "losetup -d %s 2>&1", loopdev);
	run(cmd, NULL, 0);
	unlink(backing);
	rmdir(dir);
	return ret;
}
