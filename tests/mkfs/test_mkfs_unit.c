/* SPDX-License-Identifier: MIT */
/* Unit tests for mkfs.tslabfs argument parsing and signature detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "mkfs/mkfs.h"

static void test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(mkfs_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(mkfs_parse_size("64M", &v), 0);
	assert_int_equal(v, 64ull << 20);
	assert_int_equal(mkfs_parse_size("4g", &v), 0);
	assert_int_equal(v, 4ull << 30);
	assert_int_equal(mkfs_parse_size("1T", &v), 0);
	assert_int_equal(v, 1ull << 40);
	assert_int_equal(mkfs_parse_size("8GiB", &v), 0);
	assert_int_equal(v, 8ull << 30);
	assert_int_not_equal(mkfs_parse_size("", &v), 0);
	assert_int_not_equal(mkfs_parse_size("-1", &v), 0);
	assert_int_not_equal(mkfs_parse_size("12Q", &v), 0);
	assert_int_not_equal(mkfs_parse_size("M", &v), 0);
	assert_int_not_equal(mkfs_parse_size("99999999999999T", &v), 0);
	assert_int_not_equal(mkfs_parse_size("5Mx", &v), 0);
}

static void test_signatures(void **state)
{
	static uint8_t buf[128 << 10];

	(void)state;
	memset(buf, 0, sizeof(buf));
	assert_null(mkfs_signature(buf, sizeof(buf)));

	memcpy(buf + 0x438, "\x53\xef", 2);
	assert_string_equal(mkfs_signature(buf, sizeof(buf)), "ext2/ext3/ext4");
	/* A signature beyond what was read does not count. */
	assert_null(mkfs_signature(buf, 0x439));
	memset(buf, 0, sizeof(buf));

	memcpy(buf, "XFSB", 4);
	assert_string_equal(mkfs_signature(buf, sizeof(buf)), "xfs");
	memset(buf, 0, sizeof(buf));

	memcpy(buf + 0x10040, "_BHRfS_M", 8);
	assert_string_equal(mkfs_signature(buf, sizeof(buf)), "btrfs");
	memset(buf, 0, sizeof(buf));

	memcpy(buf + 4086, "SWAPSPACE2", 10);
	assert_string_equal(mkfs_signature(buf, sizeof(buf)), "swap");
}

/* A mount table naming the target (escaped space in its path) is found;
 * other sources are not. */
static void test_find_mount(void **state)
{
	char dir[] = "/tmp/tslab-mkfs-unit.XXXXXX", img[128], tab[128], mnt[256];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(img, sizeof(img), "%s/an image", dir);
	snprintf(tab, sizeof(tab), "%s/mounts", dir);
	f = fopen(img, "w");
	assert_non_null(f);
	fclose(f);
	f = fopen(tab, "w");
	assert_non_null(f);
	fprintf(f, "proc /proc proc rw 0 0\n/dev/null /x ext4 rw 0 0\n");
	fclose(f);
	assert_int_equal(mkfs_find_mount(img, tab, mnt, sizeof(mnt)), 0);
	f = fopen(tab, "a");
	assert_non_null(f);
	fprintf(f, "%s/an\\040image /mnt/my\\040fs fuse.tslabfs rw 0 0\n", dir);
	fclose(f);
	assert_int_equal(mkfs_find_mount(img, tab, mnt, sizeof(mnt)), 1);
	assert_string_equal(mnt, "/mnt/my fs");
	unlink(img);
	unlink(tab);
	rmdir(dir);
}

static void test_uuid_str(void **state)
{
	const uint8_t u[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	                       0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe};
	char s[37];

	(void)state;
	mkfs_uuid_str(u, s);
	assert_string_equal(s, "01234567-89ab-cdef-1032-547698badcfe");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_size),
	    cmocka_unit_test(test_signatures),
	    cmocka_unit_test(test_uuid_str),
	    cmocka_unit_test(test_find_mount),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
