/* SPDX-License-Identifier: MIT */
/*
 * fs: rebuilding the namespace at mount.
 *
 * slab_mount() hands every live object over in no particular order. The
 * callback only creates the DRAM structures (in the arena of the object's
 * epoch) and remembers them; once all are loaded, names are linked to their
 * parents, links to their inodes and xattrs to their owners. What cannot
 * be attached — an orphan (unlinked while open), a name whose parent is
 * gone, the older of two equal names left by a crash inside a rename — is
 * freed, and counted in the log. A file that lost its name to a newer one
 * but still has hard links keeps living under its first link, as
 * promote_link() (ops.c) would have made it: a rename over a linked file
 * puts the new name first and the promoted link after it, and a crash
 * between the two puts leaves exactly that state.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs/fs_int.h"

struct vec {
	void **v;
	size_t n, cap;
};

struct rec {
	struct tslab_fs *fs;
	struct vec inodes, links, xattrs;
	struct vec xowners;  /* owner handle of xattrs[i], as a uintptr */
	struct vec pending;  /* struct pend, filled by the slab_mount callback */
	struct vec nameless; /* non-directory inodes that lost their name */
	uint64_t bad;
	uint64_t freed;
	bool ro; /* read-only mount: detach what is unreachable, free nothing */
};

static void rec_free(struct rec *r, slab_handle_t h)
{
	if (!r->ro && slab_obj_free(r->fs->st, h) == 0)
		r->freed++;
}

static int vec_push(struct vec *v, void *p)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 1024;
		void **n = realloc(v->v, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		v->v = n;
		v->cap = cap;
	}
	v->v[v->n++] = p;
	return 0;
}

static struct tslab_epoch *rec_epoch(struct tslab_fs *fs, uint32_t id, int *err)
{
	struct tslab_epoch *ep = tslab_epoch_get(fs, id);

	*err = 0;
	if (!ep)
		*err = tslab_epoch_add(fs, id, &ep);
	return *err ? NULL : ep;
}

static int rec_inode(struct rec *r, struct tslab_epoch *ep, slab_handle_t h,
                     const struct slab_obj *o)
{
	struct tslab_inode *ip = tslab_inode_new(ep, h);
	int err;

	if (!ip)
		return -ENOMEM;
	ip->mode = o->attr.mode;
	ip->uid = o->attr.uid;
	ip->gid = o->attr.gid;
	ip->size = o->attr.size;
	ip->atime = o->attr.atime_ns;
	ip->mtime = o->attr.mtime_ns;
	ip->ctime = o->attr.ctime_ns;
	ip->nlink = S_ISDIR(ip->mode) ? 2 : 1;
	err = tslab_dent_set_name(ep, &ip->d, o->parent, o->name, o->name_len);
	if (!err && (S_ISDIR(ip->mode) || o->attr.rdev)) {
		if (!tslab_ext_get(ep, ip))
			err = -ENOMEM;
		else
			ip->ext->rdev = o->attr.rdev;
	}
	if (!err)
		err = slab_obj_set_priv(r->fs->st, h, ip);
	if (!err)
		err = vec_push(&r->inodes, ip);
	if (err)
		tslab_inode_free(ep, ip);
	return err;
}

static int rec_link(struct rec *r, struct tslab_epoch *ep, slab_handle_t h,
                    const struct slab_obj *o)
{
	const uint8_t *p = o->data;
	struct tslab_link *l;
	int err;

	if (!p || o->data_len != 8) {
		r->bad++; /* left alone: freeing is not allowed inside slab_mount() */
		return 0;
	}
	l = slab_arena_alloc(ep->arena, sizeof(*l));
	if (!l)
		return -ENOMEM;
	memset(l, 0, sizeof(*l));
	l->d.is_link = 1;
	l->h = h;
	l->ctime = o->attr.ctime_ns;
	for (unsigned i = 0; i < 8; i++)
		l->target |= (slab_handle_t)p[i] << (8 * i);
	err = tslab_dent_set_name(ep, &l->d, o->parent, o->name, o->name_len);
	if (!err)
		err = vec_push(&r->links, l);
	return err;
}

static int rec_xattr(struct rec *r, struct tslab_epoch *ep, slab_handle_t h,
                     const struct slab_obj *o)
{
	struct tslab_xattr *a = slab_arena_alloc(ep->arena, sizeof(*a) + o->name_len);
	int err;

	if (!a)
		return -ENOMEM;
	memset(a, 0, sizeof(*a));
	a->h = h;
	a->size = (uint32_t)o->data_len;
	a->name_len = o->name_len;
	memcpy(a->name, o->name, o->name_len);
	err = vec_push(&r->xattrs, a);
	if (!err)
		err = vec_push(&r->xowners, (void *)(uintptr_t)o->parent);
	return err;
}

/* What the callback keeps of an object: the store (and with it the epoch
 * arenas and slab_obj_set_priv()) exists only once slab_mount() returns. */
struct pend {
	slab_handle_t h, parent;
	struct slab_attr attr;
	uint64_t data_len;
	uint8_t le[8];
	bool has_le;
	uint8_t kind, name_len;
	char name[];
};

static int rec_cb(void *ctx, slab_handle_t h, const struct slab_obj *o)
{
	struct rec *r = ctx;
	struct pend *p = malloc(sizeof(*p) + o->name_len);

	if (!p)
		return -ENOMEM;
	p->h = h;
	p->parent = o->parent;
	p->attr = o->attr;
	p->data_len = o->data_len;
	p->has_le = o->data && o->data_len == sizeof(p->le);
	if (p->has_le)
		memcpy(p->le, o->data, sizeof(p->le));
	p->kind = o->kind;
	p->name_len = o->name_len;
	memcpy(p->name, o->name, o->name_len);
	if (vec_push(&r->pending, p)) {
		free(p);
		return -ENOMEM;
	}
	return 0;
}

static int rec_one(struct rec *r, const struct pend *p)
{
	int err;
	struct tslab_epoch *ep = rec_epoch(r->fs, tslab_epoch_of(p->h), &err);
	slab_handle_t h = p->h;
	struct slab_obj obj = {
	    .kind = p->kind,
	    .attr = p->attr,
	    .parent = p->parent,
	    .name = p->name,
	    .name_len = p->name_len,
	    .data = p->has_le ? p->le : NULL,
	    .data_len = p->data_len,
	};
	const struct slab_obj *o = &obj;

	if (!ep)
		return err;
	tslab_epoch_times(ep, &o->attr);
	switch (o->kind) {
	case TSLAB_KIND_INODE:
		return rec_inode(r, ep, h, o);
	case TSLAB_KIND_LINK:
		return rec_link(r, ep, h, o);
	case TSLAB_KIND_XATTR:
		return rec_xattr(r, ep, h, o);
	default:
		tslab_log(LOG_WARNING, "%s: object %#llx has unknown kind %u; ignored",
		          r->fs->device, (unsigned long long)h, o->kind);
		r->bad++;
		return 0;
	}
}

/* Free a whole subtree (recovery only: single-threaded, no locks). */
static void free_tree(struct rec *r, struct tslab_inode *ip)
{
	struct tslab_epoch *ep = tslab_epoch_get(r->fs, tslab_epoch_of(ip->ino));

	if (ip->ext) {
		while (ip->ext->children) {
			struct tslab_dent *d = ip->ext->children;
			struct tslab_inode *c = tslab_dent_inode(r->fs, d);

			tslab_ns_remove(ep, ip->ext, d);
			if (d->is_link) {
				rec_free(r, ((struct tslab_link *)d)->h);
				if (c && c->nlink > 1)
					c->nlink--;
			} else if (c) {
				free_tree(r, c);
			}
		}
	}
	if (!r->ro && tslab_unlink_inode(r->fs, ep, ip) == 0)
		r->freed++;
}

static int64_t dent_ctime(struct tslab_fs *fs, struct tslab_dent *d)
{
	struct tslab_inode *ip;

	if (d->is_link)
		return ((struct tslab_link *)d)->ctime;
	ip = tslab_dent_inode(fs, d);
	return ip ? ip->ctime : 0;
}

/* Insert D under its parent; returns false when D lost (and must be freed). */
static bool attach(struct rec *r, struct tslab_dent *d, struct tslab_dent **loser)
{
	struct tslab_inode *pip = tslab_inode_lookup(r->fs, d->parent);
	struct tslab_epoch *pep;
	struct tslab_dent *o;

	*loser = NULL;
	if (!pip || !S_ISDIR(pip->mode) || !pip->ext)
		return false;
	pep = tslab_epoch_get(r->fs, tslab_epoch_of(pip->ino));
	o = tslab_ns_find(pep, d->parent, d->name, d->name_len);
	if (o) {
		if (dent_ctime(r->fs, o) >= dent_ctime(r->fs, d))
			return false;
		tslab_ns_remove(pep, pip->ext, o);
		*loser = o;
	}
	tslab_ns_insert(pep, pip->ext, d);
	return true;
}

static void drop_loser(struct rec *r, struct tslab_dent *d)
{
	struct tslab_inode *ip = tslab_dent_inode(r->fs, d);

	if (d->is_link) {
		rec_free(r, ((struct tslab_link *)d)->h);
		return;
	}
	if (ip)
		free_tree(r, ip);
}

/* IP (not a directory) lost its name to a newer one: it lives on if a link
 * names it (link_links), else it is freed after the links are attached. */
static void name_lost(struct rec *r, struct tslab_inode *ip)
{
	ip->d.parent = 0;
	if (vec_push(&r->nameless, ip))
		free_tree(r, ip);
}

static bool is_nameless(struct rec *r, struct tslab_inode *ip)
{
	for (size_t i = 0; i < r->nameless.n; i++)
		if (r->nameless.v[i] == ip)
			return true;
	return false;
}

static void link_inodes(struct rec *r)
{
	for (size_t i = 0; i < r->inodes.n; i++) {
		struct tslab_inode *ip = r->inodes.v[i], *lost;
		struct tslab_dent *loser;

		if (!ip || ip->ino == SLAB_HANDLE_ROOT)
			continue;
		if (!attach(r, &ip->d, &loser)) {
			struct tslab_inode *pip = tslab_inode_lookup(r->fs, ip->d.parent);
			bool dup = pip && S_ISDIR(pip->mode) && pip->ext;

			/* Orphan or older duplicate: parent 0 keeps free_tree
			 * away from any directory's list. */
			r->inodes.v[i] = NULL;
			if (dup && !S_ISDIR(ip->mode)) {
				name_lost(r, ip);
				continue;
			}
			ip->d.parent = 0;
			free_tree(r, ip);
			continue;
		}
		if (loser) {
			lost = tslab_dent_inode(r->fs, loser);
			for (size_t j = 0; j < r->inodes.n; j++)
				if (r->inodes.v[j] == lost)
					r->inodes.v[j] = NULL;
			if (!loser->is_link && lost && !S_ISDIR(lost->mode))
				name_lost(r, lost);
			else
				drop_loser(r, loser);
		}
		if (S_ISDIR(ip->mode)) {
			struct tslab_inode *pip = tslab_inode_lookup(r->fs, ip->d.parent);

			if (pip)
				pip->nlink++;
		}
	}
}

/* Link L (attached under its name) becomes the primary name of IP, which
 * lost its own: in DRAM at once, on the device (inode put under the new
 * name, link object freed) unless the mount is read-only. */
static void promote(struct rec *r, struct tslab_epoch *ep, struct tslab_inode *ip,
                    struct tslab_link *l)
{
	struct tslab_inode *dir = tslab_inode_lookup(r->fs, l->d.parent);

	tslab_dent_take_name(ep, dir, &ip->d, &l->d);
	if (!r->ro && tslab_data_load(r->fs, ep, ip) == 0 &&
	    tslab_inode_put(r->fs, ip) == 0)
		rec_free(r, l->h);
	slab_arena_free(ep->arena, l, sizeof(*l));
	tslab_log(LOG_INFO,
	          "%s: object %#llx lost its name in a crash; kept under its link",
	          r->fs->device, (unsigned long long)ip->ino);
}

static void link_links(struct rec *r)
{
	for (size_t i = 0; i < r->links.n; i++) {
		struct tslab_link *l = r->links.v[i];
		struct tslab_inode *ip = tslab_inode_lookup(r->fs, l->target);
		struct tslab_epoch *ep = tslab_epoch_get(r->fs, tslab_epoch_of(l->h));
		struct tslab_dent *loser;

		bool promoting = ip && !ip->d.parent && is_nameless(r, ip);

		if (!ip || S_ISDIR(ip->mode) || (!ip->d.parent && !promoting) ||
		    tslab_epoch_of(ip->ino) != ep->id || !attach(r, &l->d, &loser)) {
			rec_free(r, l->h);
			continue;
		}
		if (loser)
			drop_loser(r, loser);
		if (promoting) {
			promote(r, ep, ip, l);
			continue;
		}
		if (!tslab_ext_get(ep, ip))
			continue;
		l->lnext = ip->ext->links;
		ip->ext->links = l;
		ip->nlink++;
	}
}

static void link_xattrs(struct rec *r)
{
	for (size_t i = 0; i < r->xattrs.n; i++) {
		struct tslab_xattr *a = r->xattrs.v[i];
		slab_handle_t owner = (slab_handle_t)(uintptr_t)r->xowners.v[i];
		struct tslab_inode *ip = tslab_inode_lookup(r->fs, owner);
		struct tslab_epoch *ep = tslab_epoch_get(r->fs, tslab_epoch_of(a->h));

		if (!ip || tslab_epoch_of(owner) != ep->id || !tslab_ext_get(ep, ip)) {
			rec_free(r, a->h);
			continue;
		}
		a->next = ip->ext->xattrs;
		ip->ext->xattrs = a;
	}
}

/* Drop epochs whose directory did not survive (every object of theirs was
 * freed above, so they hold nothing the namespace can reach). */
static void drop_headless_epochs(struct rec *r)
{
	struct tslab_epoch *ep, *next;

	for (ep = r->fs->epoch_list; ep; ep = next) {
		bool headless = ep->id != SLAB_EPOCH_ROOT;

		next = ep->next;
		for (struct tslab_ext *x = ep->exts; x && headless; x = x->next)
			if (tslab_is_epoch_dir(x->ip) && x->ip->d.parent)
				headless = false;
		if (!headless)
			continue;
		if (slab_epoch_drop(r->fs->st, ep->id) == 0) {
			tslab_log(LOG_INFO,
			          "%s: recovery dropped epoch %u without a directory",
			          r->fs->device, ep->id);
			tslab_epoch_unlist(r->fs, ep);
			tslab_epoch_destroy(ep);
		}
	}
}

static int make_root(struct tslab_fs *fs)
{
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	slab_handle_t h;
	int err = tslab_epoch_add(fs, SLAB_EPOCH_ROOT, &ep);

	if (err && err != -EEXIST)
		return err;
	ep = tslab_epoch_get(fs, SLAB_EPOCH_ROOT);
	err = slab_obj_alloc(fs->st, SLAB_EPOCH_ROOT, &h);
	if (err)
		return err;
	if (h != SLAB_HANDLE_ROOT) {
		tslab_log(LOG_ERR,
		          "%s: root directory missing and not recreatable (handle %#llx)",
		          fs->device, (unsigned long long)h);
		return -EUCLEAN;
	}
	ip = tslab_inode_new(ep, h);
	if (!ip || !tslab_ext_get(ep, ip))
		return -ENOMEM;
	ip->mode = S_IFDIR | 0755;
	ip->uid = getuid();
	ip->gid = getgid();
	ip->nlink = 2;
	ip->atime = ip->mtime = ip->ctime = tslab_now();
	err = tslab_inode_put(fs, ip);
	if (!err)
		err = slab_obj_set_priv(fs->st, h, ip);
	if (!err)
		err = slab_sync(fs->st);
	return err;
}

static int check_root(struct tslab_fs *fs, struct rec *r)
{
	struct tslab_inode *root = tslab_inode_lookup(fs, SLAB_HANDLE_ROOT);

	if (!root && r->inodes.n == 0 && r->links.n == 0 && r->xattrs.n == 0)
		return make_root(fs);
	if (!root || !S_ISDIR(root->mode)) {
		tslab_log(LOG_ERR,
		          "%s: the root directory object is missing or not a directory",
		          fs->device);
		return -EUCLEAN;
	}
	root->d.parent = 0;
	return 0;
}

int tslab_mount_store(struct tslab_fs *fs)
{
	struct slab_mount_opts mo = {.read_only = fs->read_only,
	                             .commit_ms = fs->commit_s * 1000u};
	struct rec r = {.fs = fs};
	int err;

	err = slab_mount(fs->dev, &mo, rec_cb, &r, &fs->st);
	if (err)
		goto free_vecs;
	for (size_t i = 0; i < r.pending.n && !err; i++)
		err = rec_one(&r, r.pending.v[i]);
	if (err)
		goto unmount;
	if (!tslab_epoch_get(fs, SLAB_EPOCH_ROOT)) {
		struct tslab_epoch *ep;

		err = tslab_epoch_add(fs, SLAB_EPOCH_ROOT, &ep);
		if (err)
			goto unmount;
	}
	err = check_root(fs, &r);
	if (err)
		goto unmount;
	r.ro = fs->read_only;
	link_inodes(&r);
	link_links(&r);
	for (size_t i = 0; i < r.nameless.n; i++) {
		struct tslab_inode *ip = r.nameless.v[i];

		if (!ip->d.parent)
			free_tree(&r, ip);
	}
	link_xattrs(&r);
	if (!r.ro)
		drop_headless_epochs(&r);
	tslab_log(LOG_INFO,
	          "%s: mounted: %zu inodes, %zu links, %zu xattrs; %llu freed, %llu bad",
	          fs->device, r.inodes.n, r.links.n, r.xattrs.n,
	          (unsigned long long)r.freed, (unsigned long long)r.bad);
	goto free_vecs;

unmount:
	slab_unmount(fs->st);
	fs->st = NULL;
free_vecs:
	for (size_t i = 0; i < r.pending.n; i++)
		free(r.pending.v[i]);
	free(r.pending.v);
	free(r.inodes.v);
	free(r.nameless.v);
	free(r.links.v);
	free(r.xattrs.v);
	free(r.xowners.v);
	return err;
}
