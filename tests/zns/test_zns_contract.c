// SPDX-License-Identifier: MIT
/*
 * Device contract of the zns layer. Runs the same assertions against
 *   - the device named by $TSLAB_ZNS_DEV (a real zoned block device; the
 *     variable is the opt-in: zones 0 .. K of it are written and reset), or
 *   - by default, a freshly created emulated image in a temporary directory,
 * so that a pass on both shows the emulator refuses each illegal operation
 * the real device refuses, with the same errno.
 */
#include <errno.h>
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

struct ctx {
	char dir[256];
	char path[512];
	bool real;
	struct zns_dev *dev;
	const struct zns_geometry *g;
	uint32_t nr_used; /* zones [0, nr_used) are touched by the suite */
};

static struct ctx C;

static void reset_used(void)
{
	for (uint32_t z = 0; z < C.nr_used; z++)
		assert_int_equal(zns_zone_reset(C.dev, z), 0);
}

static int suite_setup(void **state)
{
	const char *env = getenv("TSLAB_ZNS_DEV");
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	if (env && *env) {
		C.real = true;
		snprintf(C.path, sizeof(C.path), "%s", env);
	} else {
		struct zns_emul_params p = {
		    .lba_size = 4096,
		    .zone_size = 1u << 20,
		    .zone_capacity = 768u << 10,
		    .nr_zones = 32,
		    .max_open = 3,
		    .max_active = 5,
		};

		snprintf(C.dir, sizeof(C.dir), "%s/zns-contract-XXXXXX", tmp);
		if (!mkdtemp(C.dir))
			return -1;
		snprintf(C.path, sizeof(C.path), "%s/img", C.dir);
		if (zns_emul_create(C.path, &p) != 0)
			return -1;
	}
	if (zns_open(C.path, 0, &C.dev) != 0)
		return -1;
	C.g = zns_geometry(C.dev);
	C.nr_used = (C.g->max_active ? C.g->max_active : 4) + 2;
	if (C.g->max_open + 2 > C.nr_used)
		C.nr_used = C.g->max_open + 2;
	if (C.nr_used > C.g->nr_zones)
		C.nr_used = C.g->nr_zones;
	printf("# contract on %s (%s): lba %u, %u zones of %llu B, cap %llu B, open %u, "
	       "active %u\n",
	       C.path, zns_backend_name(C.g->backend), C.g->lba_size, C.g->nr_zones,
	       (unsigned long long)C.g->zone_size, (unsigned long long)C.g->zone_capacity,
	       C.g->max_open, C.g->max_active);
	(void)state;
	return 0;
}

static int suite_teardown(void **state)
{
	if (C.dev) {
		for (uint32_t z = 0; z < C.nr_used; z++)
			zns_zone_reset(C.dev, z);
		zns_close(C.dev);
	}
	if (!C.real) {
		unlink(C.path);
		rmdir(C.dir);
	}
	(void)state;
	return 0;
}

static int test_setup(void **state)
{
	reset_used();
	(void)state;
	return 0;
}

static void fill(uint8_t *b, size_t len, uint32_t zone, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		b[i] = (uint8_t)((zone * 131u) ^ ((off + i) * 7u) ^ ((off + i) >> 9));
}

static struct zns_zone report1(uint32_t z)
{
	struct zns_zone zz;

	assert_int_equal(zns_zone_report(C.dev, z, 1, &zz), 1);
	return zz;
}

/* Writes N logical blocks of the zone's pattern at its write pointer. */
static void write_lbas(uint32_t z, uint64_t n)
{
	size_t len = (size_t)(n * C.g->lba_size);
	uint8_t *b = zns_buf_alloc(len);
	uint64_t wp = report1(z).wp;

	fill(b, len, z, wp);
	assert_int_equal(zns_zone_write(C.dev, z, wp, b, len), (ssize_t)len);
	zns_buf_free(b);
}

static void test_geometry(void **state)
{
	const struct zns_geometry *g = C.g;

	assert_true(g->lba_size == 512 || g->lba_size == 4096);
	assert_true(g->nr_zones > 0);
	assert_true(g->zone_size > 0 && g->zone_size % g->lba_size == 0);
	assert_true(g->zone_capacity > 0 && g->zone_capacity <= g->zone_size);
	assert_int_equal(g->zone_capacity % g->lba_size, 0);
	if (g->max_open && g->max_active)
		assert_true(g->max_open <= g->max_active);
	assert_int_equal(zns_probe(C.path), (int)g->backend);
	assert_true(C.nr_used >= 3);
	(void)state;
}

static void test_report(void **state)
{
	uint32_t n = C.g->nr_zones;
	struct zns_zone *zz = calloc(n, sizeof(*zz));

	assert_int_equal(zns_zone_report(C.dev, 0, n, zz), (int)n);
	for (uint32_t z = 0; z < n; z++) {
		assert_int_equal(zz[z].start, C.g->first_zone_off + z * C.g->zone_size);
		assert_true(zz[z].capacity >= C.g->zone_capacity);
		assert_true(zz[z].wp <= zz[z].capacity);
		assert_true(zz[z].cond >= ZNS_COND_EMPTY &&
		            zz[z].cond <= ZNS_COND_OFFLINE);
		if (z < C.nr_used) {
			assert_int_equal(zz[z].cond, ZNS_COND_EMPTY);
			assert_int_equal(zz[z].wp, 0);
		}
	}
	assert_int_equal(zns_zone_report(C.dev, n, 1, zz), -EINVAL);
	assert_int_equal(zns_zone_report(C.dev, 0, n + 1, zz), -EINVAL);
	free(zz);
	(void)state;
}

static void test_write_read(void **state)
{
	uint32_t lba = C.g->lba_size;
	uint8_t *w = zns_buf_alloc(8 * lba), *r = zns_buf_alloc(8 * lba);
	struct zns_stats s0, s1;

	zns_stats_get(C.dev, &s0);
	fill(w, 8 * lba, 1, 0);
	assert_int_equal(zns_zone_write(C.dev, 1, 0, w, 3 * lba), 3 * lba);
	assert_int_equal(report1(1).wp, 3 * lba);
	assert_int_equal(report1(1).cond, ZNS_COND_IMP_OPEN);
	assert_int_equal(zns_zone_write(C.dev, 1, 3 * lba, w + 3 * lba, 5 * lba),
	                 5 * lba);
	assert_int_equal(report1(1).wp, 8 * lba);
	assert_int_equal(zns_zone_read(C.dev, 1, 0, r, 8 * lba), 8 * lba);
	assert_memory_equal(w, r, 8 * lba);
	assert_int_equal(zns_zone_read(C.dev, 1, 2 * lba, r, lba), lba);
	assert_memory_equal(w + 2 * lba, r, lba);
	assert_int_equal(zns_flush(C.dev), 0);
	zns_stats_get(C.dev, &s1);
	assert_int_equal(s1.writes - s0.writes, 2);
	assert_int_equal(s1.bytes_written - s0.bytes_written, 8 * lba);
	assert_int_equal(s1.reads - s0.reads, 2);
	assert_int_equal(s1.flushes - s0.flushes, 1);
	zns_buf_free(w);
	zns_buf_free(r);
	(void)state;
}

static void test_write_not_at_wp(void **state)
{
	uint32_t lba = C.g->lba_size;
	uint8_t *b = zns_buf_alloc(lba);

	fill(b, lba, 2, 0);
	/* EMPTY zone, write beyond wp 0 */
	assert_int_equal(zns_zone_write(C.dev, 2, lba, b, lba), -EIO);
	assert_int_equal(report1(2).wp, 0);
	assert_int_equal(report1(2).cond, ZNS_COND_EMPTY);
	write_lbas(2, 2);
	/* behind the wp (overwrite) and ahead of it */
	assert_int_equal(zns_zone_write(C.dev, 2, 0, b, lba), -EIO);
	assert_int_equal(zns_zone_write(C.dev, 2, lba, b, lba), -EIO);
	assert_int_equal(zns_zone_write(C.dev, 2, 3 * lba, b, lba), -EIO);
	assert_int_equal(report1(2).wp, 2 * lba);
	zns_buf_free(b);
	(void)state;
}

static void test_unaligned(void **state)
{
	uint32_t lba = C.g->lba_size;
	uint8_t *b = zns_buf_alloc(4 * lba);

	fill(b, 4 * lba, 2, 0);
	assert_int_equal(zns_zone_write(C.dev, 2, 0, b, lba / 2), -EINVAL);
	assert_int_equal(zns_zone_write(C.dev, 2, 0, b, lba + 1), -EINVAL);
	assert_int_equal(zns_zone_write(C.dev, 2, 0, b + 1, lba), -EINVAL);
	assert_int_equal(zns_zone_write(C.dev, 2, 0, b, 0), -EINVAL);
	write_lbas(2, 1);
	assert_int_equal(zns_zone_write(C.dev, 2, lba + lba / 2, b, lba), -EINVAL);
	assert_int_equal(zns_zone_read(C.dev, 2, lba / 2, b, lba), -EINVAL);
	assert_int_equal(zns_zone_read(C.dev, 2, 0, b + 1, lba), -EINVAL);
	assert_int_equal(zns_zone_write(C.dev, C.g->nr_zones, 0, b, lba), -EINVAL);
	assert_int_equal(report1(2).wp, lba);
	zns_buf_free(b);
	(void)state;
}

/* Writes up to CAP - lba in large chunks. */
static void fill_zone_to(uint32_t z, uint64_t end)
{
	const size_t chunk = 1u << 20;
	uint8_t *b = zns_buf_alloc(chunk);
	uint64_t wp = report1(z).wp;

	while (wp < end) {
		size_t n = end - wp < chunk ? (size_t)(end - wp) : chunk;

		fill(b, n, z, wp);
		assert_int_equal(zns_zone_write(C.dev, z, wp, b, n), (ssize_t)n);
		wp += n;
	}
	zns_buf_free(b);
}

static void test_past_capacity(void **state)
{
	uint32_t lba = C.g->lba_size;
	uint64_t cap = report1(1).capacity;
	uint8_t *b = zns_buf_alloc(2 * lba);

	fill_zone_to(1, cap - lba);
	fill(b, 2 * lba, 1, cap - lba);
	if (cap + lba <= C.g->zone_size)
		assert_int_equal(zns_zone_write(C.dev, 1, cap - lba, b, 2 * lba), -EIO);
	else
		assert_int_equal(zns_zone_write(C.dev, 1, cap - lba, b, 2 * lba),
		                 -EINVAL);
	assert_int_equal(report1(1).wp, cap - lba);
	assert_int_equal(zns_zone_write(C.dev, 1, cap - lba, b, lba), lba);
	assert_int_equal(report1(1).cond, ZNS_COND_FULL);
	assert_int_equal(report1(1).wp, cap);
	zns_buf_free(b);
	(void)state;
}

static void test_finish_and_full(void **state)
{
	uint32_t lba = C.g->lba_size;
	uint8_t *b = zns_buf_alloc(lba);
	uint64_t cap = report1(1).capacity;

	fill(b, lba, 1, lba);
	write_lbas(1, 1);
	assert_int_equal(zns_zone_finish(C.dev, 1), 0);
	assert_int_equal(report1(1).cond, ZNS_COND_FULL);
	assert_int_equal(report1(1).wp, cap);
	assert_int_equal(zns_zone_write(C.dev, 1, lba, b, lba), -EIO);
	assert_int_equal(zns_zone_finish(C.dev, 1), 0);
	assert_int_equal(zns_zone_open(C.dev, 1), -EIO);
	assert_int_equal(zns_zone_close(C.dev, 1), -EIO);
	/* EMPTY -> FULL */
	assert_int_equal(zns_zone_finish(C.dev, 2), 0);
	assert_int_equal(report1(2).cond, ZNS_COND_FULL);
	zns_buf_free(b);
	(void)state;
}

static void test_reset(void **state)
{
	uint32_t lba = C.g->lba_size;
	uint8_t *b = zns_buf_alloc(4 * lba), *zero = calloc(1, 4 * lba);

	write_lbas(1, 4);
	assert_int_equal(zns_zone_reset(C.dev, 1), 0);
	assert_int_equal(report1(1).cond, ZNS_COND_EMPTY);
	assert_int_equal(report1(1).wp, 0);
	assert_int_equal(zns_zone_read(C.dev, 1, 0, b, 4 * lba), 4 * lba);
	assert_memory_equal(b, zero, 4 * lba);
	/* EMPTY zone reset is fine; written again from 0 */
	assert_int_equal(zns_zone_reset(C.dev, 1), 0);
	write_lbas(1, 1);
	assert_int_equal(report1(1).wp, lba);
	zns_buf_free(b);
	free(zero);
	(void)state;
}

static void test_open_close(void **state)
{
	assert_int_equal(zns_zone_close(C.dev, 1), -EIO); /* EMPTY */
	assert_int_equal(zns_zone_open(C.dev, 1), 0);
	assert_int_equal(report1(1).cond, ZNS_COND_EXP_OPEN);
	assert_int_equal(zns_zone_open(C.dev, 1), 0);
	write_lbas(1, 1);
	assert_int_equal(report1(1).cond, ZNS_COND_EXP_OPEN);
	assert_int_equal(zns_zone_close(C.dev, 1), 0);
	assert_int_equal(report1(1).cond, ZNS_COND_CLOSED);
	assert_int_equal(zns_zone_close(C.dev, 1), 0);
	write_lbas(1, 1);
	assert_int_equal(report1(1).cond, ZNS_COND_IMP_OPEN);
	assert_int_equal(report1(1).wp, 2 * C.g->lba_size);
	assert_int_equal(zns_zone_close(C.dev, 1), 0);
	assert_int_equal(report1(1).cond, ZNS_COND_CLOSED);
	assert_int_equal(zns_zone_open(C.dev, 1), 0);
	assert_int_equal(report1(1).cond, ZNS_COND_EXP_OPEN);
	assert_int_equal(zns_zone_reset(C.dev, 1), 0);
	assert_int_equal(report1(1).cond, ZNS_COND_EMPTY);
	(void)state;
}

static void test_max_active(void **state)
{
	uint32_t act = C.g->max_active, lba = C.g->lba_size;
	uint8_t *b = zns_buf_alloc(lba);

	if (!act || act + 1 > C.nr_used) {
		printf("# no max_active limit: nothing to exceed\n");
		zns_buf_free(b);
		return;
	}
	for (uint32_t z = 0; z < act; z++)
		write_lbas(z, 1);
	/* opening past max_open closed the implicitly opened zones first */
	if (C.g->max_open && C.g->max_open < act)
		assert_int_equal(report1(0).cond, ZNS_COND_CLOSED);
	fill(b, lba, act, 0);
	assert_int_equal(zns_zone_write(C.dev, act, 0, b, lba), -EOVERFLOW);
	assert_int_equal(report1(act).cond, ZNS_COND_EMPTY);
	assert_int_equal(zns_zone_open(C.dev, act), -EOVERFLOW);
	/* a FULL zone is not active: finishing one frees a slot */
	assert_int_equal(zns_zone_finish(C.dev, 0), 0);
	assert_int_equal(zns_zone_write(C.dev, act, 0, b, lba), lba);
	zns_buf_free(b);
	(void)state;
}

static void test_max_open_explicit(void **state)
{
	uint32_t open = C.g->max_open, lba = C.g->lba_size;
	uint8_t *b = zns_buf_alloc(lba);
	int want;

	if (!open || open + 1 > C.nr_used) {
		printf("# no max_open limit: nothing to exceed\n");
		zns_buf_free(b);
		return;
	}
	for (uint32_t z = 0; z < open; z++)
		assert_int_equal(zns_zone_open(C.dev, z), 0);
	/* every open zone is explicitly open: nothing can be closed for room */
	want = C.g->max_active && C.g->max_active <= open ? -EOVERFLOW : -ETOOMANYREFS;
	assert_int_equal(zns_zone_open(C.dev, open), want);
	fill(b, lba, open, 0);
	assert_int_equal(zns_zone_write(C.dev, open, 0, b, lba), want);
	/* NVMe ZNS: an open zone closes to CLOSED even at wp 0, and stays active */
	assert_int_equal(zns_zone_close(C.dev, 0), 0);
	assert_int_equal(report1(0).cond, ZNS_COND_CLOSED);
	assert_int_equal(report1(0).wp, 0);
	if (want == -EOVERFLOW) {
		assert_int_equal(zns_zone_write(C.dev, open, 0, b, lba), -EOVERFLOW);
		assert_int_equal(zns_zone_reset(C.dev, 0), 0);
	}
	assert_int_equal(zns_zone_write(C.dev, open, 0, b, lba), lba);
	assert_int_equal(report1(open).cond, ZNS_COND_IMP_OPEN);
	zns_buf_free(b);
	(void)state;
}

static void test_persistence(void **state)
{
	uint32_t lba = C.g->lba_size;
	uint8_t *w = zns_buf_alloc(3 * lba), *r = zns_buf_alloc(3 * lba);

	fill(w, 3 * lba, 1, 0);
	assert_int_equal(zns_zone_write(C.dev, 1, 0, w, 3 * lba), 3 * lba);
	assert_int_equal(zns_zone_close(C.dev, 1), 0);
	write_lbas(2, 2);
	assert_int_equal(zns_zone_finish(C.dev, 0), 0);
	assert_int_equal(zns_flush(C.dev), 0);
	zns_close(C.dev);
	assert_int_equal(zns_open(C.path, 0, &C.dev), 0);
	C.g = zns_geometry(C.dev);
	assert_int_equal(report1(1).wp, 3 * lba);
	assert_int_equal(report1(1).cond, ZNS_COND_CLOSED);
	assert_int_equal(report1(2).wp, 2 * lba);
	assert_int_equal(report1(2).cond, ZNS_COND_IMP_OPEN);
	assert_int_equal(report1(0).cond, ZNS_COND_FULL);
	assert_int_equal(zns_zone_read(C.dev, 1, 0, r, 3 * lba), 3 * lba);
	assert_memory_equal(w, r, 3 * lba);
	zns_buf_free(w);
	zns_buf_free(r);
	(void)state;
}

static void test_open_modes(void **state)
{
	uint32_t lba = C.g->lba_size;
	uint8_t *b = zns_buf_alloc(lba);
	struct zns_dev *ro = NULL, *x = NULL, *y = NULL;

	assert_int_equal(zns_open(C.path, ZNS_OPEN_RDONLY, &ro), 0);
	fill(b, lba, 1, 0);
	assert_int_equal(zns_zone_write(ro, 1, 0, b, lba), -EROFS);
	assert_int_equal(zns_zone_reset(ro, 1), -EROFS);
	assert_int_equal(zns_zone_read(ro, 1, 0, b, lba), lba);
	zns_close(ro);
	assert_int_equal(zns_open(C.path, ZNS_OPEN_EXCL | ZNS_OPEN_RDONLY, &x), 0);
	assert_int_equal(zns_open(C.path, ZNS_OPEN_EXCL | ZNS_OPEN_RDONLY, &y), -EBUSY);
	assert_null(y);
	zns_close(x);
	zns_buf_free(b);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_geometry, test_setup),
	    cmocka_unit_test_setup(test_report, test_setup),
	    cmocka_unit_test_setup(test_write_read, test_setup),
	    cmocka_unit_test_setup(test_write_not_at_wp, test_setup),
	    cmocka_unit_test_setup(test_unaligned, test_setup),
	    cmocka_unit_test_setup(test_past_capacity, test_setup),
	    cmocka_unit_test_setup(test_finish_and_full, test_setup),
	    cmocka_unit_test_setup(test_reset, test_setup),
	    cmocka_unit_test_setup(test_open_close, test_setup),
	    cmocka_unit_test_setup(test_max_active, test_setup),
	    cmocka_unit_test_setup(test_max_open_explicit, test_setup),
	    cmocka_unit_test_setup(test_persistence, test_setup),
	    cmocka_unit_test_setup(test_open_modes, test_setup),
	};

	return cmocka_run_group_tests_name("zns-contract", tests, suite_setup,
	                                   suite_teardown);
}
