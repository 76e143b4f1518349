// SPDX-License-Identifier: MIT
/*
 * tslab-wlog-apply LOG: builds device images as of crash points of a
 * write log (zns/wlog.c), for tests/crash/explore.
 *
 * Reads commands from stdin, one a line, and answers each with one line on
 * stdout, "ok" or "err MESSAGE":
 *   copy SRC DST            sparse copy of an image file (DST replaced)
 *   apply IMG I[:B] ...     open IMG as a zoned device and replay records
 *                           I, ... in the order given; I:B replays only the
 *                           first B logical blocks of write record I (a
 *                           torn write)
 *   count                   "ok N": the number of records in LOG
 * Replay goes through zns_zone_write / reset / finish, so the image keeps
 * the emulator's own encoding and a replay that breaks a device rule
 * (write pointer, open/active limits) is reported, not papered over.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zns/zns.h"

static int sparse_copy(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC), out = -1, ret = 0;
	off_t end, data = 0, hole;

	if (in < 0)
		return -errno;
	end = lseek(in, 0, SEEK_END);
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0 || end < 0 || ftruncate(out, end) < 0) {
		ret = -errno;
		goto close_fds;
	}
	while (data < end) {
		data = lseek(in, data, SEEK_DATA);
		if (data < 0)
			break; /* only a hole left */
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0) {
			ret = -errno;
			break;
		}
		for (off_t a = data, b = data; a < hole;) {
			ssize_t n =
			    copy_file_range(in, &a, out, &b, (size_t)(hole - a), 0);

			if (n <= 0) {
				ret = n < 0 ? -errno : -EIO;
				goto close_fds;
			}
		}
		data = hole;
	}
close_fds:
	if (out >= 0)
		close(out);
	close(in);
	return ret;
}

static int apply(struct zns_wlog_reader *r, char *img, char *save)
{
	struct zns_dev *dev;
	char *tok;
	int ret = zns_open(img, 0, &dev);

	if (ret)
		return ret;
	while ((tok = strtok_r(NULL, " \n", &save))) {
		char *colon = strchr(tok, ':');
		unsigned long i = strtoul(tok, NULL, 10);
		unsigned long b = colon ? strtoul(colon + 1, NULL, 10) : 0;

		ret = zns_wlog_apply(dev, r, i, (uint32_t)b);
		if (ret) {
			fprintf(stdout, "err record %lu: %s\n", i, strerror(-ret));
			zns_close(dev);
			return 1;
		}
	}
	zns_close(dev);
	return 0;
}

int main(int argc, char **argv)
{
	struct zns_wlog_reader *r;
	char *line = NULL;
	size_t cap = 0;
	int ret;

	if (argc != 2 || !strcmp(argv[1], "--help")) {
		fprintf(stderr, "usage: %s LOG   (commands on stdin; see the source)\n",
		        argv[0]);
		return argc == 2 ? 0 : 2;
	}
	ret = zns_wlog_reader_open(argv[1], &r);
	if (ret) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	while (getline(&line, &cap, stdin) > 0) {
		char *save, *cmd = strtok_r(line, " \n", &save);
		char *a = cmd ? strtok_r(NULL, " \n", &save) : NULL;
		char *b;

		if (cmd && !strcmp(cmd, "count")) {
			printf("ok %zu\n", zns_wlog_count(r));
		} else if (cmd && !strcmp(cmd, "copy") && a &&
		           (b = strtok_r(NULL, " \n", &save))) {
			ret = sparse_copy(a, b);
			if (ret)
				printf("err copy: %s\n", strerror(-ret));
			else
				printf("ok\n");
		} else if (cmd && !strcmp(cmd, "apply") && a) {
			ret = apply(r, a, save);
			if (ret < 0)
				printf("err open %s: %s\n", a, strerror(-ret));
			else if (ret == 0)
				printf("ok\n");
		} else {
			printf("err bad command\n");
		}
		fflush(stdout);
	}
	free(line);
	zns_wlog_reader_close(r);
	return 0;
}
