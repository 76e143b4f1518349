/* SPDX-License-Identifier: MIT */
/*
 * fs: background threads.
 *   commit  every commit= seconds, puts every dirty inode, releases the
 *           buffers of closed files and syncs the store, so unsynced data
 *           waits at most about one interval.
 *   notify  sends kernel cache invalidations queued by request handlers;
 *           libfuse forbids sending them from inside a handler for the
 *           same entry, so they go out from here after the reply. It also
 *           opens the first file created in a mount once (the no_open
 *           probe) and trims malloc arenas after epoch drops.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs_int.h"

struct tslab_notify {
	struct tslab_notify *next;
	slab_handle_t parent;
	bool dropped; /* an epoch was dropped: give its memory back */
	size_t len;
	char name[];
};

/*
 * After epoch drops, once slab has released their DRAM, return the free
 * memory of every malloc arena to the system: buckets, file buffers and
 * request buffers freed by many threads otherwise stay in per-thread
 * arenas and fragmented heaps, and the daemon's RSS creeps up drop after
 * drop. Off the request path, at most once per burst of drops.
 */
static void notify_trim(struct tslab_fs *fs)
{
	slab_reclaim_wait(fs->st);
	malloc_trim(0);
}

static void *commit_main(void *arg)
{
	struct tslab_fs *fs = arg;
	struct timespec until;
	int err;

	pthread_mutex_lock(&fs->commit_mu);
	while (!fs->stopping) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += fs->commit_s;
		while (!fs->stopping &&
		       pthread_cond_timedwait(&fs->commit_cv, &fs->commit_mu, &until) !=
		           ETIMEDOUT)
			;
		if (fs->stopping)
			break;
		pthread_mutex_unlock(&fs->commit_mu);
		pthread_rwlock_rdlock(&fs->drop_lock);
		err = tslab_flush_all(fs, TSLAB_FLUSH_TRIM | TSLAB_FLUSH_TICK);
		pthread_rwlock_unlock(&fs->drop_lock);
		if (!err && !fs->read_only && !atomic_load(&fs->went_ro)) {
			err = slab_sync(fs->st);
			if (err)
				tslab_err(fs, err, "periodic commit");
		}
		pthread_mutex_lock(&fs->commit_mu);
	}
	pthread_mutex_unlock(&fs->commit_mu);
	return NULL;
}

/* Path of regular file H below the mountpoint; caller holds drop_lock
 * for writing (names cannot change). NULL when H is gone or unnamed. */
static char *probe_path(struct tslab_fs *fs, slab_handle_t h)
{
	struct tslab_dent *comp[64];
	struct tslab_inode *ip = tslab_inode_lookup(fs, h);
	size_t n = 0, len = strlen(fs->mountpoint), pos;
	char *path;

	tslab_rwlock_assert_wrheld(&fs->drop_lock);

	if (!ip || !S_ISREG(ip->mode) || ip->orphan)
		return NULL;
	for (struct tslab_dent *d = &ip->d; n < 64; n++) {
		comp[n] = d;
		len += 1u + d->name_len;
		if (d->parent == SLAB_HANDLE_ROOT)
			break;
		ip = tslab_inode_lookup(fs, d->parent);
		if (!ip)
			return NULL;
		d = &ip->d;
	}
	if (n == 64 || len >= PATH_MAX || !(path = malloc(len + 1)))
		return NULL;
	pos = strlen(fs->mountpoint);
	memcpy(path, fs->mountpoint, pos);
	for (size_t i = n + 1; i-- > 0;) {
		path[pos++] = '/';
		memcpy(path + pos, comp[i]->name, comp[i]->name_len);
		pos += comp[i]->name_len;
	}
	path[pos] = 0;
	return path;
}

/*
 * The kernel learns that OPEN is not needed only from an OPEN answered
 * ENOSYS, and until then sends a RELEASE for every created file. Opening
 * the first created file once, from this thread (never a request thread:
 * the open goes through the loop), teaches it. A failed probe (the file
 * renamed or removed meanwhile) is retried at a later create, twice.
 */
static void probe_no_open(struct tslab_fs *fs, slab_handle_t h)
{
	char *path;
	int fd = -1;

	pthread_rwlock_wrlock(&fs->drop_lock);
	path = probe_path(fs, h);
	pthread_rwlock_unlock(&fs->drop_lock);
	if (!path)
		return;
	/* Until the kernel has processed our CREATE reply, its dentry is the
	 * negative one the preceding LOOKUP left: ENOENT for a moment. */
	for (int tries = 0; tries < 50; tries++) {
		fd =
		    open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0 || errno != ENOENT || atomic_load(&fs->kernel_no_open))
			break;
		usleep(1000);
	}
	if (fd >= 0)
		close(fd);
	free(path);
}

void tslab_notify_probe(struct tslab_fs *fs, slab_handle_t h)
{
	if (!fs->mountpoint || atomic_fetch_add(&fs->probes, 1) >= TSLAB_PROBES)
		return;
	pthread_mutex_lock(&fs->notify_mu);
	if (!fs->stopping && fs->notify_started && !fs->probe_h) {
		fs->probe_h = h;
		pthread_cond_signal(&fs->notify_cv);
	}
	pthread_mutex_unlock(&fs->notify_mu);
}

static void *notify_main(void *arg)
{
	struct tslab_fs *fs = arg;
	struct tslab_notify *n;
	bool trim = false;

	pthread_mutex_lock(&fs->notify_mu);
	for (;;) {
		if (trim && !fs->notify_q && !fs->stopping) {
			pthread_mutex_unlock(&fs->notify_mu);
			notify_trim(fs);
			trim = false;
			pthread_mutex_lock(&fs->notify_mu);
			continue;
		}
		if (fs->probe_h && !fs->stopping) {
			slab_handle_t h = fs->probe_h;

			fs->probe_h = 0;
			pthread_mutex_unlock(&fs->notify_mu);
			probe_no_open(fs, h);
			pthread_mutex_lock(&fs->notify_mu);
			continue;
		}
		while (!fs->notify_q && !fs->probe_h && !fs->stopping)
			pthread_cond_wait(&fs->notify_cv, &fs->notify_mu);
		n = fs->notify_q;
		if (!n && fs->probe_h && !fs->stopping)
			continue;
		if (!n)
			break;
		fs->notify_q = n->next;
		pthread_mutex_unlock(&fs->notify_mu);
		/* -ENOENT: the kernel already forgot the entry, as usual after
		 * an rmdir it sent itself. */
		fuse_lowlevel_notify_inval_entry(fs->se, n->parent, n->name, n->len);
		trim |= n->dropped;
		free(n);
		pthread_mutex_lock(&fs->notify_mu);
	}
	pthread_mutex_unlock(&fs->notify_mu);
	return NULL;
}

void tslab_notify_inval_entry(struct tslab_fs *fs, slab_handle_t parent, const char *name,
                              size_t len, bool dropped)
{
	struct tslab_notify *n = malloc(sizeof(*n) + len + 1);

	if (!n)
		return;
	n->parent = parent;
	n->dropped = dropped;
	n->len = len;
	memcpy(n->name, name, len);
	n->name[len] = 0;
	pthread_mutex_lock(&fs->notify_mu);
	if (fs->stopping || !fs->notify_started) {
		pthread_mutex_unlock(&fs->notify_mu);
		free(n);
		return;
	}
	n->next = fs->notify_q;
	fs->notify_q = n;
	pthread_cond_signal(&fs->notify_cv);
	pthread_mutex_unlock(&fs->notify_mu);
}

int tslab_threads_start(struct tslab_fs *fs)
{
	int err;

	err = pthread_create(&fs->notify_thread, NULL, notify_main, fs);
	if (err)
		return -err;
	fs->notify_started = true;
	err = tslab_policy_start(fs);
	if (err)
		return err;
	err = tslab_prune_start(fs);
	if (err)
		return err;
	if (fs->read_only)
		return 0;
	err = pthread_create(&fs->commit_thread, NULL, commit_main, fs);
	if (err)
		return -err;
	fs->commit_started = true;
	return 0;
}

void tslab_threads_stop(struct tslab_fs *fs)
{
	tslab_policy_stop(fs); /* its drops queue notifications: first */
	tslab_prune_stop(fs);
	pthread_mutex_lock(&fs->commit_mu);
	pthread_mutex_lock(&fs->notify_mu);
	fs->stopping = true;
	pthread_cond_broadcast(&fs->notify_cv);
	pthread_mutex_unlock(&fs->notify_mu);
	pthread_cond_broadcast(&fs->commit_cv);
	pthread_mutex_unlock(&fs->commit_mu);
	if (fs->commit_started)
		pthread_join(fs->commit_thread, NULL);
	if (fs->notify_started)
		pthread_join(fs->notify_thread, NULL);
	fs->commit_started = fs->notify_started = false;
	while (fs->notify_q) {
		struct tslab_notify *n = fs->notify_q;

		fs->notify_q = n->next;
		free(n);
	}
}
