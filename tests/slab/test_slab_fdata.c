// SPDX-License-Identifier: MIT
/* slab extents tests: FDATA chunks and their map — sparse indices, holes,
 * punches, data generations, slot reuse, remount from a checkpoint and by
 * scanning, GC moving chunks, and a crash (fence) after a sync. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "slab/slab_int.h"
#include "slab_test_util.h"

struct fix {
	char img[256];
	struct zns_dev *dev;
	struct slab_store *st;
};

static struct slab_mount_opts mo = {.commit_ms = 50};
static struct slab_mount_opts mo_scan = {.commit_ms = 50, .no_checkpoint = true};

static void fix_open(struct fix *f, uint32_t nzones, uint64_t zsize)
{
	assert_int_equal(tu_mkimg(f->img, sizeof(f->img), nzones, zsize, 0), 0);
	assert_int_equal(zns_open(f->img, 0, &f->dev), 0);
	assert_int_equal(slab_format(f->dev, NULL), 0);
	assert_int_equal(slab_mount(f->dev, &mo, NULL, NULL, &f->st), 0);
}

/* Clean unmount (or, with CRASH, a fence: nothing after the last sync
 * reaches the device), then mount with OPTS. */
static void fix_remount(struct fix *f, bool crash, const struct slab_mount_opts *opts)
{
	if (crash)
		slab_fence(f->st);
	slab_unmount(f->st);
	zns_close(f->dev);
	assert_int_equal(zns_open(f->img, 0, &f->dev), 0);
	assert_int_equal(slab_mount(f->dev, opts, NULL, NULL, &f->st), 0);
}

static void fix_close(struct fix *f)
{
	assert_int_equal(slab_unmount(f->st), 0);
	zns_close(f->dev);
	unlink(f->img);
}

/* Chunk content: derived from (object, index, version). */
static void chunk_fill(uint8_t *b, uint32_t len, uint32_t id, uint64_t idx, uint32_t ver)
{
	tu_fill(b, len, id, (uint32_t)(idx * 131 + ver));
}

static uint32_t chunk_len(uint64_t idx, uint32_t ver)
{
	return (idx + ver) % 3 == 0 ? SLAB_FDATA_MAX
	                            : 8 + (uint32_t)((idx * 97 + ver) % 4000);
}

static slab_handle_t new_file(struct slab_store *st, uint32_t epoch)
{
	slab_handle_t h;

	assert_int_equal(slab_obj_alloc(st, epoch, &h), 0);
	assert_int_equal(slab_fdata_begin(st, h), 0);
	return h;
}

static void put_head(struct slab_store *st, slab_handle_t h, uint64_t size, uint8_t ext)
{
	struct slab_obj o = {.kind = 1,
	                     .attr = {.mode = 0100644, .nlink = 1, .size = size},
	                     .name = "f",
	                     .name_len = 1,
	                     .extents = ext};

	assert_int_equal(slab_obj_put(st, h, &o), 0);
}

static void write_chunk(struct slab_store *st, slab_handle_t h, uint32_t id, uint64_t idx,
                        uint32_t ver)
{
	uint8_t b[SLAB_FDATA_MAX];
	uint32_t len = chunk_len(idx, ver);

	chunk_fill(b, len, id, idx, ver);
	assert_int_equal(slab_fdata_write(st, h, idx, b, len), 0);
}

static void expect_chunk(struct slab_store *st, slab_handle_t h, uint32_t id,
                         uint64_t idx, uint32_t ver)
{
	uint8_t got[SLAB_FDATA_MAX], want[SLAB_FDATA_MAX];
	uint32_t len = chunk_len(idx, ver);

	chunk_fill(want, len, id, idx, ver);
	assert_int_equal(slab_fdata_read(st, h, idx, got), (ssize_t)len);
	assert_memory_equal(got, want, len);
}

static void expect_hole(struct slab_store *st, slab_handle_t h, uint64_t idx)
{
	uint8_t got[SLAB_FDATA_MAX];

	assert_int_equal(slab_fdata_read(st, h, idx, got), 0);
}

static const uint64_t sparse[] = {
    0, 1, 2, 255, 256, 65535, 65536, 1u << 24, (1ull << 32) - 1};
#define NSPARSE (sizeof(sparse) / sizeof(sparse[0]))

/* Sparse indices across every radix level, holes, punches, remounts. */
static void test_sparse_remount(void **state)
{
	struct fix f;
	slab_handle_t h;
	uint64_t next;

	fix_open(&f, 16, 4u << 20);
	h = new_file(f.st, SLAB_EPOCH_ROOT);
	for (size_t i = 0; i < NSPARSE; i++)
		write_chunk(f.st, h, 1, sparse[i], 0);
	assert_int_equal(slab_fdata_write(f.st, h, 1ull << 32, "x", 1), -EFBIG);
	assert_int_equal(slab_fdata_punch(f.st, h, 2, 256), 0); /* 2, 255 */
	write_chunk(f.st, h, 1, 255, 1);                        /* data again */
	put_head(f.st, h, (1ull << 43), SLAB_EXT_YES);
	assert_int_equal(slab_fdata_next_data(f.st, h, 2, &next), 0);
	assert_int_equal(next, 255);
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < NSPARSE; i++) {
			if (sparse[i] == 2)
				expect_hole(f.st, h, 2);
			else
				expect_chunk(f.st, h, 1, sparse[i], sparse[i] == 255);
		}
		expect_hole(f.st, h, 3);
		expect_hole(f.st, h, 12345);
		assert_int_equal(slab_fdata_is(f.st, h), 1);
		/* from the checkpoint, by a full scan, after a crash */
		fix_remount(&f, round == 2, round == 1 ? &mo_scan : &mo);
	}
	fix_close(&f);
}

/* Truncate to 0 (a reset head), slot reuse and conversion from a small
 * object: no chunk of an older generation comes back. */
static void test_generations(void **state)
{
	struct fix f;
	slab_handle_t h, h2;
	uint32_t ep;
	uint8_t small[100];

	fix_open(&f, 16, 4u << 20);
	assert_int_equal(slab_epoch_create(f.st, &ep), 0);
	h = new_file(f.st, ep);
	for (uint64_t i = 0; i < 8; i++)
		write_chunk(f.st, h, 2, i, 0);
	put_head(f.st, h, 8 * SLAB_FDATA_MAX, SLAB_EXT_YES);
	assert_int_equal(slab_sync(f.st), 0);
	put_head(f.st, h, 0, SLAB_EXT_RESET);
	write_chunk(f.st, h, 2, 3, 7);
	put_head(f.st, h, 4 * SLAB_FDATA_MAX, SLAB_EXT_YES);
	/* a freed extents object; its slot is reused by a small object */
	h2 = new_file(f.st, ep);
	write_chunk(f.st, h2, 3, 0, 0);
	put_head(f.st, h2, SLAB_FDATA_MAX, SLAB_EXT_YES);
	assert_int_equal(slab_obj_free(f.st, h2), 0);
	slab_handle_t h3;
	struct slab_obj o = {.kind = 1,
	                     .attr = {.mode = 0100644, .nlink = 1, .size = sizeof(small)},
	                     .data = small,
	                     .data_len = sizeof(small)};

	memset(small, 0x5a, sizeof(small));
	assert_int_equal(slab_obj_alloc(f.st, ep, &h3), 0);
	assert_int_equal(slab_obj_put(f.st, h3, &o), 0);
	assert_int_equal(slab_sync(f.st), 0);
	for (int round = 0; round < 3; round++) {
		for (uint64_t i = 0; i < 8; i++)
			if (i == 3)
				expect_chunk(f.st, h, 2, 3, 7);
			else
				expect_hole(f.st, h, i);
		assert_int_equal(slab_fdata_is(f.st, h3), 0);
		uint8_t b[128];

		assert_int_equal(slab_obj_read(f.st, h3, 0, b, sizeof(b)), sizeof(small));
		assert_memory_equal(b, small, sizeof(small));
		fix_remount(&f, round == 1, round == 0 ? &mo_scan : &mo);
	}
	/* a small object turns into an extents one; its record stays valid
	 * until the extents head is put (crash before: the small version) */
	assert_int_equal(slab_fdata_begin(f.st, h3), 0);
	write_chunk(f.st, h3, 4, 0, 0);
	assert_int_equal(slab_sync(f.st), 0);
	fix_remount(&f, true, &mo);
	assert_int_equal(slab_fdata_is(f.st, h3), 0);
	uint8_t b[128];

	assert_int_equal(slab_obj_read(f.st, h3, 0, b, sizeof(b)), sizeof(small));
	assert_memory_equal(b, small, sizeof(small));
	fix_close(&f);
}

/* Overwrite chunks of a few files until GC has moved chunks around on a
 * small device; every chunk reads its last version, also after remounts. */
static void test_gc_moves_chunks(void **state)
{
	struct fix f;
	enum { NF = 4, NC = 40 };
	slab_handle_t h[NF];
	uint32_t ver[NF][NC] = {{0}};
	struct slab_counters c;
	uint64_t x = 1;

	fix_open(&f, 12, 1u << 20);
	for (int i = 0; i < NF; i++)
		h[i] = new_file(f.st, SLAB_EPOCH_ROOT);
	for (int i = 0; i < NF; i++) {
		for (int k = 0; k < NC; k++)
			write_chunk(f.st, h[i], 10 + i, k, 0);
		put_head(f.st, h[i], NC * SLAB_FDATA_MAX, SLAB_EXT_YES);
	}
	for (int n = 0; n < 6000; n++) {
		x = tu_mix(x + n);
		int i = (int)(x % NF), k = (int)((x >> 8) % NC);

		write_chunk(f.st, h[i], 10 + i, k, ++ver[i][k]);
		if (n % 500 == 0)
			assert_int_equal(slab_sync(f.st), 0);
	}
	assert_int_equal(slab_sync(f.st), 0);
	slab_counters_get(f.st, &c);
	assert_true(c.gc_runs > 0);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < NF; i++)
			for (int k = 0; k < NC; k++)
				expect_chunk(f.st, h[i], 10 + i, k, ver[i][k]);
		fix_remount(&f, round == 2, round == 1 ? &mo_scan : &mo);
	}
	fix_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sparse_remount),
	    cmocka_unit_test(test_generations),
	    cmocka_unit_test(test_gc_moves_chunks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
