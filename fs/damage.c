// SPDX-License-Identifier: MIT
/*
 * fs: the errors= policy (like ext4's and zonefs's) and making a read-only
 * store visible as a read-only mount.
 *
 * On damage (a record that fails its checks, -EUCLEAN from slab) or a
 * device error (-EIO), slab has already logged the place and set the
 * superblock's error mark; the failing request gets EIO. Then:
 *   errors=remount-ro (default)  the store refuses every change from now on
 *       (so its unmount writes no checkpoint of the damaged view) and the
 *       kernel mount is switched to read-only (mount(2) MS_REMOUNT|MS_RDONLY
 *       from a helper thread; needs root — without it every change still
 *       gets EROFS and the log says the kernel mount still shows rw);
 *   errors=continue  go on serving, read-write; no checkpoint is written;
 *   errors=unmount   the store goes read-only and the mount is detached
 *       (umount2 MNT_DETACH as root, else fusermount3 -u -z); the daemon
 *       then exits as after any unmount.
 * Runs in request threads: the remount/unmount happens in a detached thread
 * because the kernel may send requests while remounting.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "fs/fs_int.h"

int tslab_errors_parse(const char *s, enum tslab_errors *out)
{
	if (!s || !strcmp(s, "remount-ro"))
		*out = TSLAB_ERRORS_REMOUNT_RO;
	else if (!strcmp(s, "continue"))
		*out = TSLAB_ERRORS_CONTINUE;
	else if (!strcmp(s, "unmount"))
		*out = TSLAB_ERRORS_UNMOUNT;
	else
		return -EINVAL;
	return 0;
}

const char *tslab_errors_name(enum tslab_errors e)
{
	return e == TSLAB_ERRORS_CONTINUE  ? "continue"
	       : e == TSLAB_ERRORS_UNMOUNT ? "unmount"
	                                   : "remount-ro";
}

int tslab_kernel_ro(struct tslab_fs *fs)
{
	struct statvfs sv;
	unsigned long fl = MS_REMOUNT | MS_RDONLY;

	if (!fs->mountpoint)
		return -EINVAL;
	if (statvfs(fs->mountpoint, &sv) == 0) {
		if (sv.f_flag & ST_NOSUID)
			fl |= MS_NOSUID;
		if (sv.f_flag & ST_NODEV)
			fl |= MS_NODEV;
		if (sv.f_flag & ST_NOEXEC)
			fl |= MS_NOEXEC;
		if (sv.f_flag & ST_RDONLY)
			return 0;
	}
	if (mount(NULL, fs->mountpoint, NULL, fl, NULL)) {
		int err = errno;

		tslab_log(LOG_ERR,
		          "%s: cannot remount %s read-only (%s): the mount still shows "
		          "rw, but every change is answered with EROFS",
		          fs->device, fs->mountpoint, strerror(err));
		return -err;
	}
	tslab_log(LOG_ERR, "%s: %s remounted read-only", fs->device, fs->mountpoint);
	return 0;
}

static void detach_mount(struct tslab_fs *fs)
{
	pid_t pid;

	if (!fs->mountpoint)
		return;
	if (umount2(fs->mountpoint, MNT_DETACH) == 0)
		return;
	pid = fork();
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", fs->mountpoint,
		       (char *)NULL);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

static void *policy_main(void *arg)
{
	struct tslab_fs *fs = arg;

	if (fs->errors == TSLAB_ERRORS_UNMOUNT)
		detach_mount(fs);
	else
		tslab_kernel_ro(fs);
	return NULL;
}

void tslab_damage(struct tslab_fs *fs, int err, const char *what)
{
	pthread_t t;

	if (fs->errors == TSLAB_ERRORS_CONTINUE) {
		tslab_log(LOG_ERR, "%s: %s: %s (errors=continue: going on)", fs->device,
		          what, strerror(-err));
		return;
	}
	if (atomic_exchange(&fs->went_ro, true))
		return;
	slab_set_read_only(fs->st);
	tslab_log(LOG_ERR, "%s: %s: %s; errors=%s: the filesystem is now read-only%s",
	          fs->device, what, strerror(-err), tslab_errors_name(fs->errors),
	          fs->errors == TSLAB_ERRORS_UNMOUNT ? " and is being unmounted" : "");
	if (pthread_create(&t, NULL, policy_main, fs) == 0)
		pthread_detach(t);
}
