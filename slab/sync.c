// SPDX-License-Identifier: MIT
/*
 * Durability: group commit, the shared journal, zone resets, drop-record
 * retirement, and the background thread (commit interval, idle zone
 * release, GC).
 *
 * A sync (slab_do_sync) runs alone (st->sync_running); the journal state
 * (st->jzone, st->jwp, st->jbuf) belongs to the running sync. It
 *   1. snapshots the zones whose live bytes are 0 (their records were all
 *      superseded by records put before this sync started),
 *   2. copies the not yet journaled records of every dirty epoch's open page
 *      into journal pages (records of any epoch; the handle names the epoch)
 *      and, after a flush if slab pages were written since the last one (a
 *      journaled record must never be durable without the records it
 *      follows), appends them to the journal zone; when the journal zone is full it
 *      instead writes every open page that holds journaled records to its
 *      slab zone and resets the journal zones (a journal cycle),
 *   3. flushes the device, and only then
 *   4. resets the snapshotted zones, so a crash can never lose both an old
 *      version and the new one that superseded it.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "slab/slab_int.h"

/* ---- journal ------------------------------------------------------------- */

struct jbuild {
	uint32_t lba;
	size_t len;    /* bytes of closed pages */
	uint32_t used; /* bytes of the page being filled (0: none) */
	uint16_t nrec;
	uint32_t duid, dgid;
};

static int jbuf_room(struct slab_store *st, size_t need)
{
	if (need <= st->jbuf_cap)
		return 0;
	size_t ncap = st->jbuf_cap ? st->jbuf_cap * 2 : 64 * 1024;

	while (ncap < need)
		ncap *= 2;
	uint8_t *n = zns_buf_alloc(ncap);

	if (!n)
		return -ENOMEM;
	if (st->jbuf)
		memcpy(n, st->jbuf, st->jbuf_cap);
	zns_buf_free(st->jbuf);
	st->jbuf = n;
	st->jbuf_cap = ncap;
	return 0;
}

static void jpage_close(struct slab_store *st, struct jbuild *jb)
{
	if (!jb->used)
		return;
	uint8_t *p = st->jbuf + jb->len;
	uint32_t plen = (jb->used + jb->lba - 1) / jb->lba * jb->lba;
	struct slab_page_hdr h = {.epoch = SLAB_EPOCH_JOURNAL,
	                          .used = (uint16_t)jb->used,
	                          .nrec = jb->nrec,
	                          .seq = atomic_fetch_add(&st->page_seq, 1),
	                          .def_uid = jb->duid,
	                          .def_gid = jb->dgid};

	memset(p + jb->used, 0, plen - jb->used);
	slab_page_hdr_encode(p, &h);
	jb->len += plen;
	jb->used = 0;
}

/* Copy records [jmark, used) of E's open page into the journal buffer. */
static int journal_collect(struct slab_store *st, struct slab_epoch *e, struct jbuild *jb)
{
	struct slab_dpage *pg = &e->page;
	int ret;

	for (uint32_t off = pg->jmark; off < pg->used;) {
		const uint8_t *rec = pg->buf + off;
		uint32_t len = slab_rec_len_at(rec);

		if (jb->used && jb->used + len + 8 > SLAB_PAGE_SIZE)
			jpage_close(st, jb);
		ret = jbuf_room(st, jb->len + SLAB_PAGE_SIZE);
		if (ret)
			return ret;
		uint8_t *p = st->jbuf + jb->len;

		if (!jb->used) {
			memset(p, 0, SLAB_PAGE_HDR);
			jb->used = SLAB_PAGE_HDR;
			jb->nrec = 0;
			jb->duid = pg->def_uid;
			jb->dgid = pg->def_gid;
		}
		ret = slab_rec_copy(p + jb->used, SLAB_PAGE_SIZE - jb->used, rec, len,
		                    pg->def_uid, pg->def_gid, jb->duid, jb->dgid);
		if (ret < 0)
			return ret;
		jb->used += (uint32_t)ret;
		jb->nrec++;
		off += len;
	}
	pg->jmark = pg->used;
	e->journaled = true;
	e->jlast = atomic_load(&st->jcycle);
	return 0;
}

/* Write every open page that holds journaled records, then reset the journal. */
int slab_journal_cycle(struct slab_store *st, bool all_pages)
{
	int ret = 0;

	for (uint32_t s = 0; s < st->neslots; s++) {
		struct slab_epoch *e = st->etab[s];

		pthread_mutex_lock(&e->lock);
		if (e->state == EPOCH_OPEN && e->page.nrec &&
		    (all_pages || e->page.jmark > SLAB_PAGE_HDR))
			ret = slab_page_write(st, e, true);
		pthread_mutex_unlock(&e->lock);
		if (ret)
			return ret;
	}
	ret = slab_dev_flush(st);
	if (ret)
		return ret;
	for (uint32_t j = 0; j < st->nr_journal; j++) {
		if (!st->jwp[j])
			continue;
		ret = slab_dev_reset(st, SLAB_JOURNAL_FIRST + j);
		if (ret)
			return ret;
		st->jwp[j] = 0;
		atomic_fetch_add(&st->c_resets, 1);
	}
	st->jzone = (st->jzone + 1) % st->nr_journal;
	atomic_fetch_add(&st->jcycle, 1);
	return 0;
}

static int journal_write(struct slab_store *st, struct jbuild *jb)
{
	uint32_t j = st->jzone;
	ssize_t w;

	jpage_close(st, jb);
	if (!jb->len)
		return 0;
	if (st->jwp[j] + jb->len > st->geo.zone_capacity)
		return slab_journal_cycle(st, false);
	/* Pages written before this journal write must be durable first: the
	 * zones are written independently, and a device may keep the journal
	 * page and lose a slab page written before it. Pages of the epochs
	 * collected here were written under their epoch's lock, before
	 * journal_collect() took it. */
	if (atomic_exchange(&st->pages_unflushed, false)) {
		int ret = slab_dev_flush(st);

		if (ret) {
			atomic_store(&st->pages_unflushed, true);
			return ret;
		}
	}
	w = slab_dev_write(st, SLAB_JOURNAL_FIRST + j, st->jwp[j], st->jbuf, jb->len);
	if (w != (ssize_t)jb->len) {
		/* The journal zone is unusable: put everything in slab pages. */
		struct zns_zone z;

		if (slab_dev_report(st, SLAB_JOURNAL_FIRST + j, 1, &z) == 1)
			st->jwp[j] = z.wp ? z.wp : st->jwp[j];
		st->jwp[j] = st->jwp[j] ? st->jwp[j] : 1;
		return slab_journal_cycle(st, false);
	}
	st->jwp[j] += jb->len;
	atomic_fetch_add(&st->c_jwrites, 1);
	atomic_fetch_add(&st->c_dev, jb->len);
	return 0;
}

/* Journal the open records of every dirty epoch. */
static int journal_dirty(struct slab_store *st)
{
	struct jbuild jb = {.lba = st->geo.lba_size};
	uint32_t *list, n;
	int ret = 0;

	pthread_mutex_lock(&st->dlock);
	list = st->dirty;
	n = st->ndirty;
	st->dirty = NULL;
	st->ndirty = st->dirty_cap = 0;
	pthread_mutex_unlock(&st->dlock);
	for (uint32_t i = 0; i < n && !ret; i++) {
		struct slab_epoch *e = st->etab[list[i]];

		pthread_mutex_lock(&e->lock);
		e->dirty = false;
		if (e->state == EPOCH_OPEN && e->page.used > e->page.jmark)
			ret = journal_collect(st, e, &jb);
		pthread_mutex_unlock(&e->lock);
	}
	free(list);
	if (ret)
		return ret;
	return journal_write(st, &jb);
}

/* ---- zone resets and drop retirement ------------------------------------ */

static uint32_t reset_candidates(struct slab_store *st, uint32_t *out)
{
	uint32_t n = 0;

	pthread_mutex_lock(&st->zlock);
	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		struct slab_zone *zn = &st->zones[z];

		if (atomic_load(&zn->live) || zn->ro)
			continue;
		if (zn->state == ZS_OPEN && zn->writers == 0 && zn->wp > 0) {
			zn->state = ZS_FULL;
			zn->dev_open = true;
		}
		if (zn->state == ZS_FULL)
			out[n++] = z;
	}
	pthread_mutex_unlock(&st->zlock);
	return n;
}

static bool drop_zones_gone(struct slab_store *st, const struct slab_drop *d)
{
	bool gone = true;

	pthread_mutex_lock(&st->zlock);
	for (uint32_t i = 0; i < d->ez_n && gone; i++)
		if (st->zones[d->ez[i].zone].gen == d->ez[i].zgen)
			gone = false;
	pthread_mutex_unlock(&st->zlock);
	return gone;
}

static void epoch_slot_release(struct slab_store *st, uint32_t epoch)
{
	struct slab_epoch *e = st->etab[slab_eslot(epoch)];

	pthread_mutex_lock(&e->lock);
	if (e->state != EPOCH_DROPPED || e->gen != slab_egen(epoch)) {
		pthread_mutex_unlock(&e->lock);
		return;
	}
	e->gen++;
	e->state = EPOCH_FREE;
	pthread_mutex_unlock(&e->lock);
	pthread_mutex_lock(&st->elock);
	e->next_efree = 0;
	if (st->efree_tail)
		st->etab[st->efree_tail]->next_efree = e->eslot;
	else
		st->efree_head = e->eslot;
	st->efree_tail = e->eslot;
	pthread_mutex_unlock(&st->elock);
}

void slab_drops_retire(struct slab_store *st)
{
	struct slab_epoch *root = st->etab[0];

	pthread_mutex_lock(&root->lock);
	for (uint32_t i = 0; i < st->ndrops; i++) {
		struct slab_drop *d = &st->drops[i];

		if (!d->ready || (d->jwait && atomic_load(&st->jcycle) <= d->jcycle) ||
		    !drop_zones_gone(st, d))
			continue;
		uint32_t epoch = d->epoch;

		slab_loc_kill(st, root, d->loc, d->len);
		free(d->ez);
		st->drops[i] = st->drops[--st->ndrops];
		i--;
		epoch_slot_release(st, epoch);
	}
	pthread_mutex_unlock(&root->lock);
}

int slab_do_sync(struct slab_store *st, bool flush_pages)
{
	uint32_t *cand = malloc(st->nzones * sizeof(*cand)), n;
	int ret;

	if (!cand)
		return -ENOMEM;
	n = reset_candidates(st, cand);
	if (flush_pages) {
		ret = slab_journal_cycle(st, true);
		pthread_mutex_lock(&st->dlock);
		free(st->dirty);
		st->dirty = NULL;
		st->ndirty = st->dirty_cap = 0;
		pthread_mutex_unlock(&st->dlock);
		for (uint32_t s = 0; s < st->neslots; s++) {
			pthread_mutex_lock(&st->etab[s]->lock);
			st->etab[s]->dirty = false;
			pthread_mutex_unlock(&st->etab[s]->lock);
		}
	} else {
		ret = journal_dirty(st);
		/* As when the journal is full: what it holds goes to slab pages. */
		if (!ret && atomic_exchange(&st->jcycle_wanted, false))
			ret = slab_journal_cycle(st, false);
	}
	if (!ret)
		ret = slab_dev_flush(st);
	if (ret) {
		free(cand);
		return ret;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (st->check_resets && slab_zone_still_named(st, cand[i]))
			continue;
		int r = slab_zone_reset(st, cand[i]);

		if (r && r != -EBUSY && !ret)
			ret = r;
	}
	free(cand);
	slab_drops_retire(st);
	pthread_mutex_lock(&st->bglock);
	pthread_cond_broadcast(&st->spacecond);
	pthread_mutex_unlock(&st->bglock);
	return ret;
}

/*
 * Group commit. A caller waits for a sync that starts after its call;
 * whoever finds none running leads the next one for everybody waiting.
 *
 * Gather. Callers that fsync in a loop come back a little after their sync
 * ends (the rest of their request: close, create, write), so without help
 * the first to return starts the next sync alone and the others form the
 * one after: batches of 1, N-1, 1, N-1... and two device flushes where one
 * would do. So the leader first waits, on slock, until as many callers are
 * waiting as the last batch held, or a window passes: the mean time of a
 * sync, clamped to [SYNC_GATHER_MIN_NS, SYNC_GATHER_MAX_NS]. A single
 * caller (last batch 1) never waits; when callers go away the expectation
 * drops to what came, so the window is lost at most once. Callers that
 * arrive during the gather belong to the leader's sync (sync_begun is
 * advanced only after it).
 */
#define SYNC_GATHER_MIN_NS 50000ull
#define SYNC_GATHER_MAX_NS 2000000ull

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* slock held, sync_running set by the caller (the leader). */
static void sync_gather(struct slab_store *st)
{
	uint64_t win = st->sync_avg_ns, end;
	struct timespec ts;

	if (st->sync_last_n <= 1 || st->sync_next_n >= st->sync_last_n)
		return;
	win = win < SYNC_GATHER_MIN_NS   ? SYNC_GATHER_MIN_NS
	      : win > SYNC_GATHER_MAX_NS ? SYNC_GATHER_MAX_NS
	                                 : win;
	end = now_ns(CLOCK_REALTIME) + win; /* scond waits on CLOCK_REALTIME */
	ts.tv_sec = (time_t)(end / 1000000000ull);
	ts.tv_nsec = (long)(end % 1000000000ull);
	st->sync_gathering = true;
	while (st->sync_next_n < st->sync_last_n &&
	       pthread_cond_timedwait(&st->scond, &st->slock, &ts) != ETIMEDOUT)
		;
	st->sync_gathering = false;
}

int slab_sync_all(struct slab_store *st, bool flush_pages)
{
	int ret;

	pthread_mutex_lock(&st->slock);
	uint64_t want = st->sync_begun + 1;

	st->sync_next_n++;
	if (st->sync_gathering && st->sync_next_n >= st->sync_last_n)
		pthread_cond_broadcast(&st->scond); /* the batch is complete */
	while (st->sync_done < want) {
		if (st->sync_running) {
			pthread_cond_wait(&st->scond, &st->slock);
			continue;
		}
		st->sync_running = true;
		if (!flush_pages)
			sync_gather(st);
		uint64_t mine = ++st->sync_begun;

		st->sync_last_n = st->sync_next_n;
		st->sync_next_n = 0;
		pthread_mutex_unlock(&st->slock);
		uint64_t t0 = now_ns(CLOCK_MONOTONIC);

		ret = slab_do_sync(st, flush_pages);
		uint64_t took = now_ns(CLOCK_MONOTONIC) - t0;

		pthread_mutex_lock(&st->slock);
		st->sync_avg_ns =
		    st->sync_avg_ns ? (st->sync_avg_ns * 7 + took) / 8 : took;
		st->sync_running = false;
		st->sync_done = mine;
		st->sync_err = ret;
		pthread_cond_broadcast(&st->scond);
	}
	ret = st->sync_err;
	pthread_mutex_unlock(&st->slock);
	return ret;
}

int slab_sync(struct slab_store *st)
{
	if (!st)
		return -EINVAL;
	if (st->ro)
		return 0;
	return slab_sync_all(st, false);
}

/* ---- background thread and throttling ----------------------------------- */

static void deadline_after(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool past(const struct timespec *ts)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > ts->tv_sec ||
	       (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

/* Epochs that wrote no page during the last interval give up their zone, so
 * that the next epoch needing one continues it. */
static void idle_release(struct slab_store *st)
{
	for (uint32_t s = 0; s < st->neslots; s++) {
		struct slab_epoch *e = st->etab[s];

		pthread_mutex_lock(&e->lock);
		if (e->state == EPOCH_OPEN && !e->wrote && e->cur_zone != SLAB_LOC_NONE)
			slab_zone_detach(st, e);
		e->wrote = false;
		pthread_mutex_unlock(&e->lock);
	}
}

/* GC that gave up tries again once a zone's worth of new dead space exists. */
static bool gc_needed(struct slab_store *st)
{
	if (st->ro)
		return false;
	if (st->gc_gave_up &&
	    slab_dead_bytes(st) >= st->gc_dead_mark + st->geo.zone_capacity)
		st->gc_gave_up = false;
	if (st->gc_gave_up)
		return false;
	return st->gc_wanted || atomic_load(&st->zones_free) <= st->reserve;
}

/* Drop records kept only because the journal still holds records of their
 * epochs; past this many the background thread cycles the journal, so
 * that they (and their epoch slots) do not pile up while the journal
 * fills slowly. */
#define DROPS_JWAIT_MAX 4u

static uint32_t drops_waiting_journal(struct slab_store *st)
{
	struct slab_epoch *root = st->etab[0];
	uint64_t now = atomic_load(&st->jcycle);
	uint32_t n = 0;

	pthread_mutex_lock(&root->lock);
	for (uint32_t i = 0; i < st->ndrops; i++) {
		const struct slab_drop *d = &st->drops[i];

		if (d->ready && d->jwait && d->jcycle != UINT64_MAX && now <= d->jcycle)
			n++;
	}
	pthread_mutex_unlock(&root->lock);
	return n;
}

/* Finish the drops handed over so far: free their DRAM, then run a sync,
 * which resets every zone whose live bytes reached 0 (bglock held; dropped
 * while working). */
static void reclaim(struct slab_store *st)
{
	struct slab_grave *g = st->graves;
	uint64_t asked = st->reclaim_asked;

	st->graves = NULL;
	pthread_mutex_unlock(&st->bglock);
	while (g) {
		struct slab_grave *next = g->next;

		slab_grave_free(g);
		free(g);
		g = next;
	}
	if (!st->ro && !st->fenced) {
		if (drops_waiting_journal(st) >= DROPS_JWAIT_MAX)
			atomic_store(&st->jcycle_wanted, true);
		slab_sync_all(st, false);
	}
	pthread_mutex_lock(&st->bglock);
	st->reclaim_done = asked;
	pthread_cond_broadcast(&st->spacecond);
}

void slab_reclaim_wait(struct slab_store *st)
{
	struct timespec ts;

	pthread_mutex_lock(&st->bglock);
	uint64_t want = st->reclaim_asked;

	while (st->reclaim_done < want && st->bg_started && !st->bg_stop) {
		pthread_cond_signal(&st->bgcond);
		deadline_after(&ts, 10);
		pthread_cond_timedwait(&st->spacecond, &st->bglock, &ts);
	}
	pthread_mutex_unlock(&st->bglock);
}

static void *bg_main(void *arg)
{
	struct slab_store *st = arg;
	struct timespec dl;

	deadline_after(&dl, st->commit_ms);
	pthread_mutex_lock(&st->bglock);
	while (!st->bg_stop) {
		if (st->reclaim_done < st->reclaim_asked) {
			reclaim(st);
			continue;
		}
		if (gc_needed(st)) {
			st->gc_wanted = false;
			pthread_mutex_unlock(&st->bglock);
			slab_gc_pass(st);
			pthread_mutex_lock(&st->bglock);
			pthread_cond_broadcast(&st->spacecond);
			continue;
		}
		if (past(&dl)) {
			pthread_mutex_unlock(&st->bglock);
			slab_sync_all(st, false);
			idle_release(st);
			slab_ckpt_tick(st);
			pthread_mutex_lock(&st->bglock);
			deadline_after(&dl, st->commit_ms);
			continue;
		}
		pthread_cond_timedwait(&st->bgcond, &st->bglock, &dl);
	}
	pthread_mutex_unlock(&st->bglock);
	return NULL;
}

int slab_bg_start(struct slab_store *st)
{
	int ret;

	st->bg_stop = false;
	ret = pthread_create(&st->bg, NULL, bg_main, st);
	if (ret)
		return -ret;
	st->bg_started = true;
	return 0;
}

void slab_bg_stop(struct slab_store *st)
{
	if (!st->bg_started)
		return;
	pthread_mutex_lock(&st->bglock);
	st->bg_stop = true;
	pthread_cond_broadcast(&st->bgcond);
	pthread_cond_broadcast(&st->spacecond);
	pthread_mutex_unlock(&st->bglock);
	pthread_join(st->bg, NULL);
	st->bg_started = false;
	pthread_mutex_lock(&st->bglock);
	if (st->reclaim_done < st->reclaim_asked)
		reclaim(st);
	pthread_mutex_unlock(&st->bglock);
}

void slab_gc_kick(struct slab_store *st)
{
	pthread_mutex_lock(&st->bglock);
	st->gc_wanted = true;
	pthread_cond_signal(&st->bgcond);
	pthread_mutex_unlock(&st->bglock);
}

void slab_throttle(struct slab_store *st)
{
	struct timespec ts;

	if (!st->bg_started || atomic_load(&st->zones_free) > st->reserve)
		return;
	atomic_fetch_add(&st->c_slow, 1);
	pthread_mutex_lock(&st->bglock);
	st->gc_wanted = true;
	pthread_cond_signal(&st->bgcond);
	while (atomic_load(&st->zones_free) <= st->reserve && !st->gc_gave_up &&
	       !st->bg_stop && !st->ro) {
		deadline_after(&ts, 50);
		pthread_cond_timedwait(&st->spacecond, &st->bglock, &ts);
	}
	pthread_mutex_unlock(&st->bglock);
}
