// SPDX-License-Identifier: MIT
/*
 * Checkpoints: a mount that starts from a checkpoint and rolls forward what
 * was written after it (puts, overwrites, frees, drops, GC, crashes) must
 * recover exactly what a full scan of the same device recovers: the same
 * objects with the same fields and contents, the same live bytes per zone,
 * the same pending drops. A corrupt or mismatching checkpoint is ignored;
 * failed writes and power cuts while a checkpoint is written lose nothing.
 * Mount times are measured by tests/bench/ckpt_bench, not here.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>
#include <cmocka.h>

#include "slab/slab_int.h"
#include "slab_test_util.h"

/* ---- what a mount recovered --------------------------------------------- */

struct dobj {
	slab_handle_t h, parent;
	struct slab_attr attr;
	uint64_t data_len, hash;
	uint8_t kind, name_len;
	bool has_data;
	uint8_t data[SLAB_DATA_INLINE];
	char name[SLAB_NAME_MAX];
};

struct dump {
	struct dobj *v;
	size_t n, cap;
	uint64_t *zlive;
	uint32_t nzones;
	uint64_t objects;
	uint32_t drops[256];
	uint32_t ndrops;
	bool ck_loaded;
	int ck_error;
	uint64_t replayed;
};

static int dump_cb(void *ctx, slab_handle_t h, const struct slab_obj *o)
{
	struct dump *d = ctx;

	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 1024;
		d->v = realloc(d->v, d->cap * sizeof(*d->v));
		if (!d->v)
			return -ENOMEM;
	}
	struct dobj *x = &d->v[d->n++];

	memset(x, 0, sizeof(*x));
	x->h = h;
	x->parent = o->parent;
	x->attr = o->attr;
	x->data_len = o->data_len;
	x->kind = o->kind;
	x->name_len = o->name_len;
	memcpy(x->name, o->name, o->name_len);
	x->has_data = o->data != NULL && o->data_len <= SLAB_DATA_INLINE;
	if (x->has_data)
		memcpy(x->data, o->data, o->data_len);
	return 0;
}

static int dobj_cmp(const void *a, const void *b)
{
	const struct dobj *x = a, *y = b;

	return x->h < y->h ? -1 : x->h > y->h;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

/* Read-only mount of IMG, with or without its checkpoint, into D. */
static void dump_mount(const char *img, bool no_ck, struct dump *d)
{
	static uint8_t buf[1 << 20];
	struct slab_mount_opts o = {.read_only = true, .no_checkpoint = no_ck};
	struct zns_dev *dev;
	struct slab_store *st;

	memset(d, 0, sizeof(*d));
	assert_int_equal(zns_open(img, 0, &dev), 0);
	assert_int_equal(slab_mount(dev, &o, dump_cb, d, &st), 0);
	qsort(d->v, d->n, sizeof(*d->v), dobj_cmp);
	for (size_t i = 0; i < d->n; i++) {
		ssize_t n = slab_obj_read(st, d->v[i].h, 0, buf, sizeof(buf));

		assert_int_equal(n, (ssize_t)d->v[i].data_len);
		d->v[i].hash = fnv(buf, (size_t)n);
	}
	d->nzones = st->nzones;
	d->zlive = calloc(st->nzones, sizeof(*d->zlive));
	for (uint32_t z = 0; z < st->nzones; z++)
		d->zlive[z] = atomic_load(&st->zones[z].live);
	d->objects = atomic_load(&st->c_objects);
	for (uint32_t i = 0; i < st->ndrops && d->ndrops < 256; i++)
		d->drops[d->ndrops++] = st->drops[i].epoch;
	qsort(d->drops, d->ndrops, sizeof(d->drops[0]), u32_cmp);
	d->ck_loaded = st->ck_loaded;
	d->ck_error = st->ck_error;
	d->replayed = st->ck_replayed;
	assert_int_equal(slab_unmount(st), 0);
	zns_close(dev);
}

static void dump_free(struct dump *d)
{
	free(d->v);
	free(d->zlive);
}

static void dump_equal(const struct dump *a, const struct dump *b)
{
	assert_int_equal(a->n, b->n);
	assert_int_equal(a->objects, b->objects);
	for (size_t i = 0; i < a->n; i++) {
		const struct dobj *x = &a->v[i], *y = &b->v[i];

		assert_int_equal(x->h, y->h);
		assert_int_equal(x->parent, y->parent);
		assert_int_equal(x->attr.mode, y->attr.mode);
		assert_int_equal(x->attr.uid, y->attr.uid);
		assert_int_equal(x->attr.gid, y->attr.gid);
		assert_int_equal(x->attr.nlink, y->attr.nlink);
		assert_int_equal(x->attr.rdev, y->attr.rdev);
		assert_int_equal(x->attr.size, y->attr.size);
		assert_int_equal(x->attr.atime_ns, y->attr.atime_ns);
		assert_int_equal(x->attr.mtime_ns, y->attr.mtime_ns);
		assert_int_equal(x->attr.ctime_ns, y->attr.ctime_ns);
		assert_int_equal(x->data_len, y->data_len);
		assert_int_equal(x->kind, y->kind);
		assert_int_equal(x->name_len, y->name_len);
		assert_memory_equal(x->name, y->name, x->name_len);
		assert_int_equal(x->hash, y->hash);
		if (x->data_len <= SLAB_DATA_INLINE) {
			assert_true(x->has_data && y->has_data);
			assert_memory_equal(x->data, y->data, x->data_len);
		}
	}
	assert_int_equal(a->nzones, b->nzones);
	for (uint32_t z = 0; z < a->nzones; z++)
		if (a->zlive[z] != b->zlive[z]) {
			print_message("zone %u: live %llu vs %llu\n", z,
			              (unsigned long long)a->zlive[z],
			              (unsigned long long)b->zlive[z]);
			fail();
		}
	assert_int_equal(a->ndrops, b->ndrops);
	assert_memory_equal(a->drops, b->drops, a->ndrops * sizeof(a->drops[0]));
}

/* Checkpoint mount and full-scan mount of IMG agree; returns the former. */
static void check_equal(const char *img, struct dump *ck)
{
	struct dump full;

	dump_mount(img, false, ck);
	dump_mount(img, true, &full);
	assert_false(full.ck_loaded);
	dump_equal(ck, &full);
	dump_free(&full);
}

/* ---- a model of the store's contents ----------------------------------- */

enum { N = 3000, NE = 4, MAXL = 9000 };

struct model {
	char img[256];
	struct zns_dev *dev;
	struct slab_store *st;
	uint32_t ep[NE];
	slab_handle_t h[N];
	int epi[N];
	uint32_t ver[N]; /* 0: none or freed */
	uint64_t live;
	unsigned rs;
};

static uint32_t obj_len(uint32_t id, uint32_t ver)
{
	/* a mix of tiny (inline in the checkpoint), small, page-sized, chunked */
	switch (tu_mix(id) % 4) {
	case 0:
		return tu_len(id, ver, 16);
	case 1:
		return tu_len(id, ver, 400);
	case 2:
		return tu_len(id, ver, 3000);
	default:
		return tu_len(id, ver, MAXL);
	}
}

static int mput(struct model *m, int i)
{
	static uint8_t buf[MAXL];
	uint32_t v = m->ver[i] + 1, len = obj_len((uint32_t)i, v);
	char name[40];
	struct slab_obj o = {.kind = (uint8_t)(1 + i % 3),
	                     .attr = {.mode = 0100600 | (uint32_t)(i & 7),
	                              .uid = 1000 + (uint32_t)(i % 5),
	                              .gid = 100,
	                              .nlink = 1 + (uint32_t)(i % 2),
	                              .rdev = (uint32_t)(i % 7 == 0),
	                              .size = len + (uint32_t)(i % 3),
	                              .atime_ns = v,
	                              .mtime_ns = (int64_t)v * 3,
	                              .ctime_ns = -(int64_t)v},
	                     .parent = (slab_handle_t)i * 7,
	                     .name = name,
	                     .data = buf,
	                     .data_len = len};

	o.name_len = (uint8_t)snprintf(name, sizeof(name), "n%d-v%u", i, v);
	tu_fill(buf, len, (uint32_t)i, v);
	int r = slab_obj_put(m->st, m->h[i], &o);

	if (!r) {
		if (m->ver[i])
			m->live -= obj_len((uint32_t)i, m->ver[i]);
		m->live += len;
		m->ver[i] = v;
	}
	return r;
}

static void mfree(struct model *m, int i)
{
	assert_int_equal(slab_obj_free(m->st, m->h[i]), 0);
	m->live -= obj_len((uint32_t)i, m->ver[i]);
	m->ver[i] = 0;
	m->h[i] = 0;
}

/* Drop epoch slot K (1..NE-1) and replace it with a new epoch. */
static void mdrop(struct model *m, int k)
{
	assert_int_equal(slab_epoch_drop(m->st, m->ep[k]), 0);
	for (int i = 0; i < N; i++)
		if (m->h[i] && m->epi[i] == k) {
			if (m->ver[i])
				m->live -= obj_len((uint32_t)i, m->ver[i]);
			m->ver[i] = 0;
			m->h[i] = 0;
		}
	assert_int_equal(slab_epoch_create(m->st, &m->ep[k]), 0);
}

static void mop(struct model *m, uint64_t live_max)
{
	int i = (int)(rand_r(&m->rs) % N), x = (int)(rand_r(&m->rs) % 1000);

	if (x < 2) {
		mdrop(m, 1 + (int)(rand_r(&m->rs) % (NE - 1)));
		return;
	}
	if (m->h[i] && m->ver[i] && (x < 300 || m->live > live_max)) {
		mfree(m, i);
		return;
	}
	if (m->live > live_max)
		return;
	if (!m->h[i]) {
		int k = (int)(rand_r(&m->rs) % NE);

		assert_int_equal(slab_obj_alloc(m->st, m->ep[k], &m->h[i]), 0);
		m->epi[i] = k;
	}
	assert_int_equal(mput(m, i), 0);
}

/* Every object of the model is there with its version; nothing else. */
static void mverify(struct model *m, struct slab_store *st)
{
	static uint8_t buf[MAXL + 16], ref[MAXL];

	for (int i = 0; i < N; i++) {
		if (!m->h[i])
			continue;
		ssize_t n = slab_obj_read(st, m->h[i], 0, buf, sizeof(buf));

		if (!m->ver[i]) {
			assert_true(n == 0 || n == -ESTALE);
			continue;
		}
		assert_int_equal(n, (ssize_t)obj_len((uint32_t)i, m->ver[i]));
		tu_fill(ref, (uint32_t)n, (uint32_t)i, m->ver[i]);
		assert_memory_equal(buf, ref, (size_t)n);
	}
}

/* Overwrite N random live objects without a sync; mark them in TOUCHED. */
static void munsynced(struct model *m, int n, bool *touched)
{
	for (int k = 0; k < n; k++) {
		int i = (int)(rand_r(&m->rs) % N);

		if (!m->h[i] || !m->ver[i])
			continue;
		assert_int_equal(mput(m, i), 0);
		touched[i] = true;
	}
}

/* After a power cut: an overwritten object holds a complete version between
 * the synced one (SV) and the newest; the model learns which. */
static void mresync(struct model *m, struct slab_store *st, const uint32_t *sv,
                    const bool *touched)
{
	static uint8_t buf[MAXL + 16], ref[MAXL];
	int older = 0;

	for (int i = 0; i < N; i++) {
		uint32_t v;

		if (!touched[i])
			continue;
		ssize_t n = slab_obj_read(st, m->h[i], 0, buf, sizeof(buf));

		assert_true(n >= 8);
		memcpy(&v, buf + 4, 4);
		assert_true(v >= sv[i] && v <= m->ver[i]);
		assert_int_equal(n, (ssize_t)obj_len((uint32_t)i, v));
		tu_fill(ref, (uint32_t)n, (uint32_t)i, v);
		assert_memory_equal(buf, ref, (size_t)n);
		older += v < m->ver[i];
		m->live -= obj_len((uint32_t)i, m->ver[i]);
		m->live += (uint64_t)n;
		m->ver[i] = v;
	}
	print_message("  power cut: %d unsynced overwrites lost\n", older);
}

static struct slab_mount_opts rw = {.commit_ms = 40};

static void mmount(struct model *m)
{
	assert_int_equal(zns_open(m->img, 0, &m->dev), 0);
	assert_int_equal(slab_mount(m->dev, &rw, NULL, NULL, &m->st), 0);
}

/* Clean unmount (writes a checkpoint) or a crash after the last sync. */
static void mclose(struct model *m, bool crash)
{
	if (crash)
		slab_fence(m->st);
	assert_int_equal(slab_unmount(m->st), 0);
	zns_close(m->dev);
	m->st = NULL;
}

static void mstart(struct model *m, uint32_t nzones, uint64_t zsize, unsigned seed)
{
	memset(m, 0, sizeof(*m));
	m->rs = seed;
	assert_int_equal(tu_mkimg(m->img, sizeof(m->img), nzones, zsize, 14), 0);
	assert_int_equal(zns_open(m->img, 0, &m->dev), 0);
	assert_int_equal(slab_format(m->dev, NULL), 0);
	assert_int_equal(slab_mount(m->dev, &rw, NULL, NULL, &m->st), 0);
	m->ep[0] = SLAB_EPOCH_ROOT;
	for (int k = 1; k < NE; k++)
		assert_int_equal(slab_epoch_create(m->st, &m->ep[k]), 0);
}

static bool has_ckpt(const char *img)
{
	struct zns_dev *dev;
	struct slab_sb_info sb;

	assert_int_equal(zns_open(img, 0, &dev), 0);
	assert_int_equal(slab_sb_read(dev, &sb), 0);
	zns_close(dev);
	return sb.features_compat & SLAB_FEAT_COMPAT_CKPT;
}

/* ---- tests ------------------------------------------------------------ */

/* Clean unmount writes a checkpoint; the next mount replays nothing. */
static void test_clean_remount(void **state)
{
	struct model m;
	struct dump d;

	mstart(&m, 48, 1 << 20, 1);
	for (int op = 0; op < 6000; op++)
		mop(&m, 8u << 20);
	mclose(&m, false);
	assert_true(has_ckpt(m.img));
	check_equal(m.img, &d);
	assert_true(d.ck_loaded);
	assert_int_equal(d.replayed, 0);
	print_message(
	    "clean remount: %zu objects from the checkpoint, 0 bytes replayed\n", d.n);
	dump_free(&d);
	mmount(&m);
	assert_true(m.st->ck_loaded);
	mverify(&m, m.st);
	mclose(&m, false);
	unlink(m.img);
}

/*
 * Rounds of puts, overwrites, frees, drops and GC after a checkpoint, each
 * ended by a crash (after a sync) or a clean unmount: the checkpoint mount
 * equals the full scan every time.
 */
static void test_roll_forward(void **state)
{
	struct model m;
	struct slab_counters c;
	uint64_t gc_runs = 0;

	static uint32_t sv[N];
	static bool touched[N];

	/* 60 data zones of 256 KiB, live data around 25 %: GC works, and a
	 * checkpoint fits next to it */
	mstart(&m, 64, 256 << 10, 2);
	for (int op = 0; op < 4000; op++)
		mop(&m, 4u << 20);
	mclose(&m, false);
	for (int round = 0; round < 9; round++) {
		struct dump d;
		bool crash = round % 3 != 2, cut = round % 3 == 1;

		mmount(&m);
		for (int op = 0; op < 4000; op++) {
			mop(&m, 4u << 20);
			if (op % 700 == 0)
				assert_int_equal(slab_sync(m.st), 0);
		}
		assert_int_equal(slab_sync(m.st), 0);
		slab_counters_get(m.st, &c);
		gc_runs += c.gc_runs;
		memset(touched, 0, sizeof(touched));
		if (cut) {
			/* unsynced overwrites, then the power fails */
			memcpy(sv, m.ver, sizeof(sv));
			munsynced(&m, 300, touched);
			slab_fence(m.st);
			assert_int_equal(zns_fault_power_cut(m.dev, -1, (unsigned)round),
			                 0);
		}
		mclose(&m, crash);
		check_equal(m.img, &d);
		print_message(
		    "round %d (%s): %zu objects, checkpoint %s, %llu bytes "
		    "replayed, gc runs %llu\n",
		    round, crash ? "crash" : "clean", d.n, d.ck_loaded ? "used" : "none",
		    (unsigned long long)d.replayed, (unsigned long long)c.gc_runs);
		dump_free(&d);
		mmount(&m);
		if (cut)
			mresync(&m, m.st, sv, touched);
		mverify(&m, m.st);
		mclose(&m, false);
	}
	assert_true(gc_runs > 0);
	unlink(m.img);
}

/* Byte offset of (zone, off) in the image file. */
static off_t img_off(const char *img, uint32_t zone, uint64_t off)
{
	struct zns_dev *dev;

	assert_int_equal(zns_open(img, 0, &dev), 0);
	const struct zns_geometry *g = zns_geometry(dev);
	off_t o = (off_t)(g->first_zone_off + (uint64_t)zone * g->zone_size + off);

	zns_close(dev);
	return o;
}

static void ckpt_ref(const char *img, struct slab_ckpt_ref *ref)
{
	struct zns_dev *dev;
	struct slab_sb_info sb;
	bool has = false;

	assert_int_equal(zns_open(img, 0, &dev), 0);
	assert_int_equal(slab_sb_read_ckpt(dev, &sb, ref, &has), 0);
	assert_true(has);
	zns_close(dev);
}

/* Read-only mount of IMG: 1 when it started from the checkpoint, 0 when
 * it ignored it (full scan), or the mount's error. */
static int ck_loaded(const char *img)
{
	struct slab_mount_opts o = {.read_only = true};
	struct zns_dev *dev;
	struct slab_store *st;
	int ret;

	assert_int_equal(zns_open(img, 0, &dev), 0);
	ret = slab_mount(dev, &o, NULL, NULL, &st);
	if (ret == 0) {
		ret = st->ck_loaded ? 1 : 0;
		assert_int_equal(slab_unmount(st), 0);
	}
	zns_close(dev);
	return ret;
}

/* The header block of a checkpoint zone is verified whole: one flipped bit
 * in its fields, checksum or reserved (zero) bytes means the checkpoint is
 * not used (mount ignores it, or refuses the image as damaged); with the
 * byte restored the same image loads it again. */
static void test_corrupt_zone_header(void **state)
{
	static const uint64_t offs[] = {8, 17, 24, 31, 32, 100, SLAB_PAGE_SIZE - 1};
	struct model m;
	struct slab_ckpt_ref *ref = malloc(sizeof(*ref));
	uint8_t b;

	mstart(&m, 48, 1 << 20, 5);
	for (int op = 0; op < 2000; op++)
		mop(&m, 8u << 20);
	mclose(&m, false);
	ckpt_ref(m.img, ref);
	int fd = open(m.img, O_RDWR);

	assert_true(fd >= 0);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		off_t at = img_off(m.img, ref->zones[0], offs[i]);

		assert_int_equal(pread(fd, &b, 1, at), 1);
		b ^= 0x01;
		assert_int_equal(pwrite(fd, &b, 1, at), 1);
		int r = ck_loaded(m.img);

		assert_true(r == 0 || r == -EUCLEAN);
		b ^= 0x01;
		assert_int_equal(pwrite(fd, &b, 1, at), 1);
		assert_int_equal(ck_loaded(m.img), 1);
	}
	close(fd);
	free(ref);
	unlink(m.img);
}

/* Set byte OFF of the checkpoint image of IMG (referenced by REF0) to V,
 * then make the image checksum match again: a new superblock copy (next
 * sequence number) with REF0 and its csum recomputed, so that only the
 * byte's value is wrong.
 * With SB_AT != 0, byte SB_AT of that superblock block is set to SB_V as
 * well (checksum fixed). */
static void ck_poke(const char *img, const struct slab_ckpt_ref *ref0, uint64_t off,
                    uint8_t v, size_t sb_at, uint8_t sb_v)
{
	struct slab_ckpt_ref *ref = malloc(sizeof(*ref));
	uint8_t *blk = zns_buf_alloc(SLAB_SB_BLOCK), *ib;
	struct zns_dev *dev;
	struct slab_sb_info sb;
	struct zns_zone z[2];

	assert_non_null(ref);
	assert_non_null(blk);
	*ref = *ref0;
	assert_int_equal(zns_open(img, 0, &dev), 0);
	assert_int_equal(slab_sb_read(dev, &sb), 0);
	const struct zns_geometry *g = zns_geometry(dev);
	uint64_t piece = g->zone_capacity - SLAB_PAGE_SIZE;

	/* the image, zone by zone after each zone's header block */
	ib = malloc(ref->bytes);
	assert_non_null(ib);
	for (uint64_t at = 0; at < ref->bytes; at += piece) {
		uint64_t n = ref->bytes - at < piece ? ref->bytes - at : piece;
		uint32_t zone = ref->zones[at / piece];
		off_t o = (off_t)(g->first_zone_off + (uint64_t)zone * g->zone_size +
		                  SLAB_PAGE_SIZE);
		int fd = open(img, O_RDONLY);

		assert_int_equal(pread(fd, ib + at, n, o), (ssize_t)n);
		close(fd);
	}
	ib[off] = v;
	ref->csum = slab_hash64(ib, ref->bytes);
	uint32_t zone = ref->zones[off / piece];
	off_t o = (off_t)(g->first_zone_off + (uint64_t)zone * g->zone_size +
	                  SLAB_PAGE_SIZE + off % piece);
	int fd = open(img, O_RDWR);

	assert_int_equal(pwrite(fd, &v, 1, o), 1);
	close(fd);
	/* a new superblock copy, appended where slab_sb_write would */
	struct slab_sb_geom sg = {g->lba_size, g->nr_zones, g->zone_size,
	                          g->zone_capacity};

	sb.sequence++;
	slab_sb_encode_ckpt(blk, &sb, &sg, ref);
	if (sb_at) {
		blk[sb_at] = sb_v;
		memset(blk + SLAB_SB_CSUM_OFF, 0, 8);
		tslab_put64(blk + SLAB_SB_CSUM_OFF, slab_hash64(blk, SLAB_SB_BLOCK));
	}
	assert_int_equal(zns_zone_report(dev, 0, 2, z), 2);
	int sz = z[1].wp > 0 ? 1 : 0;

	assert_true(z[sz].wp + SLAB_SB_BLOCK <= z[sz].capacity);
	assert_int_equal(zns_zone_write(dev, (uint32_t)sz, z[sz].wp, blk, SLAB_SB_BLOCK),
	                 SLAB_SB_BLOCK);
	zns_close(dev);
	zns_buf_free(blk);
	free(ib);
	free(ref);
}

/* docs/format.md: bytes 56..63 of the checkpoint image header are zero, and
 * the superblock block's bytes after the reference's zone list are zero.
 * A non-zero byte there (checksums matching) makes mount ignore the
 * checkpoint (full scan); the same image with the byte zero loads it. */
static void test_reserved_bytes(void **state)
{
	struct model m;
	struct slab_ckpt_ref *ref = malloc(sizeof(*ref));

	mstart(&m, 48, 1 << 20, 7);
	for (int op = 0; op < 2000; op++)
		mop(&m, 8u << 20);
	mclose(&m, false);
	ckpt_ref(m.img, ref);
	size_t tail = SLAB_CKPT_REF_OFF + 32 + 4 * (size_t)ref->nzones;

	assert_int_equal(ck_loaded(m.img), 1);
	for (int i = 56; i < 64; i += 7) {
		ck_poke(m.img, ref, (uint64_t)i, 0x01, 0, 0);
		assert_int_equal(ck_loaded(m.img), 0);
		ck_poke(m.img, ref, (uint64_t)i, 0, 0, 0);
		assert_int_equal(ck_loaded(m.img), 1);
	}
	const size_t sb_offs[] = {tail, SLAB_SB_BLOCK - 1};

	for (size_t i = 0; i < 2; i++) {
		ck_poke(m.img, ref, 56, 0, sb_offs[i], 0x80);
		assert_int_equal(ck_loaded(m.img), 0);
		ck_poke(m.img, ref, 56, 0, 0, 0);
		assert_int_equal(ck_loaded(m.img), 1);
	}
	mmount(&m);
	mverify(&m, m.st);
	mclose(&m, false);
	free(ref);
	unlink(m.img);
}

/* A corrupt checkpoint is ignored: full scan, nothing lost, then forgotten. */
static void test_corrupt(void **state)
{
	struct model m;
	struct slab_ckpt_ref *ref = malloc(sizeof(*ref));
	struct dump d;
	uint8_t b;

	mstart(&m, 48, 1 << 20, 3);
	for (int op = 0; op < 5000; op++)
		mop(&m, 8u << 20);
	mclose(&m, false);
	ckpt_ref(m.img, ref);
	/* flip one byte in the middle of the image */
	int fd = open(m.img, O_RDWR);
	off_t at =
	    img_off(m.img, ref->zones[0], SLAB_PAGE_SIZE + ref->bytes / 2 % (1 << 19));

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x20;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);
	dump_mount(m.img, false, &d);
	assert_false(d.ck_loaded);
	dump_free(&d);
	mmount(&m);
	assert_false(m.st->ck_loaded);
	assert_null(m.st->ck); /* the reference is gone */
	mverify(&m, m.st);
	mclose(&m, false);
	assert_true(has_ckpt(m.img)); /* a new one */
	/* a checkpoint whose zone was reset (does not match the device) */
	ckpt_ref(m.img, ref);
	assert_int_equal(zns_open(m.img, 0, &m.dev), 0);
	assert_int_equal(zns_zone_reset(m.dev, ref->zones[ref->nzones - 1]), 0);
	zns_close(m.dev);
	mmount(&m);
	assert_false(m.st->ck_loaded);
	mverify(&m, m.st);
	for (int op = 0; op < 2000; op++)
		mop(&m, 8u << 20);
	mclose(&m, false);
	check_equal(m.img, &d);
	assert_true(d.ck_loaded);
	dump_free(&d);
	free(ref);
	unlink(m.img);
}

/*
 * Issue 11, defect 2: a record that fails its checks when the checkpoint
 * builder reads it back ends the build with -EUCLEAN (it was overwritten by
 * the next page's result and the image counted entries it did not hold);
 * the superblock keeps referencing the previous checkpoint.
 */
static void test_bad_record_no_checkpoint(void **state)
{
	struct model m;
	struct slab_ckpt_ref *ref = malloc(sizeof(*ref));
	struct slab_zscan zs;
	struct slab_page_hdr ph;
	const uint8_t *pg;
	uint64_t poff, best = 0, seq;
	uint32_t z = 0, nbad = 0;
	int fd, r;

	(void)state;
	assert_non_null(ref);
	mstart(&m, 48, 1 << 20, 4);
	for (int op = 0; op < 3000; op++)
		mop(&m, 8u << 20);
	mclose(&m, false);
	ckpt_ref(m.img, ref);
	seq = ref->seq;
	mmount(&m);
	assert_true(m.st->ck_loaded);
	for (uint32_t i = m.st->first_data; i < m.st->nzones; i++)
		if (m.st->zones[i].state != ZS_META &&
		    atomic_load(&m.st->zones[i].live) > best) {
			best = atomic_load(&m.st->zones[i].live);
			z = i;
		}
	assert_true(best > 0);
	/* every record of that zone gets a bad checksum */
	fd = open(m.img, O_RDWR);
	assert_true(fd >= 0);
	off_t zbase = img_off(m.img, z, 0);

	assert_int_equal(slab_zscan_init(&zs, m.dev, z, m.st->zones[z].wp), 0);
	while ((r = slab_zscan_next(&zs, &pg, &ph, &poff)) > 0) {
		for (uint32_t off = SLAB_PAGE_HDR; off < ph.used;) {
			struct slab_rec rec;
			uint8_t b = pg[off] ^ 0x01;

			if (slab_rec_decode(pg + off, ph.used - off, ph.def_uid,
			                    ph.def_gid, &rec))
				break;
			assert_int_equal(pwrite(fd, &b, 1, zbase + (off_t)(poff + off)),
			                 1);
			nbad++;
			off += rec.len;
		}
	}
	slab_zscan_fini(&zs);
	close(fd);
	assert_true(nbad > 0);
	assert_int_equal(slab_ckpt_write(m.st, false), -EUCLEAN);
	mclose(&m, true);
	ckpt_ref(m.img, ref);
	assert_int_equal(ref->seq, seq);
	print_message("bad records in zone %u: %u; no checkpoint written\n", z, nbad);
	free(ref);
	unlink(m.img);
}

/*
 * The k-th device write of an unmount fails (k walks through the final page
 * writes, the checkpoint's zone headers and payload, and the superblock),
 * then the power is cut keeping a random part of what was not flushed.
 * Everything synced before the unmount is there afterwards.
 */
static void test_power_cut_during_checkpoint(void **state)
{
	struct model m;
	int with_new = 0, without = 0;

	mstart(&m, 40, 256 << 10, 4);
	for (int op = 0; op < 3000; op++)
		mop(&m, 3u << 20);
	mclose(&m, false);
	for (unsigned k = 1; k <= 24; k++) {
		struct slab_ckpt_ref before, after;
		struct dump d;

		ckpt_ref(m.img, &before);
		mmount(&m);
		for (int op = 0; op < 300; op++)
			mop(&m, 3u << 20);
		assert_int_equal(slab_sync(m.st), 0);
		assert_int_equal(zns_fault_fail_write(m.dev, k), 0);
		slab_unmount(m.st);
		assert_int_equal(zns_fault_power_cut(m.dev, -1, k * 31u), 0);
		zns_close(m.dev);
		if (has_ckpt(m.img)) {
			ckpt_ref(m.img, &after);
			if (after.seq != before.seq)
				with_new++;
			else
				without++;
		}
		check_equal(m.img, &d);
		dump_free(&d);
		mmount(&m);
		mverify(&m, m.st);
		mclose(&m, false);
	}
	print_message(
	    "failed write + power cut at unmount: %d new checkpoints, %d kept the "
	    "old one\n",
	    with_new, without);
	assert_true(without > 0);
	unlink(m.img);
}

/* A worker that puts, frees, syncs and drops until the power is cut. */
struct conc {
	struct model *m;
	atomic_bool cut;
	unsigned seed;
	uint64_t ops;
};

/* Live bytes the worker keeps (TSLAB_CKPT_LIVE_MAX: a fuller device). */
static uint64_t conc_live_max = 4u << 20;

static void conc_op(struct model *m, unsigned *rs)
{
	int i = (int)(rand_r(rs) % N), x = (int)(rand_r(rs) % 1000);

	if (x < 3) {
		int k = 1 + (int)(rand_r(rs) % (NE - 1));

		if (slab_epoch_drop(m->st, m->ep[k]) == 0) {
			for (int j = 0; j < N; j++)
				if (m->h[j] && m->epi[j] == k)
					m->h[j] = 0;
			slab_epoch_create(m->st, &m->ep[k]);
		}
	} else if (x < 30) {
		slab_sync(m->st);
	} else if (m->h[i] && (x < 300 || m->live > conc_live_max)) {
		slab_obj_free(m->st, m->h[i]);
		m->live -= m->ver[i] ? obj_len((uint32_t)i, m->ver[i]) : 0;
		m->h[i] = 0;
		m->ver[i] = 0;
	} else if (m->live > conc_live_max) {
		return;
	} else if (m->h[i] ||
	           slab_obj_alloc(m->st, m->ep[m->epi[i] = (int)(rand_r(rs) % NE)],
	                          &m->h[i]) == 0) {
		mput(m, i);
	}
}

static void *conc_worker(void *arg)
{
	struct conc *c = arg;
	unsigned rs = c->seed;

	while (!atomic_load(&c->cut)) {
		conc_op(c->m, &rs);
		c->ops++;
	}
	return NULL;
}

/*
 * Checkpoints taken by the background thread while a worker runs, then a
 * power cut at a random moment (possibly inside a checkpoint): the mount
 * from the newest checkpoint equals the full scan.
 */
static void test_concurrent(void **state)
{
	struct model m;
	struct slab_ckpt_ref ref;
	struct conc c;
	pthread_t t;
	struct dump d;

	mstart(&m, 64, 256 << 10, 5);
	for (int op = 0; op < 3000; op++)
		mop(&m, 3u << 20);
	mclose(&m, false);
	const char *env = getenv("TSLAB_CKPT_CUTS");
	unsigned cuts = env ? (unsigned)atoi(env) : 4;

	if (getenv("TSLAB_CKPT_LIVE_MAX"))
		conc_live_max = strtoull(getenv("TSLAB_CKPT_LIVE_MAX"), NULL, 0);

	for (unsigned seed = 1; seed <= cuts; seed++) {
		long ms = 300 + (long)(tu_mix(seed) % 900);

		if (getenv("TSLAB_CKPT_CUT_EARLY") && seed % 3 == 0)
			ms = (long)(tu_mix(seed) % 20); /* right after the mount */
		struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

		ckpt_ref(m.img, &ref);
		uint64_t before = ref.seq;

		mmount(&m);
		c = (struct conc){.m = &m, .seed = seed};
		assert_int_equal(pthread_create(&t, NULL, conc_worker, &c), 0);
		nanosleep(&ts, NULL);
		atomic_store(&c.cut, true);
		slab_fence(m.st);
		assert_int_equal(zns_fault_power_cut(m.dev, -1, seed), 0);
		pthread_join(t, NULL);
		mclose(&m, true);
		check_equal(m.img, &d);
		ckpt_ref(m.img, &ref);
		print_message(
		    "cut after %llu ops: %llu checkpoints while running, %zu objects, "
		    "%llu bytes replayed\n",
		    (unsigned long long)c.ops, (unsigned long long)(ref.seq - before),
		    d.n, (unsigned long long)d.replayed);
		if (!d.ck_loaded)
			print_message("checkpoint %llu not used: %d\n",
			              (unsigned long long)ref.seq, d.ck_error);
		assert_true(d.ck_loaded);
		dump_free(&d);
		/* the model forgets what the cut took: continue from the device */
		mmount(&m);
		m.live = 0;
		for (int i = 0; i < N; i++)
			if (m.h[i] && slab_obj_check(m.st, m.h[i]))
				m.h[i] = 0;
		for (int k = 1; k < NE; k++) {
			struct slab_epoch_stats es;

			if (slab_epoch_stats(m.st, m.ep[k], &es))
				assert_int_equal(slab_epoch_create(m.st, &m.ep[k]), 0);
		}
		for (int i = 0; i < N; i++) {
			static uint8_t buf[MAXL + 16];
			uint32_t v;

			if (!m.h[i])
				continue;
			ssize_t n = slab_obj_read(m.st, m.h[i], 0, buf, sizeof(buf));

			if (n < 8) {
				/* allocated, never put before the cut */
				assert_int_equal(n, 0);
				slab_obj_free(m.st, m.h[i]);
				m.h[i] = 0;
				m.ver[i] = 0;
				continue;
			}
			memcpy(&v, buf + 4, 4);
			assert_int_equal(n, (ssize_t)obj_len((uint32_t)i, v));
			m.ver[i] = v;
			m.live += (uint64_t)n;
		}
		mclose(&m, false);
	}
	unlink(m.img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_clean_remount),
	    cmocka_unit_test(test_roll_forward),
	    cmocka_unit_test(test_corrupt),
	    cmocka_unit_test(test_corrupt_zone_header),
	    cmocka_unit_test(test_reserved_bytes),
	    cmocka_unit_test(test_bad_record_no_checkpoint),
	    cmocka_unit_test(test_power_cut_during_checkpoint),
	    cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
