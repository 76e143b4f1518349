/* SPDX-License-Identifier: MIT */
/*
 * readahead: the kernel's readahead window of the mount (-o read_ahead_kb).
 *
 * A FUSE mount's backing_dev_info starts with the kernel's default window
 * (128 KiB), and FUSE_INIT can only lower it (the kernel takes the smaller
 * of its own value and the reply's max_readahead). A cold sequential read
 * then reaches the daemon as 128 KiB READs, about two in flight: each is a
 * round trip through the daemon, and the device sees small reads. A larger
 * window lets the kernel send max_pages-sized READs (1 MiB) several at a
 * time. The only way to raise it is the bdi's sysfs file, which root may
 * write: /sys/class/bdi/MAJ:MIN/read_ahead_kb (MAJ:MIN-fuseblk for fuseblk).
 *
 * It must be written after the kernel processed the INIT reply (which would
 * lower it again). A thread stat()s the mountpoint: the GETATTR that needs
 * waits for INIT, and the result names the bdi (st_dev). Failure (not
 * root, no sysfs, unmounted meanwhile) is logged and changes nothing else.
 * The thread owns nothing shared (it has its own copy of the path).
 * tslab_readahead_stop joins it after the unmount, but waits at most
 * RA_JOIN_S: a stat sent before INIT completed can wait until the session's
 * /dev/fuse fd is closed, later; such a thread is detached and ends with
 * the connection or the process.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <time.h>

#include "fs/fs_int.h"

#define RA_JOIN_S 2

static struct {
	pthread_t tid;
	bool started;
	char mnt[PATH_MAX];
	unsigned kb;
} R;

static int bdi_write(dev_t dev, unsigned kb, char *path, size_t len)
{
	static const char *const fmt[] = {"/sys/class/bdi/%u:%u/read_ahead_kb",
	                                  "/sys/class/bdi/%u:%u-fuseblk/read_ahead_kb"};
	int err = -ENOENT;

	for (size_t i = 0; i < sizeof(fmt) / sizeof(fmt[0]); i++) {
		FILE *f;

		snprintf(path, len, fmt[i], major(dev), minor(dev));
		f = fopen(path, "w");
		if (!f) {
			err = -errno;
			continue;
		}
		err = fprintf(f, "%u\n", kb) < 0 ? -EIO : 0;
		if (fclose(f) && !err)
			err = -errno;
		return err;
	}
	return err;
}

static void *ra_main(void *arg)
{
	char path[96] = "";
	struct stat sb;
	int err;

	(void)arg;
	if (stat(R.mnt, &sb))
		err = -errno;
	else
		err = bdi_write(sb.st_dev, R.kb, path, sizeof(path));
	if (err)
		tslab_log(LOG_WARNING,
		          "read_ahead_kb=%u: cannot set the mount's readahead%s%s: %s "
		          "(the kernel's default stays)",
		          R.kb, path[0] ? " in " : "", path, strerror(-err));
	else
		tslab_log(LOG_INFO, "readahead: %u KiB (%s)", R.kb, path);
	return NULL;
}

void tslab_readahead_start(const char *mnt, unsigned kb)
{
	sigset_t all, old;

	if (!kb || !mnt || R.started || strlen(mnt) >= sizeof(R.mnt))
		return;
	strcpy(R.mnt, mnt);
	R.kb = kb;
	/* Signals are for the main and signal threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	R.started = !pthread_create(&R.tid, NULL, ra_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!R.started)
		tslab_log(LOG_WARNING, "read_ahead_kb=%u: cannot start its thread", kb);
}

void tslab_readahead_stop(void)
{
	struct timespec until;

	if (!R.started)
		return;
	R.started = false;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += RA_JOIN_S;
	if (pthread_timedjoin_np(R.tid, NULL, &until))
		pthread_detach(R.tid);
}
