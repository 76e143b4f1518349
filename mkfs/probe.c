/* SPDX-License-Identifier: MIT */
/*
 * What is already on a target: tslabfs (through its own superblock reader)
 * or another filesystem / container (by the on-disk signatures below).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mkfs/mkfs.h"
#include "slab/slab.h"
#include "zns/zns.h"

#define MKFS_PROBE_LEN (128u << 10)

struct mkfs_sig {
	const char *name;
	size_t off;
	const char *magic;
	size_t len;
};

/* Signatures at fixed offsets from the start of the target. */
static const struct mkfs_sig mkfs_sigs[] = {
    {"ext2/ext3/ext4", 0x438, "\x53\xef", 2},
    {"xfs", 0, "XFSB", 4},
    {"btrfs", 0x10040, "_BHRfS_M", 8},
    {"f2fs", 0x400, "\x10\x20\xf5\xf2", 4},
    {"LUKS", 0, "LUKS\xba\xbe", 6},
    {"squashfs", 0, "hsqs", 4},
    {"swap", 4086, "SWAPSPACE2", 10},
    {"iso9660", 0x8001, "CD001", 5},
    {"GPT partition table", 512, "EFI PART", 8},
    {"vfat", 0x52, "FAT32   ", 8},
    {"vfat", 0x36, "FAT16   ", 8},
    {"vfat", 0x36, "FAT12   ", 8},
};

const char *mkfs_signature(const uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < sizeof(mkfs_sigs) / sizeof(mkfs_sigs[0]); i++) {
		const struct mkfs_sig *s = &mkfs_sigs[i];

		if (s->off + s->len <= len && !memcmp(buf + s->off, s->magic, s->len))
			return s->name;
	}
	return NULL;
}

void mkfs_uuid_str(const uint8_t u[16], char out[37])
{
	snprintf(out, 37,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
	         u[12], u[13], u[14], u[15]);
}

/* 1 and a description in WHAT when TARGET holds tslabfs, 0 when not. */
static int mkfs_find_tslabfs(const char *target, char *what, size_t len)
{
	struct slab_sb_info sb;
	struct zns_dev *dev;
	char uuid[37];
	int ret;

	if (zns_open(target, ZNS_OPEN_RDONLY, &dev))
		return 0;
	ret = slab_sb_read(dev, &sb);
	zns_close(dev);
	if (ret == -ENODATA)
		return 0;
	if (ret) {
		snprintf(what, len, "a damaged or newer tslabfs (%s)", strerror(-ret));
		return 1;
	}
	mkfs_uuid_str(sb.uuid, uuid);
	snprintf(what, len, "tslabfs (label '%s', uuid %s)", sb.label, uuid);
	return 1;
}

/* Read the first bytes of a target through the page cache (a zoned device
 * reads fine below its write pointers and returns zeroes above). */
static const char *mkfs_find_foreign(const char *target)
{
	static uint8_t buf[MKFS_PROBE_LEN];
	ssize_t n;
	int fd;

	fd = open(target, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	n = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (n <= 0)
		return NULL;
	return mkfs_signature(buf, (size_t)n);
}

int mkfs_refuse_existing(const char *target, bool force)
{
	char what[128];
	const char *foreign;

	if (!mkfs_find_tslabfs(target, what, sizeof(what))) {
		foreign = mkfs_find_foreign(target);
		if (!foreign)
			return 0;
		snprintf(what, sizeof(what), "a %s filesystem", foreign);
	}
	if (force) {
		fprintf(stderr, "mkfs.tslabfs: overwriting %s on %s (--force)\n", what,
		        target);
		return 0;
	}
	fprintf(stderr,
	        "mkfs.tslabfs: %s already contains %s.\n"
	        "Use -f to overwrite it; everything on it will be lost.\n",
	        target, what);
	return -EEXIST;
}
