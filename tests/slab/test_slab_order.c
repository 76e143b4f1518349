// SPDX-License-Identifier: MIT
/*
 * slab write-ordering tests (issue 13): within one epoch, records reach the
 * device in the order they were put. The device is recorded with the write
 * log (zns/wlog.c); the log is then read back page by page and every
 * record of the epoch is checked against the device model of
 * tests/crash/driver.py: a write is durable without the writes logged
 * before it unless they are in the same zone (a zone keeps a prefix of its
 * writes) or a flush was logged between them. So a record R (sequence
 * number s) is ordered when every record of the epoch with a lower
 * sequence number (single-threaded puts: put order) is in R's write, in an
 * earlier write of R's zone, or in a write before a flush that precedes
 * R's write. File data (CHUNK, FDATA) is exempt as a subject: page.c lets
 * it go ahead (a chunk is invisible until its head, which is checked; FDATA
 * is data, ordered as data=ordered file systems order it).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "slab/slab_int.h"
#include "slab_test_util.h"

/* One record found in a logged write. */
struct ev {
	size_t w;       /* index of the write record in the log */
	uint32_t zone;  /* zone written */
	uint32_t flush; /* flushes logged before the write */
	uint64_t seq;
	uint8_t rtype;
};

struct evs {
	struct ev *v;
	size_t n, cap;
	size_t big; /* records of more than half a page seen */
};

static void ev_push(struct evs *e, const struct ev *x)
{
	if (e->n == e->cap) {
		e->cap = e->cap ? 2 * e->cap : 1024;
		e->v = realloc(e->v, e->cap * sizeof(*e->v));
		assert_non_null(e->v);
	}
	e->v[e->n++] = *x;
}

/* Is the record of sequence T durable whenever write X is? */
static bool covered(const struct evs *e, uint64_t t, const struct ev *x)
{
	for (size_t i = 0; i < e->n; i++) {
		const struct ev *f = &e->v[i];

		if (f->seq != t || f->w > x->w)
			continue;
		if (f->w == x->w || f->zone == x->zone || f->flush < x->flush)
			return true;
	}
	return false;
}

/* Number of records violating the ordering rule (each printed). */
static size_t violations(const struct evs *e)
{
	size_t bad = 0;

	for (size_t i = 0; i < e->n; i++) {
		const struct ev *x = &e->v[i];

		if (x->rtype == SLAB_REC_CHUNK || x->rtype == SLAB_REC_FDATA)
			continue;
		for (size_t j = 0; j < e->n; j++) {
			uint64_t t = e->v[j].seq;

			if (t >= x->seq || covered(e, t, x))
				continue;
			print_message(
			    "record seq %llu (type %u, write %zu, zone %u) is on the "
			    "device without seq %llu\n",
			    (unsigned long long)x->seq, x->rtype, x->w, x->zone,
			    (unsigned long long)t);
			bad++;
			break;
		}
	}
	return bad;
}

/* Records of epoch EP in the data and journal pages of the log at PATH. */
static void log_read(const char *path, uint32_t ep, struct evs *out)
{
	struct zns_wlog_reader *r;
	struct zns_wlog_rec rec;
	uint32_t flushes = 0;

	assert_int_equal(zns_wlog_reader_open(path, &r), 0);
	for (size_t i = 0; i < zns_wlog_count(r); i++) {
		assert_int_equal(zns_wlog_get(r, i, &rec), 0);
		if (rec.type == ZNS_WLOG_FLUSH)
			flushes++;
		if (rec.type != ZNS_WLOG_WRITE || rec.zone < SLAB_JOURNAL_FIRST)
			continue;
		const uint8_t *p = rec.payload;

		for (uint32_t po = 0; po + SLAB_PAGE_HDR <= rec.len;) {
			struct slab_page_hdr ph;

			if (slab_page_hdr_decode(p + po, &ph))
				break; /* not a slab page (checkpoint zone header) */
			for (uint32_t o = SLAB_PAGE_HDR; o < ph.used;) {
				struct slab_rec x;

				assert_int_equal(slab_rec_decode(p + po + o, ph.used - o,
				                                 ph.def_uid, ph.def_gid,
				                                 &x),
				                 0);
				o += x.len;
				if (x.rtype == SLAB_REC_EPOCH ||
				    x.rtype == SLAB_REC_DROP ||
				    slab_handle_epoch(x.handle) != ep)
					continue;
				ev_push(out, &(struct ev){i, rec.zone, flushes, x.seq,
				                          x.rtype});
				if (x.len > SLAB_PAGE_SIZE / 2)
					out->big++;
			}
			po += (ph.used + 4095u) / 4096u * 4096u;
		}
	}
	zns_wlog_reader_close(r);
}

struct fix {
	char img[256], log[300];
	struct zns_dev *dev;
	struct slab_store *st;
	uint32_t ep;
};

static void fix_open(struct fix *f, uint32_t nzones, uint64_t zsize)
{
	struct slab_mount_opts mo = {.commit_ms = 600000, .no_checkpoint = true};

	assert_int_equal(tu_mkimg(f->img, sizeof(f->img), nzones, zsize, 0), 0);
	snprintf(f->log, sizeof(f->log), "%s.wlog", f->img);
	assert_int_equal(zns_open(f->img, 0, &f->dev), 0);
	assert_int_equal(slab_format(f->dev, NULL), 0);
	assert_int_equal(zns_wlog_start(f->dev, f->log), 0);
	assert_int_equal(slab_mount(f->dev, &mo, NULL, NULL, &f->st), 0);
	assert_int_equal(slab_epoch_create(f->st, &f->ep), 0);
}

/* Distinct data zones (not journal zones) holding records of the epoch. */
static uint32_t data_zones(const struct evs *e)
{
	uint32_t n = 0;

	for (size_t i = 0; i < e->n; i++) {
		bool seen = e->v[i].zone < SLAB_JOURNAL_FIRST + SLAB_JOURNAL_DEF;

		for (size_t j = 0; j < i && !seen; j++)
			seen = e->v[j].zone == e->v[i].zone;
		n += !seen;
	}
	return n;
}

/* Unmount, then check the log: at least MINBIG big records were seen, in
 * at least MINZONES data zones. */
static void fix_check(struct fix *f, size_t minbig, uint32_t minzones)
{
	struct evs e = {0};

	assert_int_equal(slab_unmount(f->st), 0);
	zns_close(f->dev);
	log_read(f->log, f->ep, &e);
	assert_true(e.n > 0);
	assert_true(e.big >= minbig);
	assert_true(data_zones(&e) >= minzones);
	assert_int_equal(violations(&e), 0);
	free(e.v);
	unlink(f->log);
	unlink(f->img);
}

static slab_handle_t put(struct fix *f, slab_handle_t h, uint32_t id, uint32_t len)
{
	static uint8_t data[SLAB_CHUNK_MAX * 3];
	char name[16];
	int n = snprintf(name, sizeof(name), "o%u", id);
	struct slab_obj o = {.kind = 1,
	                     .attr = {.mode = 0100644, .nlink = 1, .size = len},
	                     .name = name,
	                     .name_len = (uint8_t)n,
	                     .data = data,
	                     .data_len = len};

	if (!h)
		assert_int_equal(slab_obj_alloc(f->st, f->ep, &h), 0);
	tu_fill(data, len, id, len);
	assert_int_equal(slab_obj_put(f->st, h, &o), 0);
	return h;
}

/* Open page bytes used of the test epoch. */
static uint32_t open_used(struct fix *f)
{
	struct slab_epoch *e = f->st->etab[slab_eslot(f->ep)];
	uint32_t u;

	pthread_mutex_lock(&e->lock);
	u = e->page.used;
	pthread_mutex_unlock(&e->lock);
	return u;
}

/* The checker itself: a big record written ahead of the page holding an
 * earlier small one, in another zone without a flush, is reported; the
 * same with a flush between, or in the same zone, is not. */
static void test_checker(void **state)
{
	(void)state;
	struct ev v[] = {
	    {.w = 5, .zone = 7, .flush = 1, .seq = 10, .rtype = SLAB_REC_OBJ},
	    {.w = 4, .zone = 8, .flush = 1, .seq = 11, .rtype = SLAB_REC_OBJ},
	};
	struct evs e = {.v = v, .n = 2};

	assert_int_equal(violations(&e), 1); /* 11 durable without 10 */
	v[1].rtype = SLAB_REC_CHUNK;
	assert_int_equal(violations(&e), 0); /* a chunk may go ahead */
	v[1].rtype = SLAB_REC_OBJ;
	v[1].zone = 7;
	v[0].w = 3;
	assert_int_equal(violations(&e), 0); /* same zone, in order */
	v[1].zone = 8;
	v[1].flush = 2;
	assert_int_equal(violations(&e), 0); /* a flush between */
}

/* Small records, then a big one that does not fit the open page: with
 * room worth keeping (split into a chunk that goes ahead and a head), and
 * with little room (the open page is written first). */
static void test_small_then_big(void **state)
{
	(void)state;
	struct fix f = {0};
	uint32_t id = 1;

	fix_open(&f, 16, 1u << 20);
	for (int round = 0; round < 8; round++) {
		/* fill to ~2,000 bytes (round even) or to < 512 free (odd) */
		uint32_t target = round % 2 ? SLAB_PAGE_SIZE - 400 : 2000;

		while (open_used(&f) < target - 200)
			put(&f, 0, id++, 100);
		put(&f, 0, id++, 3000);
		put(&f, 0, id++, 50);
	}
	fix_check(&f, 4, 1);
}

/* A re-put of an existing object with a big payload (the re-put of a
 * renamed-over file's inode under its link name) after small changes. */
static void test_reput_big(void **state)
{
	(void)state;
	struct fix f = {0};
	slab_handle_t h[8];

	fix_open(&f, 16, 1u << 20);
	for (uint32_t i = 0; i < 8; i++)
		h[i] = put(&f, 0, 100 + i, 3000);
	assert_int_equal(slab_sync(f.st), 0);
	for (uint32_t round = 0; round < 8; round++) {
		for (uint32_t k = 0; k < 6; k++)
			put(&f, 0, 200 + round * 10 + k, 200);
		put(&f, h[round], 300 + round, 2500 + 150 * round);
	}
	fix_check(&f, 8, 1);
}

/* Runs of full FDATA chunks between small records (written ahead): the
 * records put after a run still follow those put before it. */
static void test_fdata_run(void **state)
{
	(void)state;
	struct fix f = {0};
	static uint8_t chunk[4][SLAB_FDATA_MAX];
	const void *run[4] = {chunk[0], chunk[1], chunk[2], chunk[3]};
	slab_handle_t h;

	fix_open(&f, 16, 1u << 20);
	for (uint32_t k = 0; k < 4; k++)
		tu_fill(chunk[k], SLAB_FDATA_MAX, 7, k);
	assert_int_equal(slab_obj_alloc(f.st, f.ep, &h), 0);
	assert_int_equal(slab_fdata_begin(f.st, h), 0);
	for (uint32_t round = 0; round < 6; round++) {
		put(&f, 0, 400 + round, 300);
		assert_int_equal(slab_fdata_write_run(f.st, h, round * 4, 4, run), 0);
	}
	fix_check(&f, 24, 1);
}

/* Small records only, enough of them in one epoch, without a sync, to
 * move through several small zones: a page lands in a new zone only after
 * a flush covering the old one. */
static void test_zone_switch(void **state)
{
	(void)state;
	struct fix f = {0};

	fix_open(&f, 24, 256u << 10);
	for (uint32_t i = 0; i < 2000; i++)
		put(&f, 0, 1000 + i, 16 + (uint32_t)(tu_mix(i) % 1000));
	fix_check(&f, 0, 3);
}

/* Mixed sizes 16..4000 B through several zones. */
static void test_mixed(void **state)
{
	(void)state;
	struct fix f = {0};

	fix_open(&f, 24, 256u << 10);
	for (uint32_t i = 0; i < 600; i++)
		put(&f, 0, 5000 + i, 16 + (uint32_t)(tu_mix(i) % 3990));
	fix_check(&f, 100, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_checker),     cmocka_unit_test(test_small_then_big),
	    cmocka_unit_test(test_reput_big),   cmocka_unit_test(test_fdata_run),
	    cmocka_unit_test(test_zone_switch), cmocka_unit_test(test_mixed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
