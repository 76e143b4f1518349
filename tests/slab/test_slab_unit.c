// SPDX-License-Identifier: MIT
/* slab unit tests that need no device: arena, record/page/superblock
 * encodings, handles. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <pthread.h>

#include "slab/slab_int.h"

static void test_arena_classes(void **state)
{
	size_t prev = 0;
	double waste = 0;

	for (size_t sz = 1; sz <= SLAB_ARENA_MAX; sz++) {
		unsigned c = slab_arena_class(sz);
		size_t cs = slab_arena_class_size(c);

		assert_true(c < SLAB_ARENA_NCLASS);
		assert_true(cs >= sz);
		/* the class below is too small: the class is the tightest fit */
		if (c > 0)
			assert_true(slab_arena_class_size(c - 1) < sz);
		assert_true(cs >= prev);
		prev = cs;
		if (sz >= 16)
			waste += (double)(cs - sz) / (double)cs;
		/* worst case bounded: < 16 bytes up to 128, then <= 1/5 of the block */
		if (sz <= 128)
			assert_true(cs - sz < 16);
		else
			assert_true((cs - sz) * 5 <= cs);
	}
	assert_int_equal(slab_arena_class_size(SLAB_ARENA_NCLASS - 1), SLAB_ARENA_MAX);
	print_message("mean rounding waste 16..4096 (uniform): %.2f %%\n",
	              100.0 * waste / (SLAB_ARENA_MAX - 15));
}

static void test_arena_alloc_free(void **state)
{
	struct slab_arena *a = slab_arena_new();
	enum { N = 20000 };
	void **p = calloc(N, sizeof(*p));
	size_t *sz = calloc(N, sizeof(*sz));

	assert_non_null(a);
	assert_null(slab_arena_alloc(a, 0));
	assert_null(slab_arena_alloc(a, SLAB_ARENA_MAX + 1));
	srand(1);
	for (int i = 0; i < N; i++) {
		sz[i] = 1 + (size_t)rand() % SLAB_ARENA_MAX;
		p[i] = slab_arena_alloc(a, sz[i]);
		assert_non_null(p[i]);
		memset(p[i], i & 0xff, sz[i]);
	}
	for (int i = 0; i < N; i++) {
		const uint8_t *b = p[i];

		assert_true(b[0] == (i & 0xff) && b[sz[i] - 1] == (i & 0xff));
	}
	for (int i = 0; i < N; i += 2)
		slab_arena_free(a, p[i], sz[i]);
	/* freed blocks are reused: same sizes again need no new memory (the
	 * frees may have taken free-stack segments, 8 bytes per free block) */
	size_t held = slab_arena_bytes(a);

	for (int i = 0; i < N; i += 2)
		assert_non_null(p[i] = slab_arena_alloc(a, sz[i]));
	assert_int_equal(slab_arena_bytes(a), held);
	void *big = slab_arena_alloc_any(a, 100000);

	assert_non_null(big);
	memset(big, 1, 100000);
	assert_true(slab_arena_bytes(a) >= held + 100000);
	slab_arena_free_any(a, big, 100000);
	assert_int_equal(slab_arena_bytes(a), held);
	assert_non_null(slab_arena_alloc_any(a, 50000)); /* released by destroy */
	slab_arena_destroy(a);
	free(p);
	free(sz);
}

static int cmp_ptr(const void *x, const void *y)
{
	uintptr_t a = (uintptr_t) * (void *const *)x, b = (uintptr_t) * (void *const *)y;

	return a < b ? -1 : a > b;
}

/* Many free blocks of one class span several free-stack segments: they come
 * back LIFO, each exactly once, and a push/pop pair at a segment boundary
 * takes no new memory. */
static void test_arena_stack_segments(void **state)
{
	struct slab_arena *a = slab_arena_new();
	enum { N = 5000 };
	void **p = calloc(N, sizeof(*p)), **q = calloc(N, sizeof(*q));

	for (int i = 0; i < N; i++) {
		assert_non_null(p[i] = slab_arena_alloc(a, 100));
		memset(p[i], 0, 100);
	}
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++)
			slab_arena_free(a, p[i], 100);
		size_t held = slab_arena_bytes(a);

		for (int i = 0; i < N; i++)
			assert_non_null(q[i] = slab_arena_alloc(a, 100));
		assert_int_equal(slab_arena_bytes(a), held);
		for (int i = 0; i < N; i++)
			assert_ptr_equal(q[i], p[N - 1 - i]);
		for (int i = 0; i < N; i++)
			p[i] = q[i];
	}
	/* every block distinct and 112 bytes apart at least */
	memcpy(q, p, N * sizeof(*q));
	qsort(q, N, sizeof(*q), cmp_ptr);
	for (int i = 1; i < N; i++)
		assert_true((uintptr_t)q[i] - (uintptr_t)q[i - 1] >= 112);
	/* oscillate around every stack depth from 0 to N: no growth */
	for (int i = 0; i < N; i++)
		slab_arena_free(a, p[i], 100);
	size_t held = slab_arena_bytes(a);

	for (int i = N - 1; i >= 0; i--) {
		for (int k = 0; k < 3; k++) {
			void *x = slab_arena_alloc(a, 100);

			assert_ptr_equal(x, p[i]);
			slab_arena_free(a, x, 100);
		}
		assert_ptr_equal(slab_arena_alloc(a, 100), p[i]);
	}
	assert_int_equal(slab_arena_bytes(a), held);
	slab_arena_destroy(a);
	free(p);
	free(q);
}

static void fill_pattern(uint8_t *b, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(tag * 31 + i);
}

static int check_pattern(const uint8_t *b, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != (uint8_t)(tag * 31 + i))
			return 0;
	return 1;
}

/* Random sizes with churn (many refills, chunk tails cut into smaller
 * blocks, stack segments carved in between): no two live blocks overlap. */
static void test_arena_no_overlap(void **state)
{
	struct slab_arena *a = slab_arena_new();
	enum { N = 6000 };
	uint8_t **p = calloc(N, sizeof(*p));
	size_t *sz = calloc(N, sizeof(*sz));
	unsigned *tag = calloc(N, sizeof(*tag));

	srand(7);
	for (unsigned step = 0; step < 60000; step++) {
		int i = rand() % N;

		if (p[i]) {
			assert_true(check_pattern(p[i], sz[i], tag[i]));
			slab_arena_free(a, p[i], sz[i]);
			p[i] = NULL;
			continue;
		}
		sz[i] = 1 + (size_t)(rand() % 4 ? rand() % 300
		                                : rand() % (int)SLAB_ARENA_MAX);
		tag[i] = step;
		assert_non_null(p[i] = slab_arena_alloc(a, sz[i]));
		assert_true(((uintptr_t)p[i] & 15) == 0);
		fill_pattern(p[i], sz[i], tag[i]);
	}
	for (int i = 0; i < N; i++)
		if (p[i])
			assert_true(check_pattern(p[i], sz[i], tag[i]));
	slab_arena_destroy(a);
	free(p);
	free(sz);
	free(tag);
}

struct arena_worker {
	struct slab_arena *a;
	unsigned seed;
	int bad;
};

static void *arena_worker_run(void *arg)
{
	struct arena_worker *w = arg;
	enum { LIVE = 400 };
	uint8_t *p[LIVE] = {0};
	size_t sz[LIVE];
	unsigned tag[LIVE];

	for (unsigned step = 0; step < 200000; step++) {
		int i = (int)(rand_r(&w->seed) % LIVE);

		if (p[i]) {
			if (!check_pattern(p[i], sz[i] < 64 ? sz[i] : 64, tag[i]))
				w->bad++;
			slab_arena_free(w->a, p[i], sz[i]);
		}
		sz[i] = 1 + rand_r(&w->seed) % 1024;
		tag[i] = step ^ w->seed;
		p[i] = slab_arena_alloc(w->a, sz[i]);
		if (!p[i]) {
			w->bad++;
			break;
		}
		fill_pattern(p[i], sz[i] < 64 ? sz[i] : 64, tag[i]);
	}
	for (int i = 0; i < LIVE; i++)
		if (p[i])
			slab_arena_free(w->a, p[i], sz[i]);
	return NULL;
}

/* Two threads allocating and freeing in one arena never get the same block. */
static void test_arena_threads(void **state)
{
	struct slab_arena *a = slab_arena_new();
	struct arena_worker w[2] = {{a, 1, 0}, {a, 2, 0}};
	pthread_t t[2];

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, arena_worker_run, &w[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(w[0].bad + w[1].bad, 0);
	slab_arena_destroy(a);
}

static void fill_rec(struct slab_rec *r, uint8_t *data, uint32_t dlen, const char *name)
{
	memset(r, 0, sizeof(*r));
	r->rtype = SLAB_REC_OBJ;
	r->kind = 3;
	r->name = name;
	r->name_len = (uint8_t)strlen(name);
	r->mode = 0100644;
	r->data_len = (uint16_t)dlen;
	r->data = data;
	r->handle = slab_handle_make(0x1234, 7, 99);
	r->parent = 1;
	r->seq = 123456789;
	r->mtime_ns = r->ctime_ns = r->atime_ns = 1700000000123456789ll;
	r->uid = 1000;
	r->gid = 1000;
	r->nlink = 1;
	r->size = dlen;
	for (uint32_t i = 0; i < dlen; i++)
		data[i] = (uint8_t)(i * 7 + dlen);
}

static void check_same(const struct slab_rec *a, const struct slab_rec *b)
{
	assert_int_equal(a->rtype, b->rtype);
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->mode, b->mode);
	assert_int_equal(a->handle, b->handle);
	assert_int_equal(a->parent, b->parent);
	assert_int_equal(a->seq, b->seq);
	assert_true(a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
	            a->atime_ns == b->atime_ns);
	assert_int_equal(a->uid, b->uid);
	assert_int_equal(a->gid, b->gid);
	assert_int_equal(a->nlink, b->nlink);
	assert_int_equal(a->rdev, b->rdev);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->name_len, b->name_len);
	assert_memory_equal(a->name, b->name, a->name_len);
	assert_int_equal(a->data_len, b->data_len);
	if (a->data_len)
		assert_memory_equal(a->data, b->data, a->data_len);
}

/* Every byte of an encoded record matters: flipping any bit is detected. */
static void check_corruption(const uint8_t *enc, uint32_t len)
{
	uint8_t *c = malloc(len);
	struct slab_rec d;

	for (uint32_t i = 0; i < len; i++) {
		memcpy(c, enc, len);
		c[i] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(slab_rec_decode(c, len, 1000, 1000, &d), -EUCLEAN);
	}
	free(c);
}

static void test_record_roundtrip(void **state)
{
	static uint8_t data[SLAB_CHUNK_MAX], enc[SLAB_PAGE_SIZE];
	struct slab_rec r, d;
	uint32_t sizes[SLAB_ARENA_NCLASS + 4];
	unsigned ns = 0;

	/* every arena class boundary up to the chunk limit, plus edges */
	for (unsigned c = 0; c < SLAB_ARENA_NCLASS; c++)
		if (slab_arena_class_size(c) <= SLAB_CHUNK_MAX)
			sizes[ns++] = (uint32_t)slab_arena_class_size(c);
	sizes[ns++] = 0;
	sizes[ns++] = 1;
	sizes[ns++] = 100;
	sizes[ns++] = SLAB_CHUNK_MAX;
	for (unsigned i = 0; i < ns; i++) {
		fill_rec(&r, data, sizes[i], "sensor-0042");
		int len = slab_rec_encode(enc, sizeof(enc), &r, 1000, 1000);

		assert_int_equal(len, SLAB_REC_HDR + r.name_len + sizes[i]);
		assert_int_equal(slab_rec_decode(enc, (size_t)len, 1000, 1000, &d), 0);
		check_same(&r, &d);
		if (sizes[i] <= 512 || sizes[i] == SLAB_CHUNK_MAX)
			check_corruption(enc, (uint32_t)len);
	}
	/* every extension at once */
	fill_rec(&r, data, 100, "x");
	r.uid = 5;
	r.gid = 6;
	r.ctime_ns = 11;
	r.atime_ns = -12;
	r.size = 4096;
	r.nlink = 3;
	r.rdev = 0x0801;
	int len = slab_rec_encode(enc, sizeof(enc), &r, 1000, 1000);

	assert_int_equal(len, SLAB_REC_HDR + 8 + 8 + 8 + 8 + 4 + 4 + 1 + 100);
	assert_int_equal(slab_rec_decode(enc, (size_t)len, 1000, 1000, &d), 0);
	check_same(&r, &d);
	check_corruption(enc, (uint32_t)len);
	/* a 100-byte file with an 8-byte name costs 152 bytes */
	fill_rec(&r, data, 100, "abcdefgh");
	assert_int_equal(slab_rec_size(&r, 1000, 1000), 152);
	/* too small a buffer */
	assert_int_equal(slab_rec_encode(enc, 100, &r, 1000, 1000), -ENOSPC);
	/* truncated input */
	len = slab_rec_encode(enc, sizeof(enc), &r, 1000, 1000);
	assert_int_equal(slab_rec_decode(enc, (size_t)len - 1, 1000, 1000, &d), -EUCLEAN);
}

static void test_record_kinds(void **state)
{
	static uint8_t data[SLAB_CHUNK_MAX], enc[SLAB_PAGE_SIZE];
	struct slab_rec r = {0}, d;
	int len;

	/* chunked head: no data, total length extension */
	fill_rec(&r, data, 0, "big");
	r.flags = SLAB_RF_CHUNKED;
	r.total = 100000;
	r.size = 100000;
	len = slab_rec_encode(enc, sizeof(enc), &r, 1000, 1000);
	assert_true(len > 0);
	assert_int_equal(slab_rec_decode(enc, (size_t)len, 1000, 1000, &d), 0);
	assert_int_equal(d.total, 100000);
	assert_int_equal(d.size, 100000);
	assert_true(d.flags & SLAB_RF_CHUNKED);
	/* chunk */
	memset(&r, 0, sizeof(r));
	r.rtype = SLAB_REC_CHUNK;
	r.handle = slab_handle_make(0, 0, 5);
	r.parent = 7;
	r.seq = 9;
	r.data = data;
	r.data_len = SLAB_CHUNK_MAX;
	len = slab_rec_encode(enc, sizeof(enc), &r, 0, 0);
	assert_int_equal(len, SLAB_REC_HDR + SLAB_CHUNK_MAX);
	assert_int_equal(slab_rec_decode(enc, (size_t)len, 0, 0, &d), 0);
	assert_int_equal(d.parent, 7);
	/* tombstone, drop, epoch marker */
	r.rtype = SLAB_REC_TOMB;
	r.data_len = 0;
	len = slab_rec_encode(enc, sizeof(enc), &r, 0, 0);
	assert_int_equal(len, SLAB_REC_HDR);
	assert_int_equal(slab_rec_decode(enc, (size_t)len, 0, 0, &d), 0);
	r.rtype = SLAB_REC_DROP;
	r.handle = 0;
	r.parent = 0x100;
	len = slab_rec_encode(enc, sizeof(enc), &r, 0, 0);
	assert_int_equal(slab_rec_decode(enc, (size_t)len, 0, 0, &d), 0);
	r.rtype = SLAB_REC_EPOCH;
	r.handle = slab_handle_make(0x100, 0, 0);
	r.parent = 0;
	len = slab_rec_encode(enc, sizeof(enc), &r, 0, 0);
	assert_int_equal(slab_rec_decode(enc, (size_t)len, 0, 0, &d), 0);
	/* shape violations are rejected even with a valid checksum */
	r.rtype = SLAB_REC_OBJ;
	r.handle = slab_handle_make(0x100, 0, 0); /* slot 0 */
	len = slab_rec_encode(enc, sizeof(enc), &r, 0, 0);
	assert_int_equal(slab_rec_decode(enc, (size_t)len, 0, 0, &d), -EUCLEAN);
	r.rtype = 9;
	r.handle = 5;
	len = slab_rec_encode(enc, sizeof(enc), &r, 0, 0);
	assert_int_equal(slab_rec_decode(enc, (size_t)len, 0, 0, &d), -EUCLEAN);
}

static void test_record_copy(void **state)
{
	static uint8_t data[64], src[256], dst[256];
	struct slab_rec r, d;

	fill_rec(&r, data, 20, "n");
	int len = slab_rec_encode(src, sizeof(src), &r, 1000, 1000);

	/* same defaults: verbatim */
	assert_int_equal(
	    slab_rec_copy(dst, sizeof(dst), src, (uint32_t)len, 1000, 1000, 1000, 1000),
	    len);
	assert_memory_equal(dst, src, (size_t)len);
	/* other defaults: uid/gid become explicit, content unchanged */
	int n = slab_rec_copy(dst, sizeof(dst), src, (uint32_t)len, 1000, 1000, 0, 0);

	assert_int_equal(n, len + 8);
	assert_int_equal(slab_rec_decode(dst, (size_t)n, 0, 0, &d), 0);
	check_same(&r, &d);
	assert_int_equal(
	    slab_rec_copy(dst, (size_t)len + 7, src, (uint32_t)len, 1000, 1000, 0, 0),
	    -ENOSPC);
}

static void test_page_header(void **state)
{
	uint8_t p[SLAB_PAGE_HDR];
	struct slab_page_hdr h = {.epoch = 0x10203,
	                          .used = 4000,
	                          .nrec = 26,
	                          .seq = 77,
	                          .def_uid = 1000,
	                          .def_gid = 100},
	                     d;

	slab_page_hdr_encode(p, &h);
	assert_int_equal(slab_page_hdr_decode(p, &d), 0);
	assert_int_equal(d.epoch, h.epoch);
	assert_int_equal(d.used, h.used);
	assert_int_equal(d.nrec, h.nrec);
	assert_int_equal(d.seq, h.seq);
	assert_int_equal(d.def_uid, 1000);
	assert_int_equal(d.def_gid, 100);
	for (unsigned i = 0; i < SLAB_PAGE_HDR; i++) {
		uint8_t c[SLAB_PAGE_HDR];

		memcpy(c, p, sizeof(c));
		c[i] ^= 0x10;
		assert_int_equal(slab_page_hdr_decode(c, &d), -EUCLEAN);
	}
	h.used = 4097;
	slab_page_hdr_encode(p, &h);
	assert_int_equal(slab_page_hdr_decode(p, &d), -EUCLEAN);
}

static void test_sb_encoding(void **state)
{
	static uint8_t blk[SLAB_SB_BLOCK];
	struct slab_sb_info sb = {.version = 1,
	                          .sequence = 42,
	                          .sb_zones = {0, 1},
	                          .journal_zones = 2,
	                          .first_data_zone = 4,
	                          .reserve_zones = 2,
	                          .created_ns = 5},
	                    d;
	struct slab_sb_geom g = {4096, 64, 1 << 20, 1 << 20}, dg;

	memcpy(sb.label, "hello", 6);
	for (int i = 0; i < 16; i++)
		sb.uuid[i] = (uint8_t)i;
	slab_sb_encode(blk, &sb, &g);
	assert_int_equal(slab_sb_decode(blk, &d, &dg), 0);
	assert_int_equal(d.sequence, 42);
	assert_string_equal(d.label, "hello");
	assert_memory_equal(d.uuid, sb.uuid, 16);
	assert_int_equal(dg.nr_zones, 64);
	assert_int_equal(d.first_data_zone, 4);
	blk[200] ^= 1;
	assert_int_equal(slab_sb_decode(blk, &d, &dg), -EUCLEAN);
	blk[0] = 'X';
	assert_int_equal(slab_sb_decode(blk, &d, &dg), -ENODATA);
	sb.features_incompat = 1ull << 40;
	slab_sb_encode(blk, &sb, &g);
	assert_int_equal(slab_sb_decode(blk, &d, &dg), -EOPNOTSUPP);
	sb.features_incompat = 0;
	sb.version = 2;
	slab_sb_encode(blk, &sb, &g);
	assert_int_equal(slab_sb_decode(blk, &d, &dg), -EOPNOTSUPP);
}

static void test_handles(void **state)
{
	slab_handle_t h = slab_handle_make(slab_epoch_id(0x1234, 0x56), 0x78, 0x9abcdef0);

	assert_int_equal(slab_handle_epoch(h), 0x123456);
	assert_int_equal(slab_eslot(slab_handle_epoch(h)), 0x1234);
	assert_int_equal(slab_egen(slab_handle_epoch(h)), 0x56);
	assert_int_equal(slab_handle_gen(h), 0x78);
	assert_int_equal(slab_handle_slot(h), 0x9abcdef0);
	assert_int_equal(slab_handle_make(SLAB_EPOCH_ROOT, 0, 1), SLAB_HANDLE_ROOT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_arena_classes),
	    cmocka_unit_test(test_arena_alloc_free),
	    cmocka_unit_test(test_arena_stack_segments),
	    cmocka_unit_test(test_arena_no_overlap),
	    cmocka_unit_test(test_arena_threads),
	    cmocka_unit_test(test_record_roundtrip),
	    cmocka_unit_test(test_record_kinds),
	    cmocka_unit_test(test_record_copy),
	    cmocka_unit_test(test_page_header),
	    cmocka_unit_test(test_sb_encoding),
	    cmocka_unit_test(test_handles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
