/* SPDX-License-Identifier: MIT */
/*
 * tslabctl: where the figures come from. A directory on a mounted tslabfs
 * answers the root's control attributes (any directory inside the mount
 * works: the root is found by walking up); anything else is opened as an
 * unmounted image or device (image.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "tools/ctl.h"

static int get_text(const char *dir, const char *name, char **out)
{
	ssize_t n = getxattr(dir, name, NULL, 0);
	char *buf;

	for (int tries = 0; n >= 0 && tries < 8; tries++) {
		buf = malloc((size_t)n + 4097);
		if (!buf)
			return -ENOMEM;
		ssize_t m = getxattr(dir, name, buf, (size_t)n + 4096);

		if (m >= 0) {
			buf[m] = 0;
			*out = buf;
			return 0;
		}
		free(buf);
		if (errno != ERANGE)
			return -errno;
		n = getxattr(dir, name, NULL, 0); /* grew meanwhile */
	}
	return -errno;
}

/* The tslabfs root at or above DIR, or -ENODATA when DIR is not on one. */
static int find_root(const char *path, char *root, size_t cap)
{
	char buf[PATH_MAX];

	if (!realpath(path, buf))
		return -errno;
	for (;;) {
		if (getxattr(buf, "user.tslab.zonemap", NULL, 0) >= 0) {
			snprintf(root, cap, "%s", buf);
			return 0;
		}
		char *slash = strrchr(buf, '/');

		if (!slash || slash == buf)
			return -ENODATA;
		*slash = 0;
	}
}

int ctl_load(const char *path, struct ctl_texts *t)
{
	struct stat sb;
	int err;

	memset(t, 0, sizeof(*t));
	if (stat(path, &sb)) {
		fprintf(stderr, "tslabctl: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(sb.st_mode))
		return ctl_image_texts(path, t);
	err = find_root(path, t->root, sizeof(t->root));
	if (err) {
		fprintf(stderr, "tslabctl: %s: not on a mounted tslabfs (%s)\n", path,
		        strerror(-err));
		return err;
	}
	t->mounted = true;
	err = get_text(t->root, "user.tslab.epochs", &t->epochs);
	if (!err)
		err = get_text(t->root, "user.tslab.zonemap", &t->zones);
	if (!err)
		err = get_text(t->root, "user.tslab.gc", &t->gc);
	if (err) {
		fprintf(stderr, "tslabctl: %s: reading the control attributes: %s\n",
		        t->root, strerror(-err));
		ctl_texts_free(t);
	}
	return err;
}

void ctl_texts_free(struct ctl_texts *t)
{
	free(t->epochs);
	free(t->zones);
	free(t->gc);
	t->epochs = t->zones = t->gc = NULL;
}
