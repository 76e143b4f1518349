/* SPDX-License-Identifier: MIT */
/*
 * fs: idle pruning (-o idle_prune=SECONDS) — epochs nobody used for a while
 * leave the kernel's dentry and inode cache in the background, so that the
 * rmdir that expires them finds little to prune.
 *
 * Why. The daemon drops an epoch in O(zones), but rmdir(2) also makes the
 * kernel evict every dentry and inode it cached under the directory,
 * synchronously, before it returns: 4 s for a million files. The prune
 * thread does that eviction earlier, off the operator's path, with one
 * FUSE_NOTIFY_INVAL_ENTRY for the epoch directory's name: the kernel then
 * invalidates the directory's dentry and shrinks everything cached below it
 * (and sends the matching FORGETs). Nothing in the daemon changes: the next
 * access looks the names up again.
 *
 * Idle. Every request that locks an epoch (tslab_get_locked) stamps
 * ep->used_s with the coarse monotonic second. An epoch directory is
 * invalidated when
 *   - the kernel holds its inode (nlookup > 0; otherwise it caches nothing
 *     below it either),
 *   - no request touched the epoch for prune_s seconds, and
 *   - one did after the last invalidation (one notification per idle spell):
 *     the prune thread sets used_s to 0 by compare-and-exchange when it
 *     picks the epoch, and the next request stamps it again.
 * Reads served from the kernel's page cache never reach the daemon, so an
 * epoch read only from cache counts as idle: its next reads after a prune
 * are cold (LOOKUP, and the data from the daemon). Measured in
 * docs/design.md ("Idle pruning").
 *
 * Locking. The scan holds drop_lock for reading (epochs cannot go away),
 * the root epoch's lock (the names of the directories above the epochs) and,
 * briefly, each epoch directory's own epoch lock (its nlookup): the
 * documented order drop_lock -> root epoch -> other epoch. The notifications
 * are sent after every lock is released: the kernel processes one by taking
 * the parent directory's inode lock, which a request in flight (a mkdir in
 * the root, say) may hold while it waits for a daemon thread that needs
 * drop_lock or the root epoch. Never from a request handler.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "fs/fs_int.h"

/* An epoch directory chosen for invalidation, copied out of the namespace. */
struct prune_item {
	slab_handle_t parent;
	uint32_t epoch;
	uint8_t len;
	char name[SLAB_NAME_MAX + 1];
};

struct prune_list {
	struct prune_item *v;
	size_t n, cap;
};

static int64_t coarse_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec + 1; /* 0 stays "never used" */
}

void tslab_epoch_touch(struct tslab_epoch *ep)
{
	int64_t now = coarse_s();

	if (atomic_load_explicit(&ep->used_s, memory_order_relaxed) != now)
		atomic_store_explicit(&ep->used_s, now, memory_order_relaxed);
}

static int list_add(struct prune_list *l, const struct tslab_inode *ip)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct prune_item *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	struct prune_item *it = &l->v[l->n++];

	it->parent = ip->d.parent;
	it->epoch = tslab_epoch_of(ip->ino);
	it->len = ip->d.name_len;
	memcpy(it->name, ip->d.name, it->len);
	it->name[it->len] = 0;
	return 0;
}

/* Epoch directory IP (root epoch locked): due for invalidation? Marks it
 * pruned when it is. */
static bool epoch_due(struct tslab_fs *fs, const struct tslab_inode *ip, int64_t now)
{
	struct tslab_epoch *ep = tslab_epoch_get(fs, tslab_epoch_of(ip->ino));
	int64_t used;
	uint32_t nlookup;

	if (!ep)
		return false;
	pthread_mutex_lock(&ep->lock);
	nlookup = ip->nlookup;
	pthread_mutex_unlock(&ep->lock);
	used = atomic_load_explicit(&ep->used_s, memory_order_relaxed);
	if (!nlookup || !used || now - used < (int64_t)fs->prune_s)
		return false;
	/* 0: not used since this prune. A request that stamps the epoch
	 * meanwhile makes the exchange fail: not idle after all. */
	return atomic_compare_exchange_strong(&ep->used_s, &used, 0);
}

/* Directories of the root epoch from DIP down, DEPTH levels: epoch
 * directories that are due go to L. Root epoch locked. */
static int scan_dir(struct tslab_fs *fs, const struct tslab_inode *dip, unsigned depth,
                    int64_t now, struct prune_list *l)
{
	int err = 0;

	if (!dip->ext)
		return 0;
	for (struct tslab_dent *d = dip->ext->children; d && !err; d = d->sib_next) {
		const struct tslab_inode *ip;

		if (d->is_link)
			continue; /* directories have no extra links */
		ip = (const struct tslab_inode *)d;
		if (!S_ISDIR(ip->mode))
			continue;
		if (tslab_is_epoch_dir(ip)) {
			if (epoch_due(fs, ip, now))
				err = list_add(l, ip);
		} else if (depth > 1) {
			err = scan_dir(fs, ip, depth - 1, now, l);
		}
	}
	return err;
}

static int collect(struct tslab_fs *fs, struct prune_list *l)
{
	struct tslab_epoch *root;
	struct tslab_inode *rip;
	int err = 0;

	if (!fs->epoch_depth)
		return 0;
	pthread_rwlock_rdlock(&fs->drop_lock);
	root = tslab_epoch_get(fs, SLAB_EPOCH_ROOT);
	if (root) {
		pthread_mutex_lock(&root->lock);
		rip = tslab_inode_lookup(fs, SLAB_HANDLE_ROOT);
		if (rip)
			err = scan_dir(fs, rip, fs->epoch_depth, coarse_s(), l);
		pthread_mutex_unlock(&root->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	return err;
}

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* No lock held. -ENOENT: the kernel had already forgotten the entry. */
static void send_all(struct tslab_fs *fs, const struct prune_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct prune_item *it = &l->v[i];
		double t0 = mono_ms();
		int err = fuse_lowlevel_notify_inval_entry(fs->se, it->parent, it->name,
		                                           it->len);

		if (err && err != -ENOENT) {
			tslab_log(LOG_WARNING, "idle_prune: %s: %s", it->name,
			          strerror(-err));
			continue;
		}
		atomic_fetch_add(&fs->prunes, 1);
		tslab_log(LOG_INFO,
		          "idle_prune: %s (epoch %u) idle %u s: left the kernel cache in "
		          "%.1f ms",
		          it->name, it->epoch, fs->prune_s, mono_ms() - t0);
	}
}

static void *prune_main(void *arg)
{
	struct tslab_fs *fs = arg;
	/* Check a few times per period so that an epoch goes within about
	 * 1.25 periods of its last use. */
	unsigned step = fs->prune_s >= 4 ? fs->prune_s / 4 : 1;
	struct prune_list l = {0};
	struct timespec until;

	pthread_mutex_lock(&fs->prune_mu);
	while (!fs->prune_stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += step;
		while (!fs->prune_stop &&
		       pthread_cond_timedwait(&fs->prune_cv, &fs->prune_mu, &until) !=
		           ETIMEDOUT)
			;
		if (fs->prune_stop)
			break;
		pthread_mutex_unlock(&fs->prune_mu);
		l.n = 0;
		if (collect(fs, &l))
			tslab_log(LOG_WARNING,
			          "idle_prune: out of memory, skipped a pass");
		send_all(fs, &l);
		pthread_mutex_lock(&fs->prune_mu);
	}
	pthread_mutex_unlock(&fs->prune_mu);
	free(l.v);
	return NULL;
}

int tslab_prune_start(struct tslab_fs *fs)
{
	pthread_condattr_t ca;
	int err;

	if (!fs->prune_s || fs->prune_started)
		return 0;
	pthread_mutex_init(&fs->prune_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->prune_cv, &ca);
	pthread_condattr_destroy(&ca);
	fs->prune_stop = false;
	err = pthread_create(&fs->prune_thread, NULL, prune_main, fs);
	if (err) {
		pthread_cond_destroy(&fs->prune_cv);
		pthread_mutex_destroy(&fs->prune_mu);
		return -err;
	}
	fs->prune_started = true;
	return 0;
}

void tslab_prune_stop(struct tslab_fs *fs)
{
	if (!fs->prune_started)
		return;
	pthread_mutex_lock(&fs->prune_mu);
	fs->prune_stop = true;
	pthread_cond_broadcast(&fs->prune_cv);
	pthread_mutex_unlock(&fs->prune_mu);
	pthread_join(fs->prune_thread, NULL);
	pthread_cond_destroy(&fs->prune_cv);
	pthread_mutex_destroy(&fs->prune_mu);
	fs->prune_started = false;
}
