/* SPDX-License-Identifier: MIT */
/* Unit tests for mkfs.tslabfs argument parsing and signature detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
