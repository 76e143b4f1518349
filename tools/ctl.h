/* SPDX-License-Identifier: MIT */
/*
 * tslabctl internals. Both sources — a mounted filesystem (the control
 * attributes user.tslab.epochs / .zonemap / .gc on its root) and an
 * unmounted image or device (read-only, through the slab library) — yield
 * the same texts, whose format is in fs/policy.c and tslabctl(8); one
 * parser turns them into a struct ctl_view.
 */
#ifndef TSLAB_CTL_H
#define TSLAB_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ctl_epoch {
	uint32_t id;
	char path[2048];
	uint64_t files, bytes, pages;
	uint32_t zones;
	int64_t created, last_write;
	int sealed;
	char due[32]; /* seconds, or "-" */
};

struct ctl_zone {
	uint32_t zone;
	char cond[16], use[24], owner[16];
	uint64_t wp, live;
	uint32_t owners;
};

struct ctl_view {
	bool mounted;
	uint64_t capacity; /* bytes per zone */
	uint32_t max_active, max_open;
	struct ctl_zone *z;
	size_t nz;
	struct ctl_epoch *e;
	size_t ne;
	char *gc; /* "key value" lines */
};

/* source.c: fill the texts (malloc'd) from PATH. -errno, message printed. */
struct ctl_texts {
	char *epochs, *zones, *gc;
	bool mounted;
	char root[4096]; /* mounted: the mount's root directory */
};
int ctl_load(const char *path, struct ctl_texts *t);
void ctl_texts_free(struct ctl_texts *t);

/* image.c: the same texts from an unmounted image or device. */
int ctl_image_texts(const char *path, struct ctl_texts *t);

/* view.c: parse and print. */
int ctl_parse(const struct ctl_texts *t, struct ctl_view *v);
void ctl_view_free(struct ctl_view *v);
void ctl_print_stat(const struct ctl_view *v, bool json);
void ctl_print_zones(const struct ctl_view *v, bool json, bool color);
void ctl_print_gc(const struct ctl_view *v, bool json);

#endif /* TSLAB_CTL_H */
