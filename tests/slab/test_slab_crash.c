// SPDX-License-Identifier: MIT
/*
 * Power loss: a worker thread puts, overwrites, frees, syncs and drops
 * epochs on a small emulated device (so that GC runs) while the main thread
 * cuts the power (zns_fault_power_cut, random surviving prefix) at a random
 * moment. After remount, everything acknowledged by a completed sync (or
 * drop) before the cut must be there and intact; anything else may be lost
 * or present, but never torn.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>
#include <cmocka.h>

#include "slab/slab_int.h"
#include "slab_test_util.h"

enum { N = 4000, NE = 6, MAXL = 6000 };

struct model {
	struct slab_store *st;
	atomic_bool cut;
	bool failed;
	unsigned seed;
	uint32_t ep[NE + 512];
	int nep;
	bool drop_started[NE + 512], drop_acked[NE + 512];
	int cur[NE]; /* live epoch indexes */
	slab_handle_t h[N];
	int epi[N];
	uint32_t started[N], acked[N], durable[N], snap[N];
	bool free_started[N], freed[N], dfreed[N], sfreed[N];
	uint64_t live_bytes;
};

static uint8_t pbuf[MAXL];

static int do_put(struct model *m, int i)
{
	uint32_t v = m->started[i] + 1, len = tu_len((uint32_t)i, v, MAXL);
	struct slab_obj o = {.kind = 2,
	                     .attr = {.mode = 0100600, .nlink = 1, .size = len},
	                     .name = "f",
	                     .name_len = 1,
	                     .data = pbuf,
	                     .data_len = len};

	tu_fill(pbuf, len, (uint32_t)i, v);
	m->started[i] = v;
	int r = slab_obj_put(m->st, m->h[i], &o);

	if (!r) {
		if (m->acked[i])
			m->live_bytes -= tu_len((uint32_t)i, m->acked[i], MAXL);
		m->acked[i] = v;
		m->live_bytes += len;
	}
	return r;
}

static int do_free(struct model *m, int i)
{
	m->free_started[i] = true;
	int r = slab_obj_free(m->st, m->h[i]);

	if (!r) {
		m->freed[i] = true;
		m->live_bytes -= tu_len((uint32_t)i, m->acked[i], MAXL);
	}
	return r;
}

static int do_sync(struct model *m)
{
	memcpy(m->snap, m->acked, sizeof(m->snap));
	memcpy(m->sfreed, m->freed, sizeof(m->sfreed));
	int r = slab_sync(m->st);

	/* Counts only if the cut cannot have started before the sync returned. */
	if (!r && !atomic_load(&m->cut)) {
		memcpy(m->durable, m->snap, sizeof(m->durable));
		memcpy(m->dfreed, m->sfreed, sizeof(m->dfreed));
	}
	return r;
}

static int do_drop(struct model *m, int slot)
{
	int k = m->cur[slot];

	if (m->nep >= NE + 512)
		return 0;
	m->drop_started[k] = true;
	int r = slab_epoch_drop(m->st, m->ep[k]);

	if (r)
		return r;
	if (!atomic_load(&m->cut))
		m->drop_acked[k] = true;
	for (int i = 0; i < N; i++)
		if (m->h[i] && m->epi[i] == k && m->acked[i] && !m->freed[i])
			m->live_bytes -= tu_len((uint32_t)i, m->acked[i], MAXL);
	r = slab_epoch_create(m->st, &m->ep[m->nep]);
	if (!r)
		m->cur[slot] = m->nep++;
	return r;
}

static int worker_op(struct model *m, unsigned *rs)
{
	int i = (int)(rand_r(rs) % N), x = (int)(rand_r(rs) % 1000);
	bool dead =
	    m->h[i] && (m->freed[i] || m->free_started[i] || m->drop_started[m->epi[i]]);

	if (x < 5)
		return do_drop(m, 1 + (int)(rand_r(rs) % (NE - 1)));
	if (x < 40)
		return do_sync(m);
	if (dead)
		return 0;
	if (m->h[i] && m->acked[i] && (x < 250 || m->live_bytes > 2500000))
		return do_free(m, i);
	if (m->live_bytes > 2500000)
		return 0;
	if (!m->h[i]) {
		int k = m->cur[rand_r(rs) % NE];
		int r = slab_obj_alloc(m->st, m->ep[k], &m->h[i]);

		if (r)
			return r;
		m->epi[i] = k;
	}
	return do_put(m, i);
}

static void *worker(void *arg)
{
	struct model *m = arg;
	unsigned rs = m->seed;

	while (!atomic_load(&m->cut)) {
		int r = worker_op(m, &rs);

		if (r && !atomic_load(&m->cut)) {
			print_message("worker: error %d before the cut\n", r);
			m->failed = true;
			break;
		}
	}
	return NULL;
}

static void verify(struct model *m, struct slab_store *st)
{
	static uint8_t buf[MAXL + 16];
	int kept = 0, lost = 0;

	for (int i = 0; i < N; i++) {
		if (!m->h[i])
			continue;
		int k = m->epi[i];
		ssize_t n = slab_obj_read(st, m->h[i], 0, buf, sizeof(buf));
		uint32_t v = 0;

		if (n != -ESTALE) {
			assert_true(n >= 8);
			assert_int_equal(
			    tu_check(buf, (uint32_t)n, (uint32_t)i, MAXL, &v), 0);
			assert_true(v >= 1 && v <= m->started[i]);
		}
		if (m->drop_acked[k] || m->dfreed[i]) {
			assert_int_equal(n, -ESTALE);
		} else if (m->durable[i]) {
			if (n == -ESTALE)
				assert_true(m->free_started[i] || m->drop_started[k]);
			else
				assert_true(v >= m->durable[i]);
		}
		if (n != -ESTALE && v == m->acked[i])
			kept++;
		else if (n == -ESTALE && !m->freed[i])
			lost++;
	}
	for (int k = 0; k < m->nep; k++) {
		struct slab_epoch_stats es;

		if (m->drop_acked[k])
			assert_int_equal(slab_epoch_stats(st, m->ep[k], &es), -ESTALE);
	}
	print_message("  objects with newest version kept %d, unsynced lost %d\n", kept,
	              lost);
}

static void run_one(unsigned seed)
{
	static struct model m;
	char img[256];
	struct zns_dev *dev;
	struct slab_mount_opts mo = {.commit_ms = 30};
	struct slab_counters c;
	pthread_t t;
	unsigned rs = seed;

	memset(&m, 0, sizeof(m));
	m.seed = seed;
	assert_int_equal(tu_mkimg(img, sizeof(img), 28, 256 << 10, 8), 0);
	assert_int_equal(zns_open(img, 0, &dev), 0);
	assert_int_equal(slab_format(dev, NULL), 0);
	assert_int_equal(slab_mount(dev, &mo, NULL, NULL, &m.st), 0);
	m.cur[0] = 0;
	m.ep[0] = SLAB_EPOCH_ROOT;
	m.nep = 1;
	for (int s = 1; s < NE; s++) {
		assert_int_equal(slab_epoch_create(m.st, &m.ep[m.nep]), 0);
		m.cur[s] = m.nep++;
	}
	assert_int_equal(pthread_create(&t, NULL, worker, &m), 0);
	struct timespec ts = {0, (long)(50 + rand_r(&rs) % 700) * 1000000L};

	nanosleep(&ts, NULL);
	/* The process dies at this instant: no device call completes after it. */
	atomic_store(&m.cut, true);
	slab_fence(m.st);
	assert_int_equal(zns_fault_power_cut(dev, -1, seed), 0);
	pthread_join(t, NULL);
	assert_false(m.failed);
	slab_counters_get(m.st, &c);
	print_message("seed %u: gc runs %llu, resets %llu, journal writes %llu\n", seed,
	              (unsigned long long)c.gc_runs, (unsigned long long)c.zone_resets,
	              (unsigned long long)c.journal_writes);
	slab_unmount(m.st);
	zns_close(dev);

	struct slab_store *st;

	assert_int_equal(zns_open(img, 0, &dev), 0);
	assert_int_equal(slab_mount(dev, &mo, NULL, NULL, &st), 0);
	verify(&m, st);
	/* The recovered store keeps working and survives another remount. */
	slab_handle_t h;

	assert_int_equal(slab_obj_alloc(st, SLAB_EPOCH_ROOT, &h), 0);
	m.st = st;
	int i = 0;

	while (i < N && (m.h[i] || true)) {
		if (!m.h[i] || m.dfreed[i] || m.drop_acked[m.epi[i]])
			break;
		i++;
	}
	if (i < N) {
		m.h[i] = h;
		m.epi[i] = 0;
		m.started[i] = 0;
		assert_int_equal(do_put(&m, i), 0);
		assert_int_equal(slab_sync(st), 0);
		m.durable[i] = 1;
		m.dfreed[i] = m.free_started[i] = false;
	}
	assert_int_equal(slab_unmount(st), 0);
	zns_close(dev);
	assert_int_equal(zns_open(img, 0, &dev), 0);
	assert_int_equal(slab_mount(dev, &mo, NULL, NULL, &st), 0);
	if (i < N) {
		static uint8_t buf[MAXL];
		uint32_t v;
		ssize_t n = slab_obj_read(st, h, 0, buf, sizeof(buf));

		assert_true(n >= 8);
		assert_int_equal(tu_check(buf, (uint32_t)n, (uint32_t)i, MAXL, &v), 0);
	}
	assert_int_equal(slab_unmount(st), 0);
	zns_close(dev);
	unlink(img);
}

static void test_power_cut(void **state)
{
	const char *env = getenv("TSLAB_CRASH_ITERS");
	unsigned iters = env ? (unsigned)atoi(env) : 6;

	for (unsigned s = 1; s <= iters; s++)
		run_one(s * 7919u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_power_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
