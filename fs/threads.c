/* SPDX-License-Identifier: MIT */
/*
 * fs: background threads.
 *   commit  every commit= seconds, puts every dirty inode, releases the
 *           buffers of closed files and syncs the store, so unsynced data
 *           waits at most about one interval.
 *   notify  sends kernel cache invalidations queued by request handlers;
 *           libfuse forbids sending them from inside a handler for the
 *           same entry, so they go out from here after the reply.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "fs/fs_int.h"

struct tslab_notify {
	struct tslab_notify *next;
	slab_handle_t parent;
	size_t len;
	char name[];
};

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
		err = tslab_flush_all(fs, TSLAB_FLUSH_TRIM);
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

static void *notify_main(void *arg)
{
	struct tslab_fs *fs = arg;
	struct tslab_notify *n;

	pthread_mutex_lock(&fs->notify_mu);
	for (;;) {
		while (!fs->notify_q && !fs->stopping)
			pthread_cond_wait(&fs->notify_cv, &fs->notify_mu);
		n = fs->notify_q;
		if (!n)
			break;
		fs->notify_q = n->next;
		pthread_mutex_unlock(&fs->notify_mu);
		/* -ENOENT: the kernel already forgot the entry, as usual after
		 * an rmdir it sent itself. */
		fuse_lowlevel_notify_inval_entry(fs->se, n->parent, n->name, n->len);
		free(n);
		pthread_mutex_lock(&fs->notify_mu);
	}
	pthread_mutex_unlock(&fs->notify_mu);
	return NULL;
}

void tslab_notify_inval_entry(struct tslab_fs *fs, slab_handle_t parent, const char *name,
                              size_t len)
{
	struct tslab_notify *n = malloc(sizeof(*n) + len + 1);

	if (!n)
		return;
	n->parent = parent;
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
