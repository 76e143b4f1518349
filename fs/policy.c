/* SPDX-License-Identifier: MIT */
/*
 * fs: the epoch policy — retention by age (retention=), by space
 * (retention_space=, with a keep= floor), sealing of idle epochs
 * (seal_idle=) — its thread, the test clock, and the actions behind the
 * control attributes (seal, drop, the epoch table, the zone map, GC).
 *
 * Every drop goes through tslab_drop_epoch(), the path of rmdir: durable
 * before it returns, logged with name, files, bytes and reason, and the
 * kernel's entry is invalidated as after an rmdir.
 *
 * Locks: pol.mu is a leaf (nothing is taken under it). The policy pass
 * takes drop_lock for reading and one epoch lock at a time to collect
 * candidates, then releases everything before each seal or drop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs_int.h"

/* ---- clock ------------------------------------------------------------------ */

int tslab_clock_fd = -1;

/* TSLAB_TEST_CLOCK_FILE holds the current time in seconds (decimal, may
 * have a fraction); tests move time by rewriting it. */
int64_t tslab_test_clock(void)
{
	char buf[64];
	ssize_t n = pread(tslab_clock_fd, buf, sizeof(buf) - 1, 0);
	struct timespec ts;

	if (n > 0) {
		buf[n] = 0;
		double s = strtod(buf, NULL);

		if (s > 0)
			return (int64_t)(s * 1e9);
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_s(void)
{
	return tslab_now() / 1000000000;
}

int tslab_parse_duration(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 0:
	case 's':
		break;
	case 'm':
		mul = 60;
		break;
	case 'h':
		mul = 3600;
		break;
	case 'd':
		mul = 86400;
		break;
	case 'w':
		mul = 7 * 86400;
		break;
	default:
		return -EINVAL;
	}
	if (*end && end[1])
		return -EINVAL;
	if (v > UINT64_MAX / mul / 2)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

/* ---- per-epoch state ---------------------------------------------------------- */

void tslab_epoch_times(struct tslab_epoch *ep, const struct slab_attr *a)
{
	int64_t c = a->ctime_ns / 1000000000, m = a->mtime_ns / 1000000000;
	int64_t w = c > m ? c : m;

	if (!ep->created || a->ctime_ns < ep->created)
		ep->created = a->ctime_ns;
	if (w > ep->last_write)
		ep->last_write = w;
}

struct tslab_inode *tslab_epoch_dir_inode(struct tslab_epoch *ep)
{
	for (struct tslab_ext *x = ep->exts; x; x = x->next)
		if (tslab_is_epoch_dir(x->ip) && x->ip->d.parent)
			return x->ip;
	return NULL;
}

/* ---- seal / drop ----------------------------------------------------------------- */

static int seal_locked(struct tslab_fs *fs, struct tslab_epoch *ep)
{
	int err;

	if (ep->sealed)
		return 0;
	/* A file unlinked while in use is freed at its last release: that
	 * free could not happen in a sealed epoch. */
	for (struct tslab_ext *x = ep->exts; x; x = x->next)
		if (x->ip->orphan)
			return -EBUSY;
	err = tslab_flush_epoch(fs, ep, TSLAB_FLUSH_TRIM);
	if (!err && ep->ndirty)
		err = -EIO;
	if (err)
		return err;
	err = slab_epoch_seal(fs->st, ep->id);
	if (err)
		return tslab_err(fs, err, "sealing an epoch");
	ep->sealed = true;
	return 0;
}

int tslab_policy_seal(struct tslab_fs *fs, fuse_ino_t ino)
{
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err;

	if (tslab_is_ro(fs))
		return -EROFS;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		err = tslab_is_epoch_dir(ip) ? seal_locked(fs, ep) : -EINVAL;
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	return err;
}

int tslab_policy_drop(struct tslab_fs *fs, fuse_ino_t ino, const char *reason)
{
	char name[SLAB_NAME_MAX + 1];
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	slab_handle_t parent = 0;
	uint32_t id = 0;
	size_t len = 0;
	int err;

	if (tslab_is_ro(fs))
		return -EROFS;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		if (!tslab_is_epoch_dir(ip) || !ip->d.parent) {
			err = -EINVAL;
		} else {
			parent = ip->d.parent;
			len = ip->d.name_len;
			memcpy(name, ip->d.name, len);
			id = ep->id;
		}
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	if (err)
		return err;
	name[len] = 0;
	err = tslab_drop_epoch(fs, parent, name, len, id, reason);
	if (!err) {
		atomic_fetch_add(&fs->pol.dropped, reason ? 1 : 0);
		tslab_notify_inval_entry(fs, parent, name, len, true);
	}
	return err;
}

/* ---- the policy pass -------------------------------------------------------------- */

struct cand {
	uint32_t id;
	slab_handle_t dir;
	int64_t created, last_write;
	bool sealed;
};

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* The non-root epochs that have a directory, oldest first. */
static int collect(struct tslab_fs *fs, struct cand **out, size_t *n)
{
	uint32_t *ids = NULL;
	size_t cnt = 0, cap = 0;
	struct cand *c;

	pthread_rwlock_rdlock(&fs->drop_lock);
	pthread_mutex_lock(&fs->epochs_lock);
	for (struct tslab_epoch *ep = fs->epoch_list; ep; ep = ep->next) {
		if (ep->id == SLAB_EPOCH_ROOT)
			continue;
		if (cnt == cap) {
			uint32_t *p =
			    realloc(ids, (cap = cap ? cap * 2 : 64) * sizeof(*ids));

			if (!p) {
				pthread_mutex_unlock(&fs->epochs_lock);
				pthread_rwlock_unlock(&fs->drop_lock);
				free(ids);
				return -ENOMEM;
			}
			ids = p;
		}
		ids[cnt++] = ep->id;
	}
	pthread_mutex_unlock(&fs->epochs_lock);
	c = calloc(cnt ? cnt : 1, sizeof(*c));
	*n = 0;
	for (size_t i = 0; c && i < cnt; i++) {
		struct tslab_epoch *ep = tslab_epoch_get(fs, ids[i]);
		struct tslab_inode *dip;

		if (!ep)
			continue;
		pthread_mutex_lock(&ep->lock);
		dip = tslab_epoch_dir_inode(ep);
		if (dip) {
			c[*n] = (struct cand){.id = ep->id,
			                      .dir = dip->ino,
			                      .created = ep->created,
			                      .last_write = ep->last_write,
			                      .sealed = ep->sealed};
			(*n)++;
		}
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	free(ids);
	if (!c)
		return -ENOMEM;
	qsort(c, *n, sizeof(*c), cand_cmp);
	*out = c;
	return 0;
}

/* Used space in hundredths of a percent. */
static uint64_t used_bp(struct tslab_fs *fs)
{
	struct slab_space sp;

	slab_space_get(fs->st, &sp);
	if (!sp.total_bytes)
		return 0;
	return (sp.total_bytes - sp.free_bytes) * 10000 / sp.total_bytes;
}

/* Over the mark, or so short of space that the next chunk of data would be
 * refused (slab's admission: less than a chunk left to reserve). */
static bool over_space(struct tslab_fs *fs)
{
	struct slab_space sp;

	if (!fs->pol.space_pct)
		return false;
	slab_space_get(fs->st, &sp);
	return used_bp(fs) > fs->pol.space_pct * 100u || sp.avail_bytes < fs->pol.chunk;
}

static void policy_drop(struct tslab_fs *fs, struct cand *c, const char *why)
{
	int err = tslab_policy_drop(fs, c->dir, why);

	if (err && err != -ENOENT && err != -ESTALE)
		tslab_log(LOG_WARNING, "%s: policy: dropping epoch %u (%s): %s",
		          fs->device, c->id, why, strerror(-err));
}

static void policy_pass(struct tslab_fs *fs)
{
	struct tslab_policy *p = &fs->pol;
	struct cand *c = NULL;
	size_t n = 0, unprot;
	int64_t now = now_s();
	char why[96];
	bool stuck = false;

	if (tslab_is_ro(fs))
		return;
	if (p->space_pct) {
		/* Files still in DRAM are not in the used space yet. */
		atomic_store(&p->unflushed, 0);
		pthread_rwlock_rdlock(&fs->drop_lock);
		tslab_flush_all(fs, TSLAB_FLUSH_TRIM);
		pthread_rwlock_unlock(&fs->drop_lock);
	}
	if (collect(fs, &c, &n))
		return;
	unprot = n > p->keep ? n - p->keep : 0;
	for (size_t i = 0; p->seal_idle && i < n; i++) {
		if (c[i].sealed || now - c[i].last_write < (int64_t)p->seal_idle)
			continue;
		int err = tslab_policy_seal(fs, c[i].dir);

		if (!err) {
			atomic_fetch_add(&p->sealed, 1);
			tslab_log(LOG_NOTICE,
			          "%s: sealed epoch %u (seal_idle=%" PRIu64
			          "s: last write %" PRId64 " s ago)",
			          fs->device, c[i].id, p->seal_idle,
			          now - c[i].last_write);
		} else if (err != -ENOENT && err != -ESTALE && err != -EBUSY) {
			tslab_log(LOG_WARNING, "%s: policy: sealing epoch %u: %s",
			          fs->device, c[i].id, strerror(-err));
		}
	}
	for (size_t i = 0; p->retention && i < unprot; i++) {
		if (now - c[i].last_write < (int64_t)p->retention)
			continue;
		snprintf(why, sizeof(why),
		         "retention=%" PRIu64 "s, last write %" PRId64 " s ago",
		         p->retention, now - c[i].last_write);
		policy_drop(fs, &c[i], why);
		c[i].id = 0; /* gone */
	}
	for (size_t i = 0; p->space_pct && over_space(fs); i++) {
		if (i >= unprot) {
			stuck = true;
			break;
		}
		if (!c[i].id)
			continue;
		uint64_t bp = used_bp(fs);

		snprintf(why, sizeof(why),
		         "retention_space=%u%%, %" PRIu64 ".%02" PRIu64 "%% used",
		         p->space_pct, bp / 100, bp % 100);
		policy_drop(fs, &c[i], why);
	}
	/* Dropped zones are reset by the store's background thread. */
	slab_reclaim_wait(fs->st);
	pthread_mutex_lock(&p->mu);
	p->stuck = stuck;
	pthread_mutex_unlock(&p->mu);
	free(c);
}

/* Ticks of the policy thread: often enough for tests that move the clock
 * and for writers waiting on retention_space. */
#define TSLAB_POLICY_TICK_MS 500

static void *policy_main(void *arg)
{
	struct tslab_fs *fs = arg;
	struct tslab_policy *p = &fs->pol;

	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		struct timespec ts;

		if (!p->kick) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += TSLAB_POLICY_TICK_MS * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000;
			ts.tv_nsec %= 1000000000;
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
			if (p->stopping)
				break;
		}
		p->kick = false;
		p->passes_started++;
		pthread_mutex_unlock(&p->mu);
		policy_pass(fs);
		pthread_mutex_lock(&p->mu);
		p->passes_done = p->passes_started;
		pthread_cond_broadcast(&p->done_cv);
	}
	p->passes_done = UINT64_MAX;
	pthread_cond_broadcast(&p->done_cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Longest a writer waits for one policy pass (it then goes on, and may
 * meet ENOSPC as it would without the policy). */
#define TSLAB_THROTTLE_S 120

void tslab_policy_throttle(struct tslab_fs *fs, uint64_t bytes)
{
	struct tslab_policy *p = &fs->pol;
	struct timespec ts;
	uint64_t target;

	if (!p->started || !p->space_pct)
		return;
	if (atomic_fetch_add(&p->unflushed, bytes) + bytes < p->chunk && !over_space(fs))
		return;
	pthread_mutex_lock(&p->mu);
	if (p->stuck || p->stopping) {
		pthread_mutex_unlock(&p->mu);
		return;
	}
	target = p->passes_started + 1;
	p->kick = true;
	pthread_cond_signal(&p->cv);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += TSLAB_THROTTLE_S;
	while (p->passes_done < target && !p->stopping)
		if (pthread_cond_timedwait(&p->done_cv, &p->mu, &ts))
			break;
	pthread_mutex_unlock(&p->mu);
}

int tslab_policy_init(struct tslab_fs *fs)
{
	const char *clk = getenv("TSLAB_TEST_CLOCK_FILE");

	pthread_mutex_init(&fs->pol.mu, NULL);
	pthread_cond_init(&fs->pol.cv, NULL);
	pthread_cond_init(&fs->pol.done_cv, NULL);
	fs->pol.clock_fd = -1;
	if (clk && *clk) {
		fs->pol.clock_fd = open(clk, O_RDONLY | O_CLOEXEC);
		if (fs->pol.clock_fd < 0) {
			fprintf(stderr, "tslabfs: TSLAB_TEST_CLOCK_FILE=%s: %s\n", clk,
			        strerror(errno));
			return -errno;
		}
		tslab_clock_fd = fs->pol.clock_fd;
	}
	return 0;
}

int tslab_policy_start(struct tslab_fs *fs)
{
	struct tslab_policy *p = &fs->pol;

	/* Sealed state comes from the store (kept with the epoch marker). */
	for (struct tslab_epoch *ep = fs->epoch_list; ep; ep = ep->next) {
		struct slab_epoch_stats s;

		if (ep->id != SLAB_EPOCH_ROOT && !slab_epoch_stats(fs->st, ep->id, &s))
			ep->sealed = s.sealed;
	}
	if (fs->read_only || !(p->retention || p->space_pct || p->seal_idle))
		return 0;
	if (p->space_pct) {
		struct slab_space sp;

		/* A quarter of the room above the mark may wait in DRAM. */
		slab_space_get(fs->st, &sp);
		p->chunk = sp.total_bytes / 100 * (100 - p->space_pct) / 4;
		if (p->chunk < (1u << 20))
			p->chunk = 1u << 20;
	}
	if (pthread_create(&p->thread, NULL, policy_main, fs))
		return -EAGAIN;
	p->started = true;
	return 0;
}

void tslab_policy_stop(struct tslab_fs *fs)
{
	struct tslab_policy *p = &fs->pol;

	if (!p->started)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->thread, NULL);
	p->started = false;
}

/* ---- control attribute texts ------------------------------------------------------ */

struct tbuf {
	char *s;
	size_t len, cap;
	int err;
};

static void tb_printf(struct tbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tb_printf(struct tbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0,
		              fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = -EINVAL;
			return;
		}
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t nc = (b->cap + (size_t)n + 1) * 2;
		char *p = realloc(b->s, nc);

		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->s = p;
		b->cap = nc;
	}
}

static int tb_done(struct tbuf *b, char **out, size_t *len)
{
	if (b->err) {
		free(b->s);
		return b->err;
	}
	if (!b->s)
		tb_printf(b, "%s", "");
	*out = b->s;
	*len = b->len;
	return b->err;
}

/* Path of epoch directory IP below the root (root-epoch ancestors only). */
static void dir_path(struct tslab_fs *fs, struct tslab_inode *ip, char *out, size_t cap)
{
	struct tslab_inode *chain[64];
	size_t n = 0, pos = 0;

	for (; ip && ip->ino != SLAB_HANDLE_ROOT && n < 64;
	     ip = tslab_inode_lookup(fs, ip->d.parent))
		chain[n++] = ip;
	out[0] = 0;
	while (n-- > 0 && pos + chain[n]->d.name_len + 2 < cap) {
		out[pos++] = '/';
		memcpy(out + pos, chain[n]->d.name, chain[n]->d.name_len);
		pos += chain[n]->d.name_len;
		out[pos] = 0;
	}
	if (!pos)
		snprintf(out, cap, "/");
}

/* One line per epoch, tab-separated, after a header line:
 *   id path files bytes zones pages created last_write sealed retention_due
 * Times are seconds since 1970 (the fs clock); retention_due is "-" when
 * retention= is off or for the root epoch. Paths with tabs or newlines are
 * escaped as \t and \n. */
int tslab_policy_epochs_text(struct tslab_fs *fs, char **out, size_t *len)
{
	struct tbuf b = {0};
	uint32_t *ids;
	int n0 = slab_epoch_list(fs->st, NULL, 0), n;

	ids = calloc((size_t)n0 + 16, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	n = slab_epoch_list(fs->st, ids, (uint32_t)n0 + 16);
	tb_printf(&b,
	          "id\tpath\tfiles\tbytes\tzones\tpages\tcreated\tlast_write\tsealed\t"
	          "retention_due\n");
	for (int i = 0; i < n && i < n0 + 16; i++) {
		struct tslab_epoch *ep = tslab_epoch_get(fs, ids[i]);
		struct slab_epoch_stats s;
		struct tslab_inode *dip;
		char path[1024], esc[2100], due[32] = "-";
		size_t e = 0;

		if (!ep)
			continue;
		pthread_mutex_lock(&ep->lock);
		tslab_flush_epoch(fs, ep, 0); /* count files still in DRAM */
		dip = ep->id == SLAB_EPOCH_ROOT ? tslab_inode_lookup(fs, SLAB_HANDLE_ROOT)
		                                : tslab_epoch_dir_inode(ep);
		if (dip)
			dir_path(fs, dip, path, sizeof(path));
		else
			snprintf(path, sizeof(path), "?");
		if (slab_epoch_stats(fs->st, ep->id, &s))
			memset(&s, 0, sizeof(s));
		if (fs->pol.retention && ep->id != SLAB_EPOCH_ROOT)
			snprintf(due, sizeof(due), "%" PRId64,
			         ep->last_write + (int64_t)fs->pol.retention);
		for (const char *q = path; *q && e + 3 < sizeof(esc); q++) {
			if (*q == '\t' || *q == '\n' || *q == '\\') {
				esc[e++] = '\\';
				esc[e++] = *q == '\t' ? 't' : *q == '\n' ? 'n' : '\\';
			} else {
				esc[e++] = *q;
			}
		}
		esc[e] = 0;
		tb_printf(&b,
		          "%" PRIu32 "\t%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu32
		          "\t%" PRIu64 "\t%" PRId64 "\t%" PRId64 "\t%d\t%s\n",
		          ep->id, esc, s.objects, s.live_bytes, s.zones, s.pages,
		          (int64_t)(ep->created / 1000000000), (int64_t)ep->last_write,
		          s.sealed ? 1 : 0, due);
		pthread_mutex_unlock(&ep->lock);
	}
	free(ids);
	return tb_done(&b, out, len);
}

static const char *const cond_names[] = {
    [ZNS_COND_NOT_WP] = "conv",       [ZNS_COND_EMPTY] = "empty",
    [ZNS_COND_IMP_OPEN] = "imp_open", [ZNS_COND_EXP_OPEN] = "exp_open",
    [ZNS_COND_CLOSED] = "closed",     [ZNS_COND_FULL] = "full",
    [ZNS_COND_READ_ONLY] = "ro",      [ZNS_COND_OFFLINE] = "offline",
};
static const char *const use_names[] = {
    [SLAB_ZUSE_FREE] = "free", [SLAB_ZUSE_OPEN] = "open", [SLAB_ZUSE_FULL] = "full",
    [SLAB_ZUSE_META] = "meta", [SLAB_ZUSE_GC] = "gc",     [SLAB_ZUSE_BAD] = "bad",
};

/* Header "capacity C max_active A max_open O", then one line per zone:
 *   zone cond wp use owner owners live
 * cond is the device's (zone report), wp and live in bytes, owner the
 * first epoch id with live pages there or "-". tslabctl draws it. */
int tslab_policy_zones_text(struct tslab_fs *fs, char **out, size_t *len)
{
	const struct zns_geometry *g = zns_geometry(fs->dev);
	int n = slab_zone_map(fs->st, NULL, 0);
	struct slab_zone_info *zi = calloc((size_t)n, sizeof(*zi));
	struct zns_zone *rep = calloc((size_t)n, sizeof(*rep));
	struct tbuf b = {0};
	int err = 0;

	if (!zi || !rep) {
		err = -ENOMEM;
		goto free_bufs;
	}
	slab_zone_map(fs->st, zi, (uint32_t)n);
	err = zns_zone_report(fs->dev, 0, (uint32_t)n, rep);
	if (err < 0)
		goto free_bufs;
	err = 0;
	tb_printf(&b, "zones %d capacity %" PRIu64 " max_active %u max_open %u\n", n,
	          g->zone_capacity, g->max_active, g->max_open);
	for (int z = 0; z < n; z++) {
		char owner[16] = "-";

		if (zi[z].owner != SLAB_ZONE_NO_OWNER)
			snprintf(owner, sizeof(owner), "%" PRIu32, zi[z].owner);
		tb_printf(&b, "%d\t%s\t%" PRIu64 "\t%s%s\t%s\t%" PRIu32 "\t%" PRIu64 "\n",
		          z,
		          rep[z].cond <= ZNS_COND_OFFLINE ? cond_names[rep[z].cond] : "?",
		          rep[z].wp, use_names[zi[z].use], zi[z].root ? "/root" : "",
		          owner, zi[z].owners, zi[z].live);
	}
	err = tb_done(&b, out, len);
free_bufs:
	free(zi);
	free(rep);
	return err;
}

int tslab_policy_gc_text(struct tslab_fs *fs, char **out, size_t *len)
{
	struct slab_counters c;
	struct tbuf b = {0};

	slab_counters_get(fs->st, &c);
	tb_printf(&b,
	          "gc_runs %" PRIu64 "\ngc_bytes_moved %" PRIu64 "\nbytes_live %" PRIu64
	          "\nbytes_dead %" PRIu64 "\nzone_resets %" PRIu64 "\n",
	          c.gc_runs, c.gc_bytes_moved, c.bytes_live, c.bytes_dead, c.zone_resets);
	return tb_done(&b, out, len);
}
