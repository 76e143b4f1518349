/* SPDX-License-Identifier: MIT */
/*
 * tslabctl: figures of an unmounted image or device, read-only. The store
 * is mounted read-only through the slab library (recovery only reads); the
 * texts have the format the daemon's control attributes use (fs/policy.c).
 * An image a daemon has open (its exclusive lock) is refused: ask the mount.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "slab/slab.h"
#include "tools/ctl.h"
#include "zns/zns.h"

/* Object kind of an inode (fs/fs_int.h, TSLAB_KIND_INODE). */
#define KIND_INODE 1

struct dir {
	slab_handle_t h, parent;
	char name[SLAB_NAME_MAX + 1];
};

struct etimes {
	uint32_t id;
	int64_t created, last_write; /* ns, s */
	slab_handle_t dir;           /* the epoch directory, 0 = none seen */
};

struct scan {
	struct dir *dirs; /* directories of the root epoch + epoch dirs */
	size_t nd, cd;
	struct etimes *et; /* indexed by epoch slot (id >> 8) */
	int err;
};

#define ESLOTS 65536u

static int scan_cb(void *ctx, slab_handle_t h, const struct slab_obj *o)
{
	struct scan *s = ctx;
	uint32_t ep = slab_handle_epoch(h);
	struct etimes *t = &s->et[(ep >> 8) % ESLOTS];
	int64_t c = o->attr.ctime_ns, m = o->attr.mtime_ns / 1000000000;
	int64_t w = c / 1000000000 > m ? c / 1000000000 : m;

	if (t->id != ep) {
		memset(t, 0, sizeof(*t));
		t->id = ep;
	}
	if (!t->created || c < t->created)
		t->created = c;
	if (w > t->last_write)
		t->last_write = w;
	if (o->kind != KIND_INODE || (o->attr.mode & S_IFMT) != S_IFDIR)
		return 0;
	bool epoch_dir = ep != slab_handle_epoch(o->parent) && o->parent;

	if (ep != 0 && !epoch_dir)
		return 0;
	if (epoch_dir)
		t->dir = h;
	if (s->nd == s->cd) {
		size_t nc = s->cd ? s->cd * 2 : 256;
		struct dir *p = realloc(s->dirs, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->dirs = p;
		s->cd = nc;
	}
	struct dir *d = &s->dirs[s->nd++];

	d->h = h;
	d->parent = o->parent;
	memcpy(d->name, o->name, o->name_len);
	d->name[o->name_len] = 0;
	return 0;
}

static int dir_cmp(const void *a, const void *b)
{
	const struct dir *x = a, *y = b;

	return x->h < y->h ? -1 : x->h > y->h;
}

static const struct dir *dir_find(const struct scan *s, slab_handle_t h)
{
	struct dir key = {.h = h};

	return bsearch(&key, s->dirs, s->nd, sizeof(*s->dirs), dir_cmp);
}

static void dir_path(const struct scan *s, slab_handle_t h, char *out, size_t cap)
{
	const struct dir *chain[64];
	size_t n = 0, pos = 0;

	for (const struct dir *d = dir_find(s, h);
	     d && d->h != SLAB_HANDLE_ROOT && n < 64; d = dir_find(s, d->parent))
		chain[n++] = d;
	out[0] = 0;
	while (n-- > 0) {
		int w = snprintf(out + pos, cap - pos, "/%s", chain[n]->name);

		if (w < 0 || (size_t)w >= cap - pos)
			break;
		pos += (size_t)w;
	}
	if (!pos)
		snprintf(out, cap, h == SLAB_HANDLE_ROOT ? "/" : "?");
}

struct tb {
	char *s;
	size_t len, cap;
};

static void tb_add(struct tb *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void tb_add(struct tb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t nc = (b->len + (size_t)n + 1) * 2;
		char *p = realloc(b->s, nc);

		if (!p)
			return;
		b->s = p;
		b->cap = nc;
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static char *epochs_text(struct slab_store *st, struct scan *s)
{
	struct tb b = {0};
	int n = slab_epoch_list(st, NULL, 0);
	uint32_t *ids = calloc((size_t)n + 1, sizeof(*ids));

	if (!ids)
		return NULL;
	n = slab_epoch_list(st, ids, (uint32_t)n + 1);
	tb_add(&b, "id\tpath\tfiles\tbytes\tzones\tpages\tcreated\tlast_write\tsealed\t"
	           "retention_due\n");
	for (int i = 0; i < n; i++) {
		struct etimes *t = &s->et[(ids[i] >> 8) % ESLOTS];
		struct slab_epoch_stats es;
		char path[1024];

		if (slab_epoch_stats(st, ids[i], &es))
			continue;
		if (t->id != ids[i])
			memset(t, 0, sizeof(*t));
		dir_path(s, ids[i] == 0 ? SLAB_HANDLE_ROOT : t->dir, path, sizeof(path));
		tb_add(&b,
		       "%" PRIu32 "\t%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu32 "\t%" PRIu64
		       "\t%" PRId64 "\t%" PRId64 "\t%d\t-\n",
		       ids[i], path, es.objects, es.live_bytes, es.zones, es.pages,
		       ids[i] == 0 ? 0 : t->created / 1000000000, t->last_write,
		       es.sealed);
	}
	free(ids);
	return b.s;
}

static const char *const cond_names[] = {"conv",   "empty", "imp_open", "exp_open",
                                         "closed", "full",  "ro",       "offline"};
static const char *const use_names[] = {"free", "open", "full", "meta", "gc", "bad"};

static char *zones_text(struct zns_dev *dev, struct slab_store *st)
{
	const struct zns_geometry *g = zns_geometry(dev);
	int n = slab_zone_map(st, NULL, 0);
	struct slab_zone_info *zi = calloc((size_t)n, sizeof(*zi));
	struct zns_zone *rep = calloc((size_t)n, sizeof(*rep));
	struct tb b = {0};

	if (zi && rep && slab_zone_map(st, zi, (uint32_t)n) == n &&
	    zns_zone_report(dev, 0, (uint32_t)n, rep) >= 0) {
		tb_add(&b, "zones %d capacity %" PRIu64 " max_active %u max_open %u\n", n,
		       g->zone_capacity, g->max_active, g->max_open);
		for (int z = 0; z < n; z++) {
			char owner[16] = "-";

			if (zi[z].owner != SLAB_ZONE_NO_OWNER)
				snprintf(owner, sizeof(owner), "%" PRIu32, zi[z].owner);
			tb_add(&b,
			       "%d\t%s\t%" PRIu64 "\t%s%s\t%s\t%" PRIu32 "\t%" PRIu64
			       "\n",
			       z,
			       rep[z].cond <= ZNS_COND_OFFLINE ? cond_names[rep[z].cond]
			                                       : "?",
			       rep[z].wp, use_names[zi[z].use], zi[z].root ? "/root" : "",
			       owner, zi[z].owners, zi[z].live);
		}
	}
	free(zi);
	free(rep);
	return b.s;
}

static char *gc_text(struct slab_store *st)
{
	struct slab_counters c;
	struct tb b = {0};

	slab_counters_get(st, &c);
	tb_add(&b,
	       "gc_runs %" PRIu64 "\ngc_bytes_moved %" PRIu64 "\nbytes_live %" PRIu64
	       "\nbytes_dead %" PRIu64 "\nzone_resets %" PRIu64 "\n",
	       c.gc_runs, c.gc_bytes_moved, c.bytes_live, c.bytes_dead, c.zone_resets);
	return b.s;
}

int ctl_image_texts(const char *path, struct ctl_texts *t)
{
	struct slab_mount_opts mo = {.read_only = true};
	struct scan s = {0};
	struct slab_store *st;
	struct zns_dev *dev;
	int err = zns_open(path, ZNS_OPEN_RDONLY | ZNS_OPEN_EXCL, &dev);

	if (err == -EBUSY) {
		fprintf(stderr,
		        "tslabctl: %s is in use (mounted? then name the mountpoint)\n",
		        path);
		return err;
	}
	if (err) {
		fprintf(stderr, "tslabctl: %s: %s\n", path,
		        err == -EMEDIUMTYPE ? "not a zoned device or tslabfs image"
		                            : strerror(-err));
		return err;
	}
	s.et = calloc(ESLOTS, sizeof(*s.et));
	if (!s.et) {
		err = -ENOMEM;
		goto close_dev;
	}
	err = slab_mount(dev, &mo, scan_cb, &s, &st);
	if (err) {
		fprintf(stderr, "tslabctl: %s: %s\n", path,
		        err == -ENODATA ? "no tslabfs filesystem" : strerror(-err));
		goto free_scan;
	}
	qsort(s.dirs, s.nd, sizeof(*s.dirs), dir_cmp);
	t->epochs = epochs_text(st, &s);
	t->zones = zones_text(dev, st);
	t->gc = gc_text(st);
	if (!t->epochs || !t->zones || !t->gc) {
		ctl_texts_free(t);
		err = -ENOMEM;
	}
	slab_unmount(st);
free_scan:
	free(s.dirs);
	free(s.et);
close_dev:
	zns_close(dev);
	return err;
}
