// SPDX-License-Identifier: MIT
/*
 * The write log (zns/wlog.c, wlog_read.c): every operation a power cut can
 * keep is recorded in device order with its bytes; replaying all of it on
 * a copy of the starting image gives the same zones and bytes; replaying a
 * prefix or a torn write gives exactly that much; marks appended by
 * another writer are read back in place; a truncated last record is
 * ignored.
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "zns/zns.h"

static char dir[256], img[300], base[300], copy[300], logp[300];

#define LBA 4096u
#define ZSZ (64u * 4096u)
#define NZ  8u

static int suite_setup(void **state)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	(void)state;
	snprintf(dir, sizeof(dir), "%s/zns-wlog-XXXXXX", tmp);
	if (!mkdtemp(dir))
		return -1;
	snprintf(img, sizeof(img), "%s/img", dir);
	snprintf(base, sizeof(base), "%s/base", dir);
	snprintf(copy, sizeof(copy), "%s/copy", dir);
	snprintf(logp, sizeof(logp), "%s/log", dir);
	return 0;
}

static int suite_teardown(void **state)
{
	(void)state;
	unlink(img);
	unlink(base);
	unlink(copy);
	unlink(logp);
	rmdir(dir);
	return 0;
}

static void cp(const char *from, const char *to)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "cp --sparse=always '%s' '%s'", from, to);
	assert_int_equal(system(cmd), 0);
}

static void fill(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 12));
}

static void mark(const char *text)
{
	uint8_t h[ZNS_WLOG_REC] = {'W', 'R', 'E', 'C', ZNS_WLOG_MARK};
	size_t n = strlen(text);
	int fd = open(logp, O_WRONLY | O_APPEND);

	assert_true(fd >= 0);
	h[12] = (uint8_t)n;
	uint8_t rec[ZNS_WLOG_REC + 64];

	memcpy(rec, h, sizeof(h));
	memcpy(rec + sizeof(h), text, n);
	assert_int_equal(write(fd, rec, sizeof(h) + n), (ssize_t)(sizeof(h) + n));
	close(fd);
}

/* Records: w(z1,1 blk) flush w(z2,3 blks) MARK reset(z1) w(z1,2 blks) finish(z2) */
static void record(void)
{
	struct zns_emul_params p = {.lba_size = LBA, .zone_size = ZSZ, .nr_zones = NZ};
	struct zns_dev *dev;
	uint8_t *b = zns_buf_alloc(3 * LBA);

	assert_int_equal(zns_emul_create(img, &p), 0);
	assert_int_equal(zns_open(img, 0, &dev), 0);
	fill(b, LBA, 9);
	assert_int_equal(zns_zone_write(dev, 0, 0, b, LBA), LBA); /* before the log */
	zns_close(dev);
	cp(img, base);

	assert_int_equal(zns_open(img, 0, &dev), 0);
	assert_int_equal(zns_wlog_start(dev, logp), 0);
	assert_int_equal(zns_wlog_start(dev, logp), -EBUSY);
	fill(b, LBA, 1);
	assert_int_equal(zns_zone_write(dev, 1, 0, b, LBA), LBA);
	assert_int_equal(zns_flush(dev), 0);
	fill(b, 3 * LBA, 2);
	assert_int_equal(zns_zone_write(dev, 2, 0, b, 3 * LBA), 3 * LBA);
	/* a failed write is not logged */
	assert_int_equal(zns_zone_write(dev, 2, 0, b, LBA), -EIO);
	mark("E 0");
	assert_int_equal(zns_zone_reset(dev, 1), 0);
	fill(b, 2 * LBA, 3);
	assert_int_equal(zns_zone_write(dev, 1, 0, b, 2 * LBA), 2 * LBA);
	assert_int_equal(zns_zone_finish(dev, 2), 0);
	zns_close(dev);
	zns_buf_free(b);
}

static void same_zone(struct zns_dev *a, struct zns_dev *b, uint32_t z)
{
	struct zns_zone za, zb;
	uint8_t *ba = zns_buf_alloc(ZSZ), *bb = zns_buf_alloc(ZSZ);

	assert_int_equal(zns_zone_report(a, z, 1, &za), 1);
	assert_int_equal(zns_zone_report(b, z, 1, &zb), 1);
	assert_int_equal(za.wp, zb.wp);
	assert_int_equal(za.cond == ZNS_COND_FULL, zb.cond == ZNS_COND_FULL);
	assert_int_equal(zns_zone_read(a, z, 0, ba, ZSZ), ZSZ);
	assert_int_equal(zns_zone_read(b, z, 0, bb, ZSZ), ZSZ);
	assert_memory_equal(ba, bb, ZSZ);
	zns_buf_free(ba);
	zns_buf_free(bb);
}

static void test_record_and_replay_all(void **state)
{
	struct zns_wlog_reader *r;
	struct zns_wlog_rec rec;
	struct zns_dev *a, *b;
	static const enum zns_wlog_type want[] = {
	    ZNS_WLOG_WRITE, ZNS_WLOG_FLUSH, ZNS_WLOG_WRITE, ZNS_WLOG_MARK,
	    ZNS_WLOG_RESET, ZNS_WLOG_WRITE, ZNS_WLOG_FINISH};

	(void)state;
	record();
	assert_int_equal(zns_wlog_reader_open(logp, &r), 0);
	/* zns_close flushes nothing by itself: exactly the calls made */
	assert_int_equal(zns_wlog_count(r), 7);
	for (size_t i = 0; i < 7; i++) {
		assert_int_equal(zns_wlog_get(r, i, &rec), 0);
		assert_int_equal(rec.type, want[i]);
	}
	assert_int_equal(zns_wlog_get(r, 2, &rec), 0);
	assert_int_equal(rec.zone, 2);
	assert_int_equal(rec.len, 3 * LBA);
	assert_int_equal(zns_wlog_get(r, 3, &rec), 0);
	assert_memory_equal(rec.payload, "E 0", 3);

	cp(base, copy);
	assert_int_equal(zns_open(copy, 0, &b), 0);
	for (size_t i = 0; i < 7; i++)
		assert_int_equal(zns_wlog_apply(b, r, i, 0), 0);
	assert_int_equal(zns_open(img, ZNS_OPEN_RDONLY, &a), 0);
	for (uint32_t z = 0; z < NZ; z++)
		same_zone(a, b, z);
	zns_close(a);
	zns_close(b);
	zns_wlog_reader_close(r);
}

static void test_prefix_and_torn(void **state)
{
	struct zns_wlog_reader *r;
	struct zns_dev *b;
	struct zns_zone z;
	uint8_t *buf = zns_buf_alloc(3 * LBA), *want = zns_buf_alloc(3 * LBA);

	(void)state;
	record();
	assert_int_equal(zns_wlog_reader_open(logp, &r), 0);
	cp(base, copy);
	assert_int_equal(zns_open(copy, 0, &b), 0);
	/* zone 1's first write, then 2 of the 3 blocks of zone 2's write */
	assert_int_equal(zns_wlog_apply(b, r, 0, 0), 0);
	assert_int_equal(zns_wlog_apply(b, r, 2, 2), 0);
	assert_int_equal(zns_zone_report(b, 2, 1, &z), 1);
	assert_int_equal(z.wp, 2 * LBA);
	fill(want, 3 * LBA, 2);
	memset(want + 2 * LBA, 0, LBA);
	assert_int_equal(zns_zone_read(b, 2, 0, buf, 3 * LBA), 3 * LBA);
	assert_memory_equal(buf, want, 3 * LBA);
	/* zone 0 keeps what it had before the log started */
	assert_int_equal(zns_zone_report(b, 0, 1, &z), 1);
	assert_int_equal(z.wp, LBA);
	/* replaying the second zone-1 write without its reset breaks the wp rule */
	assert_int_equal(zns_wlog_apply(b, r, 5, 0), -EIO);
	zns_close(b);
	zns_wlog_reader_close(r);
	zns_buf_free(buf);
	zns_buf_free(want);
}

static void test_truncated_and_bad(void **state)
{
	struct zns_wlog_reader *r;
	struct stat sb;
	int fd;

	(void)state;
	record();
	assert_int_equal(stat(logp, &sb), 0);
	/* a writer killed mid-record: the torn last record is ignored */
	assert_int_equal(truncate(logp, sb.st_size - 1), 0);
	assert_int_equal(zns_wlog_reader_open(logp, &r), 0);
	assert_int_equal(zns_wlog_count(r), 6);
	zns_wlog_reader_close(r);
	/* a damaged record header is refused */
	fd = open(logp, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "XXXX", 4, ZNS_WLOG_HDR), 4);
	close(fd);
	assert_int_equal(zns_wlog_reader_open(logp, &r), -EUCLEAN);
	/* so is a file that is not a log */
	assert_int_equal(zns_wlog_reader_open(img, &r), -EUCLEAN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_and_replay_all),
	    cmocka_unit_test(test_prefix_and_torn),
	    cmocka_unit_test(test_truncated_and_bad),
	};

	return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
