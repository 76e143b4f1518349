// SPDX-License-Identifier: MIT
/*
 * fsck.tslabfs: check a tslabfs filesystem and repair what damage allows.
 *
 *   fsck.tslabfs [-n | -p | -y] [-f] DEVICE
 *
 * The check is an in-process mount of the store in check mode (slab's own
 * verification of every page and record, every zone scanned from offset 0,
 * the checkpoint ignored), so fsck and mount never disagree on what is
 * valid; the checkpoint, when it loads, only tells how far each zone was
 * written when it was taken (a zone that now ends earlier is damaged). Repair drops every
 * epoch holding damage (the only thing that cannot bring back an older version or a
 * deleted file: the drop record kills every record of the epoch), resets the damaged
 * zones, clears the error mark and writes a fresh checkpoint. It never invents data; it
 * lists by path what was lost. Damage that belongs to no single non-root epoch (journal,
 * root epoch) is reported and left: exit 4.
 *
 * Exit status (fsck(8)): 0 clean, 1 errors corrected, 4 errors left
 * uncorrected, 8 operational error, 16 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "slab/slab.h"
#include "zns/zns.h"

#define FSCK_OK        0
#define FSCK_CORRECTED 1
#define FSCK_UNCORRECT 4
#define FSCK_ERROR     8
#define FSCK_USAGE     16

/* Object kinds as fs/ stores them (docs/design.md, "Namespace"). */
#define KIND_INODE 1
#define KIND_LINK  2

struct node {
	slab_handle_t h, parent;
	slab_handle_t target; /* KIND_LINK: the inode it names */
	uint8_t kind, name_len;
	char name[SLAB_NAME_MAX + 1];
};

struct nodes {
	struct node *v;
	size_t n, cap;
};

static int collect(void *ctx, slab_handle_t h, const struct slab_obj *o)
{
	struct nodes *ns = ctx;

	if (o->kind != KIND_INODE && o->kind != KIND_LINK)
		return 0;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? ns->cap * 2 : 1024;
		struct node *v = realloc(ns->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ns->v = v;
		ns->cap = cap;
	}
	struct node *x = &ns->v[ns->n++];

	x->h = h;
	x->parent = o->parent;
	x->kind = o->kind;
	x->target = 0;
	if (o->kind == KIND_LINK && o->data && o->data_len == 8)
		for (unsigned i = 0; i < 8; i++)
			x->target |= (slab_handle_t)((const uint8_t *)o->data)[i]
			             << (8 * i);
	x->name_len = o->name_len;
	memcpy(x->name, o->name, o->name_len);
	x->name[o->name_len] = 0;
	return 0;
}

static int node_cmp(const void *a, const void *b)
{
	const struct node *x = a, *y = b;

	return x->h < y->h ? -1 : x->h > y->h;
}

static const struct node *node_find(const struct nodes *ns, slab_handle_t h)
{
	struct node key = {.h = h};

	return bsearch(&key, ns->v, ns->n, sizeof(*ns->v), node_cmp);
}

/* An epoch's top directory is named by a link in the parent's epoch. */
static const struct node *named(const struct nodes *ns, const struct node *n)
{
	if (n->name_len || n->h == SLAB_HANDLE_ROOT)
		return n;
	for (size_t i = 0; i < ns->n; i++)
		if (ns->v[i].kind == KIND_LINK && ns->v[i].target == n->h)
			return &ns->v[i];
	return n;
}

/* The path of N, built from its parents (at most 64 levels shown). */
static void node_path(const struct nodes *ns, const struct node *n, char *out,
                      size_t size)
{
	const struct node *chain[64];
	size_t k = 0, len = 0;

	for (const struct node *c = named(ns, n); c && k < 64;) {
		chain[k++] = c;
		if (c->parent == SLAB_HANDLE_ROOT || c->h == SLAB_HANDLE_ROOT)
			break;
		c = node_find(ns, c->parent);
		if (c)
			c = named(ns, c);
		if (!c) {
			len = (size_t)snprintf(out, size, "?");
			break;
		}
	}
	out[len] = 0;
	while (k-- > 0 && len < size) {
		if (chain[k]->h == SLAB_HANDLE_ROOT)
			continue;
		len += (size_t)snprintf(out + len, size - len, "/%s", chain[k]->name);
	}
	if (!out[0])
		snprintf(out, size, "/");
}

/* Print the paths of every file of EPOCH (what its drop loses). */
static size_t print_epoch_paths(const struct nodes *ns, uint32_t epoch, const char *tag)
{
	char path[4096];
	size_t n = 0;

	for (size_t i = 0; i < ns->n; i++) {
		if (slab_handle_epoch(ns->v[i].h) != epoch)
			continue;
		node_path(ns, &ns->v[i], path, sizeof(path));
		printf("  %s %s\n", tag, path);
		n++;
	}
	return n;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: fsck.tslabfs [-n | -p | -y] [-f] DEVICE\n"
	        "\n"
	        "Check the tslabfs filesystem on DEVICE and repair what damage allows.\n"
	        "\n"
	        "  -n   check only: change nothing, list every problem\n"
	        "  -p   repair automatically what can be repaired safely\n"
	        "  -a   same as -p\n"
	        "  -y   same as -p (tslabfs asks no questions)\n"
	        "  -f   check even if the filesystem seems clean (always done)\n"
	        "  -h   show this help and exit\n"
	        "  -V   show the version and exit\n"
	        "\n"
	        "Exit status: 0 clean, 1 errors corrected, 4 errors left\n"
	        "uncorrected, 8 operational error, 16 usage error.\n");
}

struct check {
	const char *dev_path;
	struct zns_dev *dev;
	struct slab_store *st;
	struct nodes ns;
	struct slab_damage *dmg;
	size_t ndmg;
	bool mark;
};

static int check_mount(struct check *c, bool rw)
{
	struct slab_mount_opts mo = {.read_only = !rw, .check = true};
	int ret;

	free(c->ns.v);
	memset(&c->ns, 0, sizeof(c->ns));
	ret = slab_mount(c->dev, &mo, collect, &c->ns, &c->st);
	if (ret)
		return ret;
	qsort(c->ns.v, c->ns.n, sizeof(*c->ns.v), node_cmp);
	c->ndmg = slab_damage_list(c->st, NULL, 0);
	free(c->dmg);
	c->dmg = calloc(c->ndmg ? c->ndmg : 1, sizeof(*c->dmg));
	if (!c->dmg)
		return -ENOMEM;
	slab_damage_list(c->st, c->dmg, c->ndmg);
	c->mark = slab_has_error_mark(c->st);
	return 0;
}

/*
 * Orphans: names whose parent is gone, and inodes unlinked while open
 * (parent 0). They are not damage: the next mount frees them (fs/recover.c)
 * and nothing of them is served; fsck lists them so that nothing goes
 * unseen.
 */
static void report_orphans(const struct check *c)
{
	size_t n = 0;

	for (size_t i = 0; i < c->ns.n; i++) {
		const struct node *x = &c->ns.v[i];

		if (x->h == SLAB_HANDLE_ROOT || x->parent == SLAB_HANDLE_ROOT ||
		    (x->parent && node_find(&c->ns, x->parent)))
			continue;
		if (!n++)
			printf("%s: orphans (freed by the next mount):\n", c->dev_path);
		printf("  object %#llx '%s': %s\n", (unsigned long long)x->h, x->name,
		       x->parent ? "its directory is gone" : "unlinked while open");
	}
}

static void report(const struct check *c)
{
	for (size_t i = 0; i < c->ndmg; i++) {
		const struct slab_damage *d = &c->dmg[i];

		if (d->epoch == SLAB_DAMAGE_NO_EPOCH) {
			printf("%s: zone %u offset %llu: damaged %s; the files affected "
			       "cannot "
			       "be told\n",
			       c->dev_path, d->zone, (unsigned long long)d->offset,
			       d->journal ? "journal page (records of any epoch)"
			                  : "page of an unknown epoch");
			continue;
		}
		printf("%s: zone %u offset %llu: damaged page of epoch %u; files "
		       "affected:\n",
		       c->dev_path, d->zone, (unsigned long long)d->offset,
		       d->epoch >> 8);
		bool seen = false;

		for (size_t k = 0; k < i; k++)
			seen |= c->dmg[k].epoch == d->epoch;
		if (seen)
			printf("  (as above)\n");
		else if (!print_epoch_paths(&c->ns, d->epoch, "affected"))
			printf("  (none readable)\n");
	}
	if (c->mark)
		printf("%s: the error mark is set (damage was found while mounted)\n",
		       c->dev_path);
	report_orphans(c);
}

static int repair(struct check *c)
{
	int ret;

	/* decided on the read-only view: an unrepairable store is not even
	 * mounted writable */
	if (c->ndmg && slab_damage_repairable(c->st)) {
		printf("%s: damage that cannot be pinned to one epoch (a page header, "
		       "the journal, the root epoch, or a zone other epochs' live data "
		       "share): not repaired, nothing changed; restore from a backup\n",
		       c->dev_path);
		return FSCK_UNCORRECT;
	}
	slab_unmount(c->st);
	c->st = NULL;
	ret = check_mount(c, true);
	if (ret) {
		fprintf(stderr, "fsck.tslabfs: %s: cannot mount for repair: %s\n",
		        c->dev_path, strerror(-ret));
		return FSCK_ERROR;
	}
	for (size_t i = 0; i < c->ndmg; i++) {
		bool seen = false;

		for (size_t k = 0; k < i; k++)
			seen |= c->dmg[k].epoch == c->dmg[i].epoch;
		if (!seen && c->dmg[i].epoch != SLAB_DAMAGE_NO_EPOCH &&
		    (c->dmg[i].epoch >> 8) != 0)
			print_epoch_paths(&c->ns, c->dmg[i].epoch, "lost");
	}
	ret = c->ndmg ? slab_damage_repair(c->st) : slab_error_mark_clear(c->st);
	if (ret == -EUCLEAN) {
		printf("%s: damage that cannot be pinned to one epoch: not repaired; "
		       "restore from a backup\n",
		       c->dev_path);
		return FSCK_UNCORRECT;
	}
	if (ret) {
		fprintf(stderr, "fsck.tslabfs: %s: repair failed: %s\n", c->dev_path,
		        strerror(-ret));
		return FSCK_ERROR;
	}
	printf("%s: repaired: %zu damaged place(s) dropped with their epochs, error "
	       "mark cleared\n",
	       c->dev_path, c->ndmg);
	return FSCK_CORRECTED;
}

static int run(struct check *c, bool repair_ok)
{
	struct slab_sb_info sb;
	int ret = zns_open(c->dev_path, repair_ok ? 0 : ZNS_OPEN_RDONLY, &c->dev);

	if (ret) {
		fprintf(stderr, "fsck.tslabfs: cannot open %s: %s\n", c->dev_path,
		        ret == -EMEDIUMTYPE ? "not a tslabfs device" : strerror(-ret));
		return FSCK_ERROR;
	}
	ret = slab_sb_read(c->dev, &sb);
	if (ret) {
		fprintf(stderr, "fsck.tslabfs: %s: %s\n", c->dev_path,
		        ret == -ENODATA ? "no tslabfs filesystem"
		        : ret == -EOPNOTSUPP
		            ? "filesystem of a newer or unknown format: not checked"
		            : "no valid superblock");
		ret = ret == -EUCLEAN ? FSCK_UNCORRECT : FSCK_ERROR;
		goto close_dev;
	}
	ret = check_mount(c, false);
	if (ret) {
		fprintf(stderr, "fsck.tslabfs: %s: cannot be read: %s\n", c->dev_path,
		        strerror(-ret));
		ret = ret == -EUCLEAN ? FSCK_UNCORRECT : FSCK_ERROR;
		goto close_dev;
	}
	report(c);
	if (!c->ndmg && !c->mark) {
		printf("%s: clean, %zu files and directories\n", c->dev_path, c->ns.n);
		ret = FSCK_OK;
	} else if (!repair_ok) {
		printf("%s: %zu problem(s), not repaired (-n)\n", c->dev_path,
		       c->ndmg + (c->mark ? 1 : 0));
		ret = FSCK_UNCORRECT;
	} else {
		ret = repair(c);
	}
	if (c->st) {
		int r = slab_unmount(c->st);

		if (r && ret < FSCK_UNCORRECT) {
			fprintf(stderr, "fsck.tslabfs: %s: unmount: %s\n", c->dev_path,
			        strerror(-r));
			ret = FSCK_ERROR;
		}
	}
close_dev:
	zns_close(c->dev);
	return ret;
}

int main(int argc, char **argv)
{
	struct check c = {0};
	bool no = false, yes = false;
	int opt, ret;

	while ((opt = getopt(argc, argv, "npayfhV")) != -1) {
		switch (opt) {
		case 'n':
			no = true;
			break;
		case 'p':
		case 'a':
		case 'y':
			yes = true;
			break;
		case 'f':
			break;
		case 'h':
			usage(stdout);
			return FSCK_OK;
		case 'V':
			printf("fsck.tslabfs version %s\n", TSLAB_VERSION);
			return FSCK_OK;
		default:
			usage(stderr);
			return FSCK_USAGE;
		}
	}
	if (optind + 1 != argc || (no && yes)) {
		usage(stderr);
		return FSCK_USAGE;
	}
	c.dev_path = argv[optind];
	/* slab reports what it finds through syslog(3): show it here too */
	openlog("fsck.tslabfs", LOG_PERROR, LOG_USER);
	ret = run(&c, yes);
	fflush(stdout);
	free(c.ns.v);
	free(c.dmg);
	return ret;
}
