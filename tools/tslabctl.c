/* SPDX-License-Identifier: MIT */
/*
 * tslabctl: administer tslabfs — epochs, the zone map, sealing, drops, GC
 * and the checker — on a mounted filesystem (through the control
 * attributes, tslabfs(8)) or read-only on an unmounted image or device.
 *
 * Exit status: 0 success, 1 error, 2 usage error; check passes on the
 * checker's own status (fsck conventions).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tools/ctl.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: tslabctl [--json] [--color] COMMAND ARGS\n"
	    "\n"
	    "PATH is a directory on a mounted tslabfs, or an unmounted image file\n"
	    "or device (read-only: stat, zones, gc status).\n"
	    "\n"
	    "Commands:\n"
	    "  stat PATH           every epoch: files, bytes, zones, created, last\n"
	    "                      write, sealed, retention due\n"
	    "  zones PATH          zone map: condition, write pointer, use, owner\n"
	    "                      epoch, live and dead bytes, a bar per zone\n"
	    "  seal EPOCHDIR       seal an epoch: read-only from now on\n"
	    "  drop EPOCHDIR       drop an epoch (what rmdir of it does)\n"
	    "  gc run PATH         collect zones holding dead bytes (mounted)\n"
	    "  gc status PATH      GC counters\n"
	    "  check DEVICE [ARGS] run fsck.tslabfs on an unmounted DEVICE\n"
	    "\n"
	    "Options:\n"
	    "  -j, --json          machine-readable output (stat, zones, gc status)\n"
	    "  -c, --color         colour the zone bars (default: when a terminal)\n"
	    "  -h, --help          this help\n"
	    "\n"
	    "seal, drop and gc run need root or the owner of the directory.\n"
	    "Exit status: 0 success, 1 error, 2 usage error; check: fsck.tslabfs's.\n");
}

static int set_control(const char *path, const char *name, const char *value)
{
	if (setxattr(path, name, value, strlen(value), 0) == 0)
		return 0;
	int e = errno;

	fprintf(stderr, "tslabctl: %s: %s\n", path,
	        e == ENODATA || e == EOPNOTSUPP ? "not a tslabfs mount"
	        : e == EINVAL                   ? "not an epoch directory"
	                                        : strerror(e));
	return 1;
}

static int cmd_view(const char *cmd, const char *path, bool json, bool color)
{
	struct ctl_texts t;
	struct ctl_view v;

	if (ctl_load(path, &t))
		return 1;
	if (ctl_parse(&t, &v)) {
		ctl_texts_free(&t);
		return 1;
	}
	if (!strcmp(cmd, "stat"))
		ctl_print_stat(&v, json);
	else if (!strcmp(cmd, "zones"))
		ctl_print_zones(&v, json, color);
	else
		ctl_print_gc(&v, json);
	ctl_view_free(&v);
	ctl_texts_free(&t);
	return 0;
}

static int cmd_gc(int argc, char **argv, bool json)
{
	struct ctl_texts t;

	if (argc != 2 || (strcmp(argv[0], "run") && strcmp(argv[0], "status"))) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[0], "status"))
		return cmd_view("gc", argv[1], json, false);
	if (ctl_load(argv[1], &t))
		return 1;
	ctl_texts_free(&t);
	if (!t.mounted) {
		fprintf(stderr, "tslabctl: gc run needs a mounted filesystem\n");
		return 1;
	}
	if (set_control(t.root, "user.tslab.gc", "run"))
		return 1;
	return cmd_view("gc", t.root, json, false);
}

/* fsck.tslabfs next to this program (a build tree) or in PATH. */
static int cmd_check(int argc, char **argv)
{
	char self[PATH_MAX], cand[PATH_MAX + 32];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char **args = calloc((size_t)argc + 2, sizeof(*args));

	if (!args)
		return 1;
	args[0] = "fsck.tslabfs";
	for (int i = 0; i < argc; i++)
		args[i + 1] = argv[i];
	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');

		if (slash) {
			*slash = 0;
			const char *rel[] = {"/fsck.tslabfs", "/../mkfs/fsck.tslabfs"};

			for (size_t i = 0; i < 2; i++) {
				snprintf(cand, sizeof(cand), "%s%s", self, rel[i]);
				if (access(cand, X_OK) == 0)
					execv(cand, args);
			}
		}
	}
	execvp("fsck.tslabfs", args);
	fprintf(stderr,
	        "tslabctl: check: fsck.tslabfs is not installed (the checker is not part "
	        "of this build yet); nothing was checked\n");
	free(args);
	return 8; /* fsck: operational error */
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {{"json", no_argument, NULL, 'j'},
	                                      {"color", no_argument, NULL, 'c'},
	                                      {"help", no_argument, NULL, 'h'},
	                                      {NULL, 0, NULL, 0}};
	bool json = false, color = isatty(1);
	int c;

	while ((c = getopt_long(argc, argv, "+jch", lopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'c':
			color = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[0];

	if (!strcmp(cmd, "check"))
		return argc < 2 ? (usage(stderr), 2) : cmd_check(argc - 1, argv + 1);
	if (!strcmp(cmd, "gc"))
		return cmd_gc(argc - 1, argv + 1, json);
	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "stat") || !strcmp(cmd, "zones"))
		return cmd_view(cmd, argv[1], json, color && !json);
	if (!strcmp(cmd, "seal"))
		return set_control(argv[1], "user.tslab.sealed", "1");
	if (!strcmp(cmd, "drop"))
		return set_control(argv[1], "user.tslab.drop", "1");
	fprintf(stderr, "tslabctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
