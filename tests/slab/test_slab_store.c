// SPDX-License-Identifier: MIT
/* slab store tests on emulated zoned images: objects, remount, stale
 * handles, drops, GC on a nearly full device, superblock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "slab/slab_cache.h"
#include "slab/slab_int.h"
#include "slab_test_util.h"

struct fix {
	char img[256];
	struct zns_dev *dev;
	struct slab_store *st;
};

static struct slab_mount_opts mo = {.commit_ms = 50};

static void fix_open(struct fix *f, uint32_t nzones, uint64_t zsize, uint32_t max_active)
{
	assert_int_equal(tu_mkimg(f->img, sizeof(f->img), nzones, zsize, max_active), 0);
	assert_int_equal(zns_open(f->img, 0, &f->dev), 0);
	assert_int_equal(slab_format(f->dev, NULL), 0);
	assert_int_equal(slab_mount(f->dev, &mo, NULL, NULL, &f->st), 0);
}

static void fix_remount(struct fix *f, slab_recover_fn fn, void *ctx)
{
	assert_int_equal(slab_unmount(f->st), 0);
	zns_close(f->dev);
	assert_int_equal(zns_open(f->img, 0, &f->dev), 0);
	assert_int_equal(slab_mount(f->dev, &mo, fn, ctx, &f->st), 0);
}

static void fix_close(struct fix *f)
{
	struct zns_stats zs;

	zns_stats_get(f->dev, &zs);
	assert_int_equal(zs.write_errors, 0); /* never a write off the write pointer */
	assert_int_equal(slab_unmount(f->st), 0);
	zns_close(f->dev);
	unlink(f->img);
}

static int put_ver(struct slab_store *st, slab_handle_t h, uint32_t id, uint32_t ver,
                   uint32_t maxlen)
{
	static uint8_t buf[1 << 20];
	uint32_t len = tu_len(id, ver, maxlen);
	char name[32];
	struct slab_obj o = {.kind = 1,
	                     .attr = {.mode = 0100644,
	                              .uid = 1000 + id % 3,
	                              .gid = 100,
	                              .nlink = 1,
	                              .size = len,
	                              .mtime_ns = ver,
	                              .ctime_ns = ver,
	                              .atime_ns = ver},
	                     .parent = SLAB_HANDLE_ROOT,
	                     .name = name,
	                     .data = buf,
	                     .data_len = len};

	o.name_len = (uint8_t)snprintf(name, sizeof(name), "obj-%u", id);
	tu_fill(buf, len, id, ver);
	return slab_obj_put(st, h, &o);
}

/* -1 stale, else the version read back (asserting it is intact). */
static int read_ver(struct slab_store *st, slab_handle_t h, uint32_t id, uint32_t maxlen)
{
	static uint8_t buf[1 << 20];
	ssize_t n = slab_obj_read(st, h, 0, buf, sizeof(buf));
	uint32_t ver = 0;

	if (n == -ESTALE)
		return -1;
	if (n < 8)
		print_message("read %zd\n", n);
	assert_true(n >= 8);
	assert_int_equal(tu_check(buf, (uint32_t)n, id, maxlen, &ver), 0);
	return (int)ver;
}

/* ---- objects, remount ----------------------------------------------------- */

struct seen {
	int n;
	slab_handle_t h[64];
	struct slab_obj o[64];
	char names[64][32];
};

static int collect(void *ctx, slab_handle_t h, const struct slab_obj *o)
{
	struct seen *s = ctx;

	if (s->n >= 64)
		return -E2BIG;
	s->h[s->n] = h;
	s->o[s->n] = *o;
	memcpy(s->names[s->n], o->name, o->name_len);
	s->o[s->n].name = s->names[s->n];
	s->o[s->n].data = NULL;
	s->n++;
	return 0;
}

static void test_objects_remount(void **state)
{
	struct fix f;
	slab_handle_t h[6];
	uint32_t ids[6] = {1, 2, 3, 4, 5, 6},
	         maxl[6] = {16, 120, 600, 4000, 20000, 300000};
	static uint8_t buf[400000];

	fix_open(&f, 24, 1 << 20, 14);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(slab_obj_alloc(f.st, SLAB_EPOCH_ROOT, &h[i]), 0);
		assert_int_equal(put_ver(f.st, h[i], ids[i], 1, maxl[i]), 0);
		assert_int_equal(read_ver(f.st, h[i], ids[i], maxl[i]), 1);
	}
	assert_int_equal(h[0], SLAB_HANDLE_ROOT);
	/* overwrite, partial reads including across chunk boundaries */
	assert_int_equal(put_ver(f.st, h[5], 6, 2, maxl[5]), 0);
	uint32_t len = tu_len(6, 2, maxl[5]);
	ssize_t n = slab_obj_read(f.st, h[5], 3990, buf, 20);

	assert_int_equal(n, len > 4010 ? 20 : (ssize_t)(len > 3990 ? len - 3990 : 0));
	uint8_t ref[400000];

	tu_fill(ref, len, 6, 2);
	if (n > 0)
		assert_memory_equal(buf, ref + 3990, (size_t)n);
	assert_int_equal(slab_obj_read(f.st, h[5], len, buf, 10), 0);
	/* a handle allocated but never put reads as empty and is live */
	slab_handle_t e;

	assert_int_equal(slab_obj_alloc(f.st, SLAB_EPOCH_ROOT, &e), 0);
	assert_int_equal(slab_obj_read(f.st, e, 0, buf, 10), 0);
	assert_int_equal(slab_obj_check(f.st, e), 0);
	assert_int_equal(slab_obj_free(f.st, h[2]), 0);
	assert_int_equal(slab_sync(f.st), 0);

	struct seen s = {0};

	fix_remount(&f, collect, &s);
	assert_int_equal(s.n, 5);
	for (int k = 0; k < s.n; k++) {
		int i;

		for (i = 0; i < 6 && h[i] != s.h[k]; i++)
			;
		assert_true(i < 6 && i != 2);
		uint32_t v = i == 5 ? 2 : 1;

		assert_int_equal(s.o[k].data_len, tu_len(ids[i], v, maxl[i]));
		assert_int_equal(s.o[k].attr.uid, 1000 + ids[i] % 3);
		assert_int_equal(s.o[k].attr.gid, 100);
		assert_int_equal(s.o[k].attr.mode, 0100644);
		assert_int_equal(s.o[k].attr.mtime_ns, v);
		assert_int_equal(s.o[k].parent, SLAB_HANDLE_ROOT);
		assert_true(s.o[k].name_len > 4 && !memcmp(s.names[k], "obj-", 4));
		assert_int_equal(read_ver(f.st, h[i], ids[i], maxl[i]), (int)v);
	}
	assert_int_equal(slab_obj_check(f.st, h[2]), -ESTALE);
	assert_int_equal(slab_obj_check(f.st, e), -ESTALE); /* never put: gone */
	struct slab_counters c;

	slab_counters_get(f.st, &c);
	assert_int_equal(c.objects, 5);
	fix_close(&f);
}

/* ---- stale and forged handles --------------------------------------------- */

static void expect_stale(struct slab_store *st, slab_handle_t h)
{
	uint8_t b[16];
	void *p;
	struct slab_obj o = {.attr = {.mode = 0100644, .nlink = 1}};

	assert_int_equal(slab_obj_check(st, h), -ESTALE);
	assert_int_equal(slab_obj_read(st, h, 0, b, sizeof(b)), -ESTALE);
	assert_int_equal(slab_obj_put(st, h, &o), -ESTALE);
	assert_int_equal(slab_obj_free(st, h), -ESTALE);
	assert_int_equal(slab_obj_set_priv(st, h, b), -ESTALE);
	assert_int_equal(slab_obj_get_priv(st, h, &p), -ESTALE);
}

static void test_stale_handles(void **state)
{
	struct fix f;
	slab_handle_t a, b, c;
	uint32_t ep;
	void *p;

	fix_open(&f, 24, 1 << 20, 14);
	assert_int_equal(slab_obj_alloc(f.st, SLAB_EPOCH_ROOT, &a), 0);
	assert_int_equal(put_ver(f.st, a, 1, 1, 100), 0);
	assert_int_equal(slab_obj_set_priv(f.st, a, &f), 0);
	assert_int_equal(slab_obj_get_priv(f.st, a, &p), 0);
	assert_ptr_equal(p, &f);
	/* freed: stale; the slot's reuse gets a new generation */
	assert_int_equal(slab_obj_free(f.st, a), 0);
	expect_stale(f.st, a);
	assert_int_equal(slab_obj_alloc(f.st, SLAB_EPOCH_ROOT, &b), 0);
	assert_int_equal(slab_handle_slot(b), slab_handle_slot(a));
	assert_int_not_equal(b, a);
	expect_stale(f.st, a);
	assert_int_equal(slab_obj_get_priv(f.st, b, &p), 0);
	assert_null(p);
	/* forged: slot 0, slot never allocated, wrong generation, no such epoch */
	expect_stale(f.st, 0);
	expect_stale(f.st, slab_handle_make(SLAB_EPOCH_ROOT, 0, 12345));
	expect_stale(f.st, b ^ (1ull << 33));
	expect_stale(f.st, slab_handle_make(slab_epoch_id(77, 0), 0, 1));
	expect_stale(f.st, ~0ull);
	/* dropped epoch: every handle stale, the epoch id too */
	assert_int_equal(slab_epoch_create(f.st, &ep), 0);
	assert_int_equal(slab_obj_alloc(f.st, ep, &c), 0);
	assert_int_equal(put_ver(f.st, c, 3, 1, 100), 0);
	assert_int_equal(slab_epoch_drop(f.st, ep), 0);
	expect_stale(f.st, c);
	assert_int_equal(slab_obj_alloc(f.st, ep, &c), -ESTALE);
	assert_int_equal(slab_epoch_drop(f.st, ep), -ESTALE);
	assert_null(slab_epoch_arena(f.st, ep));
	assert_int_equal(slab_epoch_drop(f.st, SLAB_EPOCH_ROOT), -EINVAL);
	fix_close(&f);
}

/* ---- drop ---------------------------------------------------------------- */

/* Bitmask of epoch slots (1 << eslot, slots < 64) with pages in each data zone. */
static void zone_epochs(struct fix *f, uint64_t *mask)
{
	struct slab_store *st = f->st;

	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		struct zns_zone rep;
		struct slab_zscan zs;
		struct slab_page_hdr ph;
		const uint8_t *pg;
		uint64_t off;

		mask[z] = 0;
		assert_int_equal(zns_zone_report(f->dev, z, 1, &rep), 1);
		assert_int_equal(slab_zscan_init(&zs, f->dev, z, rep.wp), 0);
		while (slab_zscan_next(&zs, &pg, &ph, &off) > 0)
			mask[z] |= 1ull << slab_eslot(ph.epoch);
		slab_zscan_fini(&zs);
	}
}

static void test_drop(void **state)
{
	struct fix f;
	uint32_t ea, eb;
	enum { NA = 3000, NB = NA / 4 };
	static slab_handle_t ha[NA], hb[NB];
	uint64_t before[64], after[64];
	struct slab_counters c0, c1;

	/* max_active 4: two data zones active, so epochs and the root share */
	fix_open(&f, 32, 256 << 10, 4);
	assert_int_equal(slab_epoch_create(f.st, &ea), 0);
	assert_int_equal(slab_epoch_create(f.st, &eb), 0);
	for (int i = 0; i < NA; i++) {
		assert_int_equal(slab_obj_alloc(f.st, ea, &ha[i]), 0);
		assert_int_equal(put_ver(f.st, ha[i], (uint32_t)i, 1, 600), 0);
		if (i % 4 == 0 && i / 4 < NB) {
			assert_int_equal(slab_obj_alloc(f.st, eb, &hb[i / 4]), 0);
			assert_int_equal(
			    put_ver(f.st, hb[i / 4], 100000 + (uint32_t)i / 4, 1, 600),
			    0);
		}
	}
	assert_int_equal(slab_sync(f.st), 0);
	zone_epochs(&f, before);
	slab_counters_get(f.st, &c0);
	struct slab_epoch_stats es;

	assert_int_equal(slab_epoch_stats(f.st, ea, &es), 0);
	assert_int_equal(es.objects, NA);
	assert_true(es.zones >= 3);
	assert_int_equal(slab_epoch_drop(f.st, ea), 0);
	/* The drop is durable at return; its resets follow in the background. */
	slab_reclaim_wait(f.st);
	slab_counters_get(f.st, &c1);
	zone_epochs(&f, after);
	uint64_t abit = 1ull << slab_eslot(ea);
	int only_a = 0;

	for (uint32_t z = f.st->first_data; z < f.st->nzones; z++) {
		if (before[z] == abit) {
			only_a++;
			assert_int_equal(after[z], 0); /* reset */
		} else if (before[z]) {
			assert_int_equal(after[z], before[z]); /* untouched */
		}
	}
	assert_true(only_a >= 2);
	assert_int_equal(c1.zone_resets - c0.zone_resets, (uint64_t)only_a);
	for (int i = 0; i < NB; i++)
		assert_int_equal(read_ver(f.st, hb[i], 100000 + (uint32_t)i, 600), 1);
	assert_int_equal(read_ver(f.st, ha[7], 7, 600), -1);
	fix_remount(&f, NULL, NULL);
	for (int i = 0; i < NB; i++)
		assert_int_equal(read_ver(f.st, hb[i], 100000 + (uint32_t)i, 600), 1);
	for (int i = 0; i < NA; i += 97)
		assert_int_equal(read_ver(f.st, ha[i], (uint32_t)i, 600), -1);
	assert_int_equal(slab_epoch_stats(f.st, ea, &es), -ESTALE);
	assert_int_equal(slab_epoch_stats(f.st, eb, &es), 0);
	assert_int_equal(es.objects, NB);
	fix_close(&f);
}

/* ---- GC on a nearly full device -------------------------------------------- */

static void test_gc_full(void **state)
{
	struct fix f;
	enum { N = 6000, MAXL = 1500 };
	static slab_handle_t h[N];
	static uint32_t ver[N];
	uint32_t ep[3];
	struct slab_space sp;
	struct slab_counters c;
	uint64_t live_bytes = 0;
	int live = 0;

	srand(7);
	fix_open(&f, 24, 256 << 10, 14); /* 20 data zones = 5 MiB */
	for (int k = 0; k < 3; k++)
		assert_int_equal(slab_epoch_create(f.st, &ep[k]), 0);
	slab_space_get(f.st, &sp);
	/* churn: keep about 65 % of the device live, write ~4x its size */
	for (long op = 0; op < 40000; op++) {
		int i = rand() % N;

		if (ver[i] &&
		    (live_bytes > sp.total_bytes * 65 / 100 || rand() % 3 == 0)) {
			assert_int_equal(slab_obj_free(f.st, h[i]), 0);
			live_bytes -= tu_len((uint32_t)i, ver[i], MAXL) + 60;
			ver[i] = 0;
			live--;
			continue;
		}
		if (live_bytes > sp.total_bytes * 65 / 100)
			continue;
		if (!ver[i]) {
			assert_int_equal(slab_obj_alloc(f.st, ep[i % 3], &h[i]), 0);
			live++;
		} else {
			live_bytes -= tu_len((uint32_t)i, ver[i], MAXL) + 60;
		}
		ver[i]++;
		int r = put_ver(f.st, h[i], (uint32_t)i, ver[i], MAXL);

		if (r) {
			slab_counters_get(f.st, &c);
			slab_space_get(f.st, &sp);
			print_message("op %ld: put %d, live %llu est %llu, free zones "
			              "%u, gc runs %llu\n",
			              op, r, (unsigned long long)c.bytes_live,
			              (unsigned long long)live_bytes, sp.zones_empty,
			              (unsigned long long)c.gc_runs);
			for (uint32_t z = f.st->first_data; z < f.st->nzones; z++)
				print_message(" z%u st %d live %llu wp %llu writers %u\n",
				              z, f.st->zones[z].state,
				              (unsigned long long)f.st->zones[z].live,
				              (unsigned long long)f.st->zones[z].wp,
				              f.st->zones[z].writers);
			print_message("gave up %d active %u budget %u\n",
			              f.st->gc_gave_up, f.st->active, f.st->budget);
		}
		assert_int_equal(r, 0);
		live_bytes += tu_len((uint32_t)i, ver[i], MAXL) + 60;
		if (op % 5000 == 0)
			assert_int_equal(slab_sync(f.st), 0);
	}
	for (int i = 0; i < N; i++)
		if (ver[i])
			assert_int_equal(read_ver(f.st, h[i], (uint32_t)i, MAXL),
			                 (int)ver[i]);
	slab_counters_get(f.st, &c);
	print_message(
	    "gc: runs %llu moved %llu B, resets %llu, user %llu B, device %llu B\n",
	    (unsigned long long)c.gc_runs, (unsigned long long)c.gc_bytes_moved,
	    (unsigned long long)c.zone_resets, (unsigned long long)c.user_bytes_written,
	    (unsigned long long)c.device_bytes_written);
	assert_true(c.gc_runs > 0);
	assert_int_equal(c.objects, (uint64_t)live);
	fix_remount(&f, NULL, NULL);
	for (int i = 0; i < N; i++)
		if (ver[i])
			assert_int_equal(read_ver(f.st, h[i], (uint32_t)i, MAXL),
			                 (int)ver[i]);
	slab_counters_get(f.st, &c);
	assert_int_equal(c.objects, (uint64_t)live);
	fix_close(&f);
}

/* A device that live data truly fills answers -ENOSPC, and stays usable. */
static void test_enospc(void **state)
{
	struct fix f;
	slab_handle_t h;
	int r = 0;
	uint32_t i;

	fix_open(&f, 12, 128 << 10, 14);
	for (i = 0; i < 100000 && r == 0; i++) {
		r = slab_obj_alloc(f.st, SLAB_EPOCH_ROOT, &h);
		if (!r)
			r = put_ver(f.st, h, i, 1, 3000);
	}
	assert_int_equal(r, -ENOSPC);
	assert_true(i > 50);
	slab_handle_t first = SLAB_HANDLE_ROOT;

	assert_int_equal(read_ver(f.st, first, 0, 3000), 1);
	assert_int_equal(
	    slab_obj_free(f.st, first) == 0 || slab_obj_free(f.st, first) == -ESTALE, 1);
	assert_int_equal(slab_unmount(f.st), 0);
	zns_close(f.dev);
	unlink(f.img);
}

/*
 * Space admission: reservations are granted up to the limit and no
 * further; a put counts exactly slab_obj_cost() of its version, so
 * reserve + put + release leaves used = the live costs; a free and a drop
 * give the space back; a remount counts the same objects again (no more
 * than their put-time costs). Every admitted put succeeds.
 */
static void test_space_admission(void **state)
{
	static uint8_t data[3000];
	struct slab_space sp0, sp;
	struct fix f;
	slab_handle_t h[4096];
	uint32_t ep, n = 0;

	fix_open(&f, 24, 256 << 10, 14);
	assert_int_equal(slab_epoch_create(f.st, &ep), 0);
	slab_space_get(f.st, &sp0);
	assert_true(sp0.limit_bytes < sp0.total_bytes);
	assert_true(sp0.device_bytes > sp0.total_bytes);
	uint64_t cost = slab_obj_cost(sizeof(data), 5);

	assert_true(cost >= sizeof(data) + SLAB_REC_HDR);
	for (; n < 4096; n++) {
		int r = slab_space_reserve(f.st, cost);

		if (r) {
			assert_int_equal(r, -ENOSPC);
			break;
		}
		struct slab_obj o = {.kind = 1,
		                     .attr = {.mode = 0100644},
		                     .name = "fname",
		                     .name_len = 5,
		                     .data = data,
		                     .data_len = sizeof(data)};

		assert_int_equal(slab_obj_alloc(f.st, ep, &h[n]), 0);
		/* admitted: never ENOSPC */
		assert_int_equal(slab_obj_put(f.st, h[n], &o), 0);
		slab_space_release(f.st, cost);
		slab_space_get(f.st, &sp);
		assert_int_equal(sp.used_bytes - sp0.used_bytes,
		                 (uint64_t)(n + 1) * cost);
	}
	assert_true(n > 10 && n < 4096);
	slab_space_get(f.st, &sp);
	assert_true(sp.avail_bytes < cost);
	assert_int_equal(slab_space_reserve(f.st, cost), -ENOSPC);
	/* a free gives its cost back but for its tombstone's (a 44-byte
	 * record, until the slot is reused) */
	uint64_t before = sp.avail_bytes;

	assert_int_equal(slab_obj_free(f.st, h[0]), 0);
	slab_space_get(f.st, &sp);
	assert_true(sp.avail_bytes >= before + cost - 64 &&
	            sp.avail_bytes < before + cost);
	assert_int_equal(slab_sync(f.st), 0);
	fix_remount(&f, NULL, NULL);
	slab_space_get(f.st, &sp);
	assert_true(sp.used_bytes <= sp0.used_bytes + (uint64_t)n * cost);
	assert_true(sp.used_bytes > sp0.used_bytes + (uint64_t)(n - 2) * sizeof(data));
	/* the drop returns everything the epoch cost */
	assert_int_equal(slab_epoch_drop(f.st, ep), 0);
	slab_space_get(f.st, &sp);
	assert_true(sp.used_bytes <= sp0.used_bytes);
	fix_close(&f);
}

/* ---- superblock ----------------------------------------------------------- */

static void test_superblock(void **state)
{
	struct fix f;
	struct slab_sb_info sb;
	struct slab_format_opts fo = {.label = "sensors"};
	struct zns_zone z[2];

	assert_int_equal(tu_mkimg(f.img, sizeof(f.img), 16, 64 << 10, 14), 0);
	assert_int_equal(zns_open(f.img, 0, &f.dev), 0);
	assert_int_equal(slab_sb_read(f.dev, &sb), -ENODATA);
	assert_int_equal(slab_format(f.dev, &fo), 0);
	assert_int_equal(slab_sb_read(f.dev, &sb), 0);
	assert_string_equal(sb.label, "sensors");
	assert_int_equal(sb.version, SLAB_SB_VERSION);
	assert_int_equal(sb.sequence, 1);
	assert_int_equal(sb.first_data_zone, 4);
	assert_int_equal(sb.journal_zones, 2);
	assert_int_equal(sb.reserve_zones, 2);
	/* ping-pong: 16 copies per 64 KiB zone; 40 copies cross both zones */
	for (uint64_t s = 2; s <= 40; s++) {
		sb.sequence = s;
		assert_int_equal(slab_sb_write(f.dev, &sb), 0);
		struct slab_sb_info r;

		assert_int_equal(slab_sb_read(f.dev, &r), 0);
		assert_int_equal(r.sequence, s);
	}
	assert_int_equal(zns_zone_report(f.dev, 0, 2, z), 2);
	/* 40 copies: 16 in zone 0, 16 in zone 1, then zone 0 reset with 8 */
	assert_int_equal(z[0].wp, 8 * 4096);
	assert_int_equal(z[1].wp, z[1].capacity);
	/* a corrupt newest copy falls back to the previous valid one */
	uint8_t *blk = zns_buf_alloc(4096);
	struct slab_sb_geom g = {4096, 16, 64 << 10, 64 << 10};

	sb.sequence = 41;
	slab_sb_encode(blk, &sb, &g);
	blk[300] ^= 1;
	assert_int_equal(zns_zone_write(f.dev, 0, z[0].wp, blk, 4096), 4096);
	assert_int_equal(slab_sb_read(f.dev, &sb), 0);
	assert_int_equal(sb.sequence, 40);
	/* only corrupt copies: -EUCLEAN */
	assert_int_equal(zns_zone_reset(f.dev, 0), 0);
	assert_int_equal(zns_zone_reset(f.dev, 1), 0);
	assert_int_equal(zns_zone_write(f.dev, 0, 0, blk, 4096), 4096);
	assert_int_equal(slab_sb_read(f.dev, &sb), -EUCLEAN);
	struct slab_store *st;

	assert_int_equal(slab_mount(f.dev, &mo, NULL, NULL, &st), -EUCLEAN);
	/* unknown incompatible feature: refused */
	assert_int_equal(slab_format(f.dev, NULL), 0);
	assert_int_equal(slab_sb_read(f.dev, &sb), 0);
	sb.sequence++;
	sb.features_incompat = 1ull << 63;
	assert_int_equal(slab_sb_write(f.dev, &sb), 0);
	assert_int_equal(slab_sb_read(f.dev, &sb), -EOPNOTSUPP);
	assert_int_equal(slab_mount(f.dev, &mo, NULL, NULL, &st), -EOPNOTSUPP);
	/* unknown ro_compat feature: mounts read-only */
	assert_int_equal(slab_format(f.dev, NULL), 0);
	assert_int_equal(slab_sb_read(f.dev, &sb), 0);
	sb.sequence++;
	sb.features_ro_compat = 1ull << 62;
	assert_int_equal(slab_sb_write(f.dev, &sb), 0);
	assert_int_equal(slab_mount(f.dev, &mo, NULL, NULL, &st), 0);
	slab_handle_t h;

	assert_int_equal(slab_obj_alloc(st, SLAB_EPOCH_ROOT, &h), -EROFS);
	assert_int_equal(slab_unmount(st), 0);
	zns_buf_free(blk);
	zns_close(f.dev);
	unlink(f.img);
}

/* ---- seal ------------------------------------------------------------------- */

/* A sealed epoch refuses alloc/put/free, stays readable and sealed across a
 * remount, and drops as usual; other epochs are not affected. */
static void test_seal(void **state)
{
	enum { N = 300 };
	static slab_handle_t h[N];
	struct fix f;
	struct slab_epoch_stats es;
	slab_handle_t x;
	uint32_t ea, eb;

	(void)state;
	fix_open(&f, 12, 1u << 20, 0);
	assert_int_equal(slab_epoch_create(f.st, &ea), 0);
	assert_int_equal(slab_epoch_create(f.st, &eb), 0);
	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(slab_obj_alloc(f.st, ea, &h[i]), 0);
		assert_int_equal(put_ver(f.st, h[i], i, 1, 900), 0);
	}
	assert_int_equal(slab_obj_alloc(f.st, ea, &x), 0); /* allocated, never put */
	assert_int_equal(slab_epoch_seal(f.st, SLAB_EPOCH_ROOT), -EINVAL);
	assert_int_equal(slab_epoch_seal(f.st, ea), 0);
	assert_int_equal(slab_epoch_seal(f.st, ea), 0);
	assert_int_equal(slab_epoch_stats(f.st, ea, &es), 0);
	assert_true(es.sealed);
	assert_int_equal(es.objects, N);
	assert_int_equal(slab_obj_alloc(f.st, ea, &x), -EROFS);
	assert_int_equal(put_ver(f.st, h[0], 0, 2, 900), -EROFS);
	assert_int_equal(slab_obj_free(f.st, h[1]), -EROFS);
	assert_int_equal(slab_obj_alloc(f.st, eb, &x), 0);
	assert_int_equal(put_ver(f.st, x, 7, 1, 900), 0);
	fix_remount(&f, NULL, NULL);
	assert_int_equal(slab_epoch_stats(f.st, ea, &es), 0);
	assert_true(es.sealed);
	assert_int_equal(es.objects, N);
	assert_int_equal(slab_epoch_stats(f.st, eb, &es), 0);
	assert_false(es.sealed);
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(read_ver(f.st, h[i], i, 900), 1);
	assert_int_equal(put_ver(f.st, h[0], 0, 2, 900), -EROFS);
	assert_int_equal(read_ver(f.st, x, 7, 900), 1);
	assert_int_equal(slab_epoch_drop(f.st, ea), 0);
	assert_int_equal(read_ver(f.st, h[0], 0, 900), -1);
	assert_int_equal(slab_epoch_seal(f.st, ea), -ESTALE);
	fix_close(&f);
}

/* ---- administration: zone map, epoch list, GC on request ----------------------- */

/* The zone map names each epoch's zones with its live bytes; sealing an
 * epoch alone in its zone finishes that zone; slab_gc_run collects a zone
 * mostly dead and every live object still reads back. */
static void test_admin(void **state)
{
	enum { N = 400 };
	static slab_handle_t h[N];
	static struct slab_zone_info zi[16];
	uint32_t ea, eb, ids[8], done = 0;
	struct fix f;
	int nz, ne, za = -1;

	(void)state;
	fix_open(&f, 16, 1u << 20, 0);
	assert_int_equal(slab_epoch_create(f.st, &ea), 0);
	assert_int_equal(slab_epoch_create(f.st, &eb), 0);
	for (uint32_t i = 0; i < N; i++) {
		uint32_t ep = i % 2 ? eb : ea;

		assert_int_equal(slab_obj_alloc(f.st, ep, &h[i]), 0);
		assert_int_equal(put_ver(f.st, h[i], i, 1, 4000), 0);
	}
	assert_int_equal(slab_sync(f.st), 0);
	ne = slab_epoch_list(f.st, ids, 8);
	assert_int_equal(ne, 3);
	assert_int_equal(slab_zone_map(f.st, NULL, 0), 16);
	nz = slab_zone_map(f.st, zi, 16);
	assert_int_equal(nz, 16);
	uint64_t live_a = 0;

	for (int z = 0; z < nz; z++) {
		assert_true(zi[z].live <= zi[z].wp);
		if (zi[z].owner == ea && zi[z].owners == 1) {
			live_a += zi[z].live;
			za = z;
		}
	}
	assert_true(za >= 0 && live_a > 0);
	assert_int_equal(zi[za].use, SLAB_ZUSE_OPEN);
	/* Most of ea dies; sealing it finishes its zone (nobody else writes). */
	for (uint32_t i = 0; i < N; i += 2)
		if (i % 20)
			assert_int_equal(slab_obj_free(f.st, h[i]), 0);
	assert_int_equal(slab_sync(f.st), 0);
	assert_int_equal(slab_epoch_seal(f.st, ea), 0);
	slab_zone_map(f.st, zi, 16);
	assert_int_equal(zi[za].use, SLAB_ZUSE_FULL);
	assert_int_equal(slab_gc_run(f.st, 16, &done), 0);
	assert_true(done >= 1);
	for (uint32_t i = 0; i < N; i++)
		if (i % 2 || i % 20 == 0)
			assert_int_equal(read_ver(f.st, h[i], i, 4000), 1);
	fix_remount(&f, NULL, NULL);
	for (uint32_t i = 0; i < N; i++)
		if (i % 2 || i % 20 == 0)
			assert_int_equal(read_ver(f.st, h[i], i, 4000), 1);
	fix_close(&f);
}

/* ---- many drops ---------------------------------------------------------------- */

/* Epoch after epoch created, filled and dropped: drop records retire and
 * epoch slots are reused, so neither piles up (root records keep to their
 * own zones; the journal is cycled when drops wait for it). */
static void test_drop_cycles(void **state)
{
	struct fix f;
	uint32_t max_slots = 0, max_drops = 0;

	(void)state;
	fix_open(&f, 24, 1u << 20, 0);
	for (uint32_t c = 0; c < 120; c++) {
		uint32_t ep;

		assert_int_equal(slab_epoch_create(f.st, &ep), 0);
		for (uint32_t i = 0; i < 1500; i++) {
			slab_handle_t h;

			assert_int_equal(slab_obj_alloc(f.st, ep, &h), 0);
			assert_int_equal(put_ver(f.st, h, i, c + 1, 200), 0);
		}
		if (c % 3 == 0)
			assert_int_equal(slab_sync(f.st), 0); /* some records journaled */
		assert_int_equal(slab_epoch_drop(f.st, ep), 0);
		slab_reclaim_wait(f.st);
		if (f.st->neslots > max_slots)
			max_slots = f.st->neslots;
		if (f.st->ndrops > max_drops)
			max_drops = f.st->ndrops;
	}
	print_message("120 cycles: at most %u epoch slots, %u pending drop records\n",
	              max_slots, max_drops);
	assert_true(max_slots <= 10);
	assert_true(max_drops <= 8);
	fix_close(&f);
}

/* ---- read cache ------------------------------------------------------------- */

/* Reads are served from the block cache, and a zone reset and rewritten at
 * the same offsets never serves the old contents. */
static void test_read_cache_reset(void **state)
{
	enum { N = 400 };
	static slab_handle_t ha[N], hb[N];
	struct fix f;
	uint32_t ea, eb;
	uint64_t h0, m0, h1, m1;

	(void)state;
	fix_open(&f, 10, 1u << 20, 0);
	assert_non_null(f.st->rcache);
	assert_int_equal(slab_epoch_create(f.st, &ea), 0);
	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(slab_obj_alloc(f.st, ea, &ha[i]), 0);
		assert_int_equal(put_ver(f.st, ha[i], i, 1, 600), 0);
	}
	assert_int_equal(slab_sync(f.st), 0);
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < N; i++)
			assert_int_equal(read_ver(f.st, ha[i], i, 600), 1);
	slab_rcache_stats(f.st->rcache, &h0, &m0);
	assert_true(m0 > 0);
	assert_true(h0 > m0); /* the second pass and the neighbours hit */
	uint32_t zone_a = slab_slot_get(f.st->etab[slab_eslot(ea)], 1)->loc.zone;

	assert_int_equal(slab_epoch_drop(f.st, ea), 0);
	slab_reclaim_wait(f.st);
	assert_int_equal(slab_epoch_create(f.st, &eb), 0);
	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(slab_obj_alloc(f.st, eb, &hb[i]), 0);
		assert_int_equal(put_ver(f.st, hb[i], i, 2, 600), 0);
	}
	assert_int_equal(slab_sync(f.st), 0);
	/* the same zone, rewritten from offset 0 */
	assert_int_equal(slab_slot_get(f.st->etab[slab_eslot(eb)], 1)->loc.zone, zone_a);
	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(read_ver(f.st, ha[i], i, 600), -1);
		assert_int_equal(read_ver(f.st, hb[i], i, 600), 2);
	}
	slab_rcache_stats(f.st->rcache, &h1, &m1);
	assert_true(m1 > m0);
	fix_close(&f);
}

/* TSLAB_CHECK_RESETS: a zone whose live bytes were miscounted to zero while
 * slots still name records in it is left alone (slab/resetcheck.c), so the
 * records stay readable; once counted right it is reset as usual. */
static void test_reset_check(void **state)
{
	enum { N = 2400 };
	static slab_handle_t h[N];
	struct fix f;
	uint32_t ep, z;
	uint64_t live, wp;

	(void)state;
	fix_open(&f, 10, 1u << 20, 0);
	assert_int_equal(slab_epoch_create(f.st, &ep), 0);
	for (uint32_t i = 0; i < N; i++) {
		assert_int_equal(slab_obj_alloc(f.st, ep, &h[i]), 0);
		assert_int_equal(put_ver(f.st, h[i], i, 1, 1500), 0);
	}
	assert_int_equal(slab_sync(f.st), 0);
	z = slab_slot_get(f.st->etab[slab_eslot(ep)], 1)->loc.zone;
	assert_true(z >= f.st->first_data && z < f.st->nzones);
	assert_int_equal(f.st->zones[z].state, ZS_FULL);
	wp = f.st->zones[z].wp;
	live = atomic_load(&f.st->zones[z].live);
	assert_true(live > 0);

	f.st->check_resets = true;
	slab_zone_live_sub(f.st, z, live); /* the miscount */
	assert_true(slab_zone_still_named(f.st, z));
	assert_int_equal(slab_sync(f.st), 0);
	assert_int_equal(f.st->zones[z].state, ZS_FULL);
	assert_int_equal(f.st->zones[z].wp, wp);
	for (uint32_t i = 0; i < N; i++)
		assert_int_equal(read_ver(f.st, h[i], i, 1500), 1);
	slab_zone_live_add(f.st, z, live);

	/* the epoch dropped: nothing names the zone any more, it is reset */
	assert_int_equal(slab_epoch_drop(f.st, ep), 0);
	slab_reclaim_wait(f.st);
	assert_false(slab_zone_still_named(f.st, z));
	assert_int_equal(slab_sync(f.st), 0);
	assert_true(f.st->zones[z].state == ZS_FREE || f.st->zones[z].wp != wp);
	fix_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_superblock),
	    cmocka_unit_test(test_objects_remount),
	    cmocka_unit_test(test_stale_handles),
	    cmocka_unit_test(test_drop),
	    cmocka_unit_test(test_gc_full),
	    cmocka_unit_test(test_enospc),
	    cmocka_unit_test(test_space_admission),
	    cmocka_unit_test(test_read_cache_reset),
	    cmocka_unit_test(test_reset_check),
	    cmocka_unit_test(test_seal),
	    cmocka_unit_test(test_admin),
	    cmocka_unit_test(test_drop_cycles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
