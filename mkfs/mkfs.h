/* SPDX-License-Identifier: MIT */
/* mkfs.tslabfs internals shared by its translation units and unit tests. */
#ifndef TSLAB_MKFS_H
#define TSLAB_MKFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Smallest device: 2 superblock + 2 journal + 4 data zones. */
#define MKFS_MIN_ZONES 8u

int mkfs_parse_size(const char *s, uint64_t *out);

/* Name of a filesystem or container whose signature is in BUF (the first
 * LEN bytes of a target), or NULL. */
const char *mkfs_signature(const uint8_t *buf, size_t len);

/*
 * Refuse (-EEXIST, after telling the user why) to format TARGET when it holds
 * tslabfs or another recognisable filesystem, unless FORCE.
 */
int mkfs_refuse_existing(const char *target, bool force);

/* Whether TARGET (same file or block device) is the source of an entry of
 * the mount table MOUNTS (/proc/mounts format): 1 with its mount point in
 * MNT, else 0. */
int mkfs_find_mount(const char *target, const char *mounts, char *mnt, size_t len);
/*
 * Refuse (-EBUSY, after telling the user why) to format TARGET while it is
 * mounted, held exclusively (block devices) or locked by a running tslabfs.
 * Reads only; a missing TARGET is not busy.
 */
int mkfs_refuse_busy(const char *target);

void mkfs_uuid_str(const uint8_t uuid[16], char out[37]);

#endif /* TSLAB_MKFS_H */
