/* SPDX-License-Identifier: MIT */
/*
 * Is a target in use? Checked before mkfs.tslabfs changes a byte of it:
 * a mounted target (its path or device is the source of an entry of
 * /proc/mounts), a block device someone holds exclusively (O_EXCL fails
 * with EBUSY: a kernel mount, a device mapper or another mkfs), or a
 * target a running tslabfs daemon holds (its exclusive flock, see
 * ZNS_OPEN_EXCL).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mkfs/mkfs.h"

/* Undo the octal escapes (\040 for a space...) of a /proc/mounts field. */
static void mkfs_unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d++ =
			    (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* Whether mount source SRC names the target (same file or same device). */
static bool mkfs_same_target(const char *src, const struct stat *tst)
{
	struct stat sst;

	if (src[0] != '/' || stat(src, &sst) < 0)
		return false;
	if (S_ISBLK(tst->st_mode))
		return S_ISBLK(sst.st_mode) && sst.st_rdev == tst->st_rdev;
	return sst.st_dev == tst->st_dev && sst.st_ino == tst->st_ino;
}

int mkfs_find_mount(const char *target, const char *mounts, char *mnt, size_t len)
{
	struct stat tst;
	char line[3 * PATH_MAX];
	FILE *f;
	int found = 0;

	if (stat(target, &tst) < 0)
		return 0;
	f = fopen(mounts, "re");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *save = NULL, *src = strtok_r(line, " \t\n", &save);
		char *dir = strtok_r(NULL, " \t\n", &save);

		if (!src || !dir)
			continue;
		mkfs_unescape(src);
		if (!mkfs_same_target(src, &tst))
			continue;
		mkfs_unescape(dir);
		snprintf(mnt, len, "%s", dir);
		found = 1;
	}
	fclose(f);
	return found;
}

int mkfs_refuse_busy(const char *target)
{
	char mnt[PATH_MAX];
	struct stat st;
	int fd, ret = 0;

	if (stat(target, &st) < 0)
		return 0; /* missing: created later */
	if (mkfs_find_mount(target, "/proc/mounts", mnt, sizeof(mnt))) {
		fprintf(stderr, "mkfs.tslabfs: %s is mounted on %s; unmount it first\n",
		        target, mnt);
		return -EBUSY;
	}
	if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
		return 0; /* zns_probe() explains what is wrong with it */
	fd = open(target, O_RDONLY | O_CLOEXEC | (S_ISBLK(st.st_mode) ? O_EXCL : 0));
	if (fd < 0) {
		if (errno == EBUSY) {
			fprintf(stderr,
			        "mkfs.tslabfs: %s is in use (mounted or held open "
			        "exclusively); nothing was written\n",
			        target);
			return -EBUSY;
		}
		return 0; /* opening it for the format reports the error */
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			fprintf(stderr,
			        "mkfs.tslabfs: %s is in use by a running tslabfs "
			        "(it holds the target's lock); unmount it first, "
			        "nothing was written\n",
			        target);
			ret = -EBUSY;
		}
	} else {
		flock(fd, LOCK_UN);
	}
	close(fd);
	return ret;
}
