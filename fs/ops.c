/* SPDX-License-Identifier: MIT */
/*
 * fs: namespace operations of the low-level FUSE interface — lookup,
 * forget, getattr, mknod/mkdir/symlink/create, link, unlink, rmdir (with
 * epoch drop), statfs, access, init/destroy and the operations table.
 * Locking rules are in fs_int.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>

#include "fs/fs_int.h"

struct tslab_fs *tslab_fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

bool tslab_is_ro(struct tslab_fs *fs)
{
	return fs->read_only || atomic_load(&fs->went_ro);
}

struct tslab_inode *tslab_dent_inode(struct tslab_fs *fs, struct tslab_dent *d)
{
	if (d->is_link)
		return tslab_inode_lookup(fs, ((struct tslab_link *)d)->target);
	return (struct tslab_inode *)d;
}

/* An epoch directory lives in its own epoch, not in its parent's. */
bool tslab_is_epoch_dir(const struct tslab_inode *ip)
{
	return S_ISDIR(ip->mode) && ip->ino != SLAB_HANDLE_ROOT &&
	       tslab_epoch_of(ip->ino) != tslab_epoch_of(ip->d.parent);
}

void tslab_fill_entry(struct fuse_entry_param *e, const struct tslab_inode *ip)
{
	memset(e, 0, sizeof(*e));
	e->ino = ip->ino;
	e->attr_timeout = TSLAB_TIMEOUT;
	e->entry_timeout = TSLAB_TIMEOUT;
	tslab_inode_stat(ip, &e->attr);
}

/* The caller's request was admitted (or frees more than this costs). */
void tslab_touch_dir(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *dip)
{
	dip->mtime = dip->ctime = tslab_now();
	tslab_space_admit(fs, ep, dip, dip->size, true);
	tslab_inode_dirty(fs, ep, dip);
}

static int name_check(const char *name, size_t *len)
{
	*len = strlen(name);
	if (*len > SLAB_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- lookup / forget / getattr ------------------------------------------ */

/*
 * "." and "..": the kernel asks for them when an NFS file handle names an
 * inode it no longer caches (export support). Node ids are slab handles,
 * stored on the device, so a handle stays valid across daemon restarts;
 * a handle of a dropped epoch or freed file is -ESTALE (O(1) in slab).
 */
static int lookup_dot(struct tslab_fs *fs, fuse_ino_t ino, bool dotdot,
                      struct fuse_entry_param *e)
{
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	slab_handle_t target;
	int err;

	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (err)
		goto unlock_drop;
	if (!dotdot)
		target = ip->ino;
	else if (!S_ISDIR(ip->mode))
		err = -ENOTDIR;
	else
		target = ip->ino == SLAB_HANDLE_ROOT ? SLAB_HANDLE_ROOT : ip->d.parent;
	pthread_mutex_unlock(&ep->lock);
	if (!err && !target)
		err = -ESTALE; /* an unlinked directory */
	if (!err)
		err = tslab_get_locked(fs, target, &ep, &ip);
	if (!err) {
		ip->nlookup++;
		tslab_fill_entry(e, ip);
		pthread_mutex_unlock(&ep->lock);
	}
unlock_drop:
	pthread_rwlock_unlock(&fs->drop_lock);
	return err;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *pep, *cep;
	struct tslab_inode *pip, *ip;
	struct fuse_entry_param e;
	struct tslab_dent *d;
	size_t len;
	int err = name_check(name, &len);

	if (!err && name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]))) {
		err = lookup_dot(fs, parent, name[1] == '.', &e);
		if (err == -ENOENT)
			err = -ESTALE; /* no negative entry for . or .. */
		goto out;
	}
	if (err)
		goto out;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, parent, &pep, &pip);
	if (err)
		goto unlock_drop;
	d = S_ISDIR(pip->mode) ? tslab_ns_find(pep, parent, name, len) : NULL;
	if (!d) {
		err = S_ISDIR(pip->mode) ? -ENOENT : -ENOTDIR;
		goto unlock_parent;
	}
	cep = pep;
	if (!d->is_link && tslab_epoch_of(((struct tslab_inode *)d)->ino) != pep->id) {
		cep = tslab_epoch_get(fs, tslab_epoch_of(((struct tslab_inode *)d)->ino));
		if (!cep) {
			err = -ENOENT;
			goto unlock_parent;
		}
		pthread_mutex_lock(&cep->lock);
	}
	ip = tslab_dent_inode(fs, d);
	if (ip) {
		ip->nlookup++;
		tslab_fill_entry(&e, ip);
	} else {
		err = -ENOENT;
	}
	if (cep != pep)
		pthread_mutex_unlock(&cep->lock);
unlock_parent:
	pthread_mutex_unlock(&pep->lock);
unlock_drop:
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	if (err == -ENOENT) {
		/* Negative entry, cached by the kernel: every create goes
		 * through this mount, which updates the kernel's dcache. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = TSLAB_TIMEOUT;
		fuse_reply_entry(req, &e);
	} else if (err) {
		tslab_reply_err(req, err);
	} else {
		fuse_reply_entry(req, &e);
	}
}

static void forget_one(struct tslab_fs *fs, fuse_ino_t ino, uint64_t n)
{
	struct tslab_epoch *ep;
	struct tslab_inode *ip;

	/* Stale handles (dropped epoch, freed file) are expected here. */
	if (tslab_get_locked(fs, ino, &ep, &ip))
		return;
	ip->nlookup = n >= ip->nlookup ? 0 : ip->nlookup - (uint32_t)n;
	tslab_orphan_release(fs, ep, ip);
	pthread_mutex_unlock(&ep->lock);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct tslab_fs *fs = tslab_fs_of(req);

	pthread_rwlock_rdlock(&fs->drop_lock);
	forget_one(fs, ino, nlookup);
	pthread_rwlock_unlock(&fs->drop_lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
                            struct fuse_forget_data *forgets)
{
	struct tslab_fs *fs = tslab_fs_of(req);

	pthread_rwlock_rdlock(&fs->drop_lock);
	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_rwlock_unlock(&fs->drop_lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	struct stat st;
	int err;

	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		tslab_inode_stat(ip, &st);
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	if (err)
		tslab_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, TSLAB_TIMEOUT);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	char buf[PATH_MAX + 1];
	int err;

	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (err)
		goto unlock_drop;
	if (!S_ISLNK(ip->mode) || ip->size > PATH_MAX)
		err = -EINVAL;
	else
		err = tslab_data_load(fs, ep, ip);
	if (!err) {
		memcpy(buf, ip->ext->buf, ip->size);
		buf[ip->size] = 0;
		tslab_ext_trim(ep, ip);
	}
	pthread_mutex_unlock(&ep->lock);
unlock_drop:
	pthread_rwlock_unlock(&fs->drop_lock);
	if (err)
		tslab_reply_err(req, err);
	else
		fuse_reply_readlink(req, buf);
}

/* ---- creating names ------------------------------------------------------ */

/* Depth of directory IP below the root (root = 0); IP is in the root epoch,
 * and so are all its ancestors. */
static unsigned dir_depth(struct tslab_fs *fs, struct tslab_inode *ip)
{
	unsigned depth = 0;

	while (ip && ip->ino != SLAB_HANDLE_ROOT && depth < 4096) {
		ip = tslab_inode_lookup(fs, ip->d.parent);
		depth++;
	}
	return depth;
}

struct mk_args {
	mode_t mode;
	dev_t rdev;
	const char *link;
	struct fuse_file_info *fi; /* create: the file is opened */
};

static int mk_init(struct tslab_fs *fs, struct tslab_epoch *cep, struct tslab_inode *ip,
                   const struct tslab_inode *pip, const struct mk_args *a,
                   const struct fuse_ctx *ctx)
{
	struct tslab_ext *x;
	int err;

	ip->mode = a->mode;
	ip->uid = ctx->uid;
	ip->gid = ctx->gid;
	if (pip->mode & S_ISGID) {
		ip->gid = pip->gid;
		if (S_ISDIR(a->mode))
			ip->mode |= S_ISGID;
	}
	ip->atime = ip->mtime = ip->ctime = tslab_now();
	ip->nlink = S_ISDIR(a->mode) ? 2 : 1;
	if (!S_ISDIR(a->mode) && !a->link && !a->rdev && !a->fi)
		return tslab_put_admitted(fs, ip);
	x = tslab_ext_get(cep, ip);
	if (!x)
		return -ENOMEM;
	x->rdev = (uint32_t)a->rdev;
	x->loaded = true;
	if (a->link) {
		ip->size = strlen(a->link);
		err = tslab_data_reserve(x, ip->size);
		if (err)
			return err;
		memcpy(x->buf, a->link, ip->size);
	}
	if (a->fi) {
		/* A new regular file is put once: at release, fsync, fsyncdir,
		 * commit or with a batch of TSLAB_DIRTY_BATCH. With no_open the
		 * kernel sends no RELEASE for it (measured on 6.18), so it is
		 * not counted as open. */
		x->open = fs->no_open ? 0 : 1;
		err = tslab_space_admit(fs, cep, ip, 0, false);
		if (err)
			return err;
		tslab_mark_dirty(cep, x);
		return 0;
	}
	return tslab_put_admitted(fs, ip);
}

/* Create NAME in PIP (epoch PEP, locked). On success *cep is the child's
 * epoch, locked when it differs from PEP (a new epoch directory). */
static int mk_locked(struct tslab_fs *fs, struct tslab_epoch *pep,
                     struct tslab_inode *pip, const char *name, size_t len,
                     const struct mk_args *a, const struct fuse_ctx *ctx,
                     struct tslab_inode **out, struct tslab_epoch **cep)
{
	bool new_epoch = S_ISDIR(a->mode) && pep->id == SLAB_EPOCH_ROOT &&
	                 fs->epoch_depth && dir_depth(fs, pip) + 1 == fs->epoch_depth;
	struct tslab_epoch *ep = pep;
	struct tslab_inode *ip;
	slab_handle_t h;
	uint32_t eid;
	int err;

	if (new_epoch) {
		err = slab_epoch_create(fs->st, &eid);
		if (err)
			return tslab_err(fs, err, "creating an epoch");
		err = tslab_epoch_add(fs, eid, &ep);
		if (err)
			goto drop_epoch;
		pthread_mutex_lock(&ep->lock);
		ep->created = tslab_now();
		ep->last_write = ep->created / 1000000000;
	}
	err = slab_obj_alloc(fs->st, ep->id, &h);
	if (err)
		goto unlist_epoch;
	err = -ENOMEM;
	ip = tslab_inode_new(ep, h);
	if (!ip)
		goto free_handle;
	err = tslab_dent_set_name(ep, &ip->d, pip->ino, name, len);
	if (!err)
		err = mk_init(fs, ep, ip, pip, a, ctx);
	if (!err)
		err = slab_obj_set_priv(fs->st, h, ip);
	if (err)
		goto free_inode;
	tslab_ns_insert(pep, pip->ext, &ip->d);
	if (S_ISDIR(a->mode))
		pip->nlink++;
	tslab_touch_dir(fs, pep, pip);
	ip->nlookup = 1;
	*out = ip;
	*cep = ep;
	return 0;

free_inode:
	tslab_space_unadmit(fs, ip);
	tslab_inode_free(ep, ip);
free_handle:
	slab_obj_free(fs->st, h);
unlist_epoch:
	if (new_epoch) {
		pthread_mutex_unlock(&ep->lock);
		tslab_epoch_unlist(fs, ep);
		tslab_epoch_destroy(ep);
	}
drop_epoch:
	if (new_epoch)
		slab_epoch_drop(fs->st, eid);
	return tslab_err(fs, err, "creating a file");
}

static void do_make(fuse_req_t req, fuse_ino_t parent, const char *name,
                    const struct mk_args *a)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *pep, *cep = NULL;
	struct tslab_inode *pip, *ip = NULL;
	struct fuse_entry_param e;
	size_t len;
	int err = name_check(name, &len);

	if (!err && tslab_is_ro(fs))
		err = -EROFS;
	if (err)
		goto out;
	tslab_policy_throttle(fs, 512);
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, parent, &pep, &pip);
	if (err)
		goto unlock_drop;
	if (!S_ISDIR(pip->mode))
		err = -ENOTDIR;
	else if ((err = tslab_sealed_check(pep)))
		;
	else if (tslab_ns_find(pep, parent, name, len))
		err = -EEXIST;
	else if ((err = tslab_space_admit(fs, pep, pip, pip->size, false)))
		;
	else
		err = mk_locked(fs, pep, pip, name, len, a, fuse_req_ctx(req), &ip, &cep);
	if (!err) {
		tslab_fill_entry(&e, ip);
		if (cep != pep)
			pthread_mutex_unlock(&cep->lock);
		else
			tslab_flush_if_full(fs, pep);
	}
	pthread_mutex_unlock(&pep->lock);
unlock_drop:
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	if (err) {
		tslab_reply_err(req, err);
	} else if (a->fi) {
		a->fi->keep_cache = 1;
		a->fi->noflush = 1;
		/*
		 * A file created write-only without setuid/setgid bits (the
		 * ingest case) is written through direct I/O: the kernel then
		 * skips its privilege check before each write, a GETXATTR of
		 * security.capability, which a new file cannot have. Nobody
		 * can have its pages cached yet, and a write-only descriptor
		 * cannot be mmapped. Later opens use the page cache.
		 */
		if ((a->fi->flags & O_ACCMODE) == O_WRONLY &&
		    !(a->mode & (S_ISUID | S_ISGID)))
			a->fi->direct_io = 1;
		fuse_reply_create(req, &e, a->fi);
		if (fs->no_open && !atomic_load(&fs->kernel_no_open))
			tslab_notify_probe(fs, e.ino);
	} else {
		fuse_reply_entry(req, &e);
	}
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                     dev_t rdev)
{
	struct mk_args a = {.mode = mode, .rdev = rdev};

	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode) &&
	    !S_ISBLK(mode)) {
		tslab_reply_err(req, -EINVAL);
		return;
	}
	if (!S_ISCHR(mode) && !S_ISBLK(mode))
		a.rdev = 0;
	do_make(req, parent, name, &a);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct mk_args a = {.mode = S_IFDIR | (mode & 07777)};

	do_make(req, parent, name, &a);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                       const char *name)
{
	struct mk_args a = {.mode = S_IFLNK | 0777, .link = link};

	if (strlen(link) > PATH_MAX) {
		tslab_reply_err(req, -ENAMETOOLONG);
		return;
	}
	do_make(req, parent, name, &a);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	struct mk_args a = {.mode = S_IFREG | (mode & 07777), .fi = fi};

	do_make(req, parent, name, &a);
}

/* ---- hard links ------------------------------------------------------------ */

int tslab_link_put(struct tslab_fs *fs, const struct tslab_link *l, uint32_t mode)
{
	uint8_t le[8];
	struct slab_obj o = {
	    .kind = TSLAB_KIND_LINK,
	    .attr = {.mode = mode,
	             .nlink = 1,
	             .ctime_ns = l->ctime,
	             .mtime_ns = l->ctime},
	    .parent = l->d.parent,
	    .name = l->d.name,
	    .name_len = l->d.name_len,
	    .data = le,
	    .data_len = sizeof(le),
	};
	int err;

	for (unsigned i = 0; i < 8; i++)
		le[i] = (uint8_t)(l->target >> (8 * i));
	err = slab_obj_put(fs->st, l->h, &o);
	return err ? tslab_err(fs, err, "writing a link") : 0;
}

static int link_locked(struct tslab_fs *fs, struct tslab_epoch *ep,
                       struct tslab_inode *ip, fuse_ino_t newparent, const char *name,
                       size_t len)
{
	struct tslab_inode *npip = tslab_inode_lookup(fs, newparent);
	struct tslab_ext *x = tslab_ext_get(ep, ip);
	struct tslab_link *l;
	slab_handle_t h;
	int err;

	if (S_ISDIR(ip->mode))
		return -EPERM;
	if ((err = tslab_sealed_check(ep)))
		return err;
	if (ip->orphan)
		return -ENOENT;
	if (tslab_epoch_of(newparent) != ep->id)
		return -EXDEV;
	if (!npip)
		return -ENOENT;
	if (!S_ISDIR(npip->mode))
		return -ENOTDIR;
	if (tslab_ns_find(ep, newparent, name, len))
		return -EEXIST;
	if (ip->nlink >= 65000)
		return -EMLINK;
	if (!x)
		return -ENOMEM;
	err = slab_obj_alloc(fs->st, ep->id, &h);
	if (err)
		return tslab_err(fs, err, "creating a link");
	l = slab_arena_alloc(ep->arena, sizeof(*l));
	if (!l) {
		err = -ENOMEM;
		goto free_handle;
	}
	memset(l, 0, sizeof(*l));
	l->d.is_link = 1;
	l->h = h;
	l->target = ip->ino;
	l->ctime = tslab_now();
	uint64_t cost = slab_obj_cost(8, (uint32_t)len);

	err = tslab_dent_set_name(ep, &l->d, newparent, name, len);
	if (!err)
		err = slab_space_reserve(fs->st, cost);
	if (!err) {
		err = tslab_link_put(fs, l, ip->mode);
		slab_space_release(fs->st, cost);
	}
	if (err)
		goto free_link;
	tslab_ns_insert(ep, npip->ext, &l->d);
	l->lnext = x->links;
	x->links = l;
	ip->nlink++;
	ip->ctime = l->ctime;
	tslab_touch_dir(fs, ep, npip);
	return 0;

free_link:
	tslab_dent_free_name(ep, &l->d);
	slab_arena_free(ep->arena, l, sizeof(*l));
free_handle:
	slab_obj_free(fs->st, h);
	return err;
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                    const char *newname)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	struct fuse_entry_param e;
	size_t len;
	int err = name_check(newname, &len);

	if (!err && tslab_is_ro(fs))
		err = -EROFS;
	if (err)
		goto out;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		err = link_locked(fs, ep, ip, newparent, newname, len);
		if (!err) {
			ip->nlookup++;
			tslab_fill_entry(&e, ip);
		}
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	if (err)
		tslab_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

/* ---- removing names ---------------------------------------------------------- */

/* Free IP's objects (xattrs, then the inode) and its DRAM. */
int tslab_unlink_inode(struct tslab_fs *fs, struct tslab_epoch *ep,
                       struct tslab_inode *ip)
{
	int err = slab_obj_free(fs->st, ip->ino);

	if (err)
		return tslab_err(fs, err, "freeing an object");
	tslab_xattr_objs_free(fs, ip);
	tslab_space_unadmit(fs, ip);
	tslab_inode_free(ep, ip);
	return 0;
}

/* IP's object was freed: its xattr objects go with it (they name IP as
 * their parent, and nothing else reaches them). */
void tslab_xattr_objs_free(struct tslab_fs *fs, struct tslab_inode *ip)
{
	if (ip->ext)
		for (struct tslab_xattr *a = ip->ext->xattrs; a; a = a->next)
			slab_obj_free(fs->st, a->h);
}

static void link_forget(struct tslab_ext *x, struct tslab_link *l)
{
	for (struct tslab_link **pp = &x->links; *pp; pp = &(*pp)->lnext)
		if (*pp == l) {
			*pp = l->lnext;
			return;
		}
}

/* IP's primary name was removed from the namespace while links remain: the
 * first link becomes the primary name (one put + one free). */
static int promote_link(struct tslab_fs *fs, struct tslab_epoch *ep,
                        struct tslab_inode *ip)
{
	struct tslab_link *l = ip->ext->links;
	struct tslab_inode *ldir = tslab_inode_lookup(fs, l->d.parent);
	int err = tslab_data_load(fs, ep, ip);

	if (err)
		return err;
	if (!ldir)
		return -EIO;
	tslab_dent_take_name(ep, ldir, &ip->d, &l->d);
	ip->ext->links = l->lnext;
	ip->nlink--;
	ip->ctime = tslab_now();
	err = tslab_inode_put(fs, ip);
	if (!err)
		err = slab_obj_free(fs->st, l->h);
	slab_arena_free(ep->arena, l, sizeof(*l));
	return err ? tslab_err(fs, err, "promoting a link") : 0;
}

/* D was removed from PEP's namespace: release what it named. Directories
 * are released by the caller. */
int tslab_release_dentry(struct tslab_fs *fs, struct tslab_epoch *pep,
                         struct tslab_dent *d)
{
	struct tslab_inode *ip = tslab_dent_inode(fs, d);
	int err;

	if (d->is_link) {
		struct tslab_link *l = (struct tslab_link *)d;

		err = slab_obj_free(fs->st, l->h);
		if (ip) {
			link_forget(ip->ext, l);
			ip->nlink--;
			ip->ctime = tslab_now();
		}
		tslab_dent_free_name(pep, d);
		slab_arena_free(pep->arena, l, sizeof(*l));
		return err ? tslab_err(fs, err, "freeing a link") : 0;
	}
	if (ip->ext && ip->ext->links)
		return promote_link(fs, pep, ip);
	/* The kernel may hold it open (it sends no OPEN): keep it as an
	 * orphan until FORGET; nothing is written now (enum tslab_orphan). */
	if (S_ISREG(ip->mode) && (ip->nlookup || (ip->ext && ip->ext->open)) &&
	    tslab_ext_get(pep, ip)) {
		tslab_dent_free_name(pep, &ip->d);
		ip->d.parent = 0;
		ip->nlink = 0;
		ip->orphan = TSLAB_ORPHAN_PENDING;
		ip->ctime = tslab_now();
		return 0;
	}
	return tslab_unlink_inode(fs, pep, ip);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *pep;
	struct tslab_inode *pip, *ip;
	struct tslab_dent *d;
	size_t len;
	int err = name_check(name, &len);

	if (!err && tslab_is_ro(fs))
		err = -EROFS;
	if (err)
		goto out;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, parent, &pep, &pip);
	if (err)
		goto unlock_drop;
	d = S_ISDIR(pip->mode) ? tslab_ns_find(pep, parent, name, len) : NULL;
	ip = d ? tslab_dent_inode(fs, d) : NULL;
	if (!ip) {
		err = -ENOENT;
	} else if (S_ISDIR(ip->mode)) {
		err = -EISDIR;
	} else if ((err = tslab_sealed_check(pep))) {
		;
	} else {
		tslab_ns_remove(pep, pip->ext, d);
		err = tslab_release_dentry(fs, pep, d);
		tslab_touch_dir(fs, pep, pip);
	}
	pthread_mutex_unlock(&pep->lock);
unlock_drop:
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	tslab_reply_err(req, err);
}

/* Drop the epoch of directory D (in PIP, epoch PEP). Caller holds drop_lock
 * for writing, so no request runs and no epoch lock is needed. Cost:
 * O(zones + arena chunks + open/dirty files of the epoch), not O(files). */
int tslab_drop_epoch_dir(struct tslab_fs *fs, struct tslab_epoch *pep,
                         struct tslab_inode *pip, struct tslab_inode *ip)
{
	struct tslab_epoch *ep = tslab_epoch_get(fs, tslab_epoch_of(ip->ino));
	void **bufs = NULL;
	size_t n = 0, cap = 0;
	uint64_t resv = 0;
	int err;

	tslab_rwlock_assert_wrheld(&fs->drop_lock);

	if (!ep)
		return -ESTALE;
	/* Buffers are outside the arena: collect them before it goes, and
	 * the reservations of its inodes, none of which will be put. */
	for (struct tslab_ext *x = ep->exts; x; x = x->next) {
		resv += x->resv + x->cresv;
		if (!x->buf && !x->dc && !x->otail)
			continue;
		if (n + 3 > cap) {
			void **p =
			    realloc(bufs, (cap = cap ? cap * 2 : 16) * sizeof(*bufs));

			if (!p) {
				free(bufs);
				return -ENOMEM;
			}
			bufs = p;
		}
		if (x->buf)
			bufs[n++] = x->buf;
		if (x->dc)
			bufs[n++] = x->dc; /* dirty chunks of a dropped file: gone */
		if (x->otail)
			bufs[n++] = x->otail;
	}
	tslab_ns_remove(pep, pip->ext, &ip->d);
	err = slab_epoch_drop(fs->st, ep->id);
	if (err) {
		tslab_ns_insert(pep, pip->ext, &ip->d);
		free(bufs);
		return tslab_err(fs, err, "dropping an epoch");
	}
	for (size_t i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	slab_space_release(fs->st, resv);
	tslab_epoch_unlist(fs, ep);
	tslab_epoch_destroy(ep);
	atomic_store(&fs->space_full, false);
	pip->nlink--;
	tslab_touch_dir(fs, pep, pip);
	return 0;
}

int tslab_drop_epoch(struct tslab_fs *fs, fuse_ino_t parent, const char *name, size_t len,
                     uint32_t expect, const char *reason)
{
	struct slab_epoch_stats es = {0};
	struct tslab_inode *pip, *ip;
	struct tslab_epoch *pep;
	struct tslab_dent *d;
	int64_t t0 = tslab_now();
	int err;

	pthread_rwlock_wrlock(&fs->drop_lock);
	pip = tslab_inode_lookup(fs, parent);
	pep = tslab_epoch_get(fs, tslab_epoch_of(parent));
	d = pip && pep && S_ISDIR(pip->mode) ? tslab_ns_find(pep, parent, name, len)
	                                     : NULL;
	ip = d ? tslab_dent_inode(fs, d) : NULL;
	if (!ip)
		err = -ENOENT;
	else if (!S_ISDIR(ip->mode))
		err = -ENOTDIR;
	else if (!tslab_is_epoch_dir(ip))
		err = -EAGAIN;
	else if (expect && tslab_epoch_of(ip->ino) != expect)
		err = -ESTALE; /* renamed or replaced since the caller looked */
	else
		err = 0;
	if (!err) {
		slab_epoch_stats(fs->st, tslab_epoch_of(ip->ino), &es);
		err = tslab_drop_epoch_dir(fs, pep, pip, ip);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	if (!err)
		tslab_log(reason ? LOG_NOTICE : LOG_INFO,
		          "%s: dropped epoch directory '%.*s' (%llu files, %llu bytes, "
		          "reason: %s) in %lld us",
		          fs->device, (int)len, name, (unsigned long long)es.objects,
		          (unsigned long long)es.live_bytes, reason ? reason : "rmdir",
		          (long long)(tslab_now() - t0) / 1000);
	return err;
}

static int rmdir_plain(struct tslab_fs *fs, fuse_ino_t parent, const char *name,
                       size_t len)
{
	struct tslab_epoch *pep;
	struct tslab_inode *pip, *ip;
	struct tslab_dent *d;
	int err;

	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, parent, &pep, &pip);
	if (err)
		goto unlock_drop;
	d = S_ISDIR(pip->mode) ? tslab_ns_find(pep, parent, name, len) : NULL;
	ip = d ? tslab_dent_inode(fs, d) : NULL;
	if (!ip)
		err = -ENOENT;
	else if (!S_ISDIR(ip->mode))
		err = -ENOTDIR;
	else if (tslab_is_epoch_dir(ip))
		err = -EAGAIN; /* needs the exclusive path */
	else if ((err = tslab_sealed_check(pep)))
		;
	else if (ip->ext && ip->ext->nchildren)
		err = -ENOTEMPTY;
	else
		err = slab_obj_free(fs->st, ip->ino);
	if (!err) {
		tslab_xattr_objs_free(fs, ip);
		tslab_space_unadmit(fs, ip);
		tslab_ns_remove(pep, pip->ext, d);
		tslab_inode_free(pep, ip);
		pip->nlink--;
		tslab_touch_dir(fs, pep, pip);
	}
	pthread_mutex_unlock(&pep->lock);
unlock_drop:
	pthread_rwlock_unlock(&fs->drop_lock);
	return err;
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	bool dropped = false;
	size_t len;
	int err = name_check(name, &len);

	if (!err && tslab_is_ro(fs))
		err = -EROFS;
	if (!err)
		err = rmdir_plain(fs, parent, name, len);
	if (err == -EAGAIN) {
		err = tslab_drop_epoch(fs, parent, name, len, 0, NULL);
		dropped = !err;
	}
	tslab_reply_err(req, err);
	/* After the reply (libfuse: notifications from inside a request
	 * handler of the same name may deadlock), on the notifier thread. */
	if (!err)
		tslab_notify_inval_entry(fs, parent, name, len, dropped);
}

/* ---- statfs / access --------------------------------------------------------- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct slab_space sp;
	struct statvfs v;

	slab_space_get(fs->st, &sp);
	memset(&v, 0, sizeof(v));
	v.f_bsize = 4096;
	v.f_frsize = 4096;
	/* The whole device; used = superblock and journal zones, the GC
	 * reserve and headroom, and what live objects and accepted changes
	 * cost. Available = what slab_space_reserve() still grants, so a
	 * file df says fits does fit (there is no root-only reserve). */
	v.f_blocks = sp.device_bytes / 4096;
	v.f_bfree = sp.avail_bytes / 4096;
	v.f_bavail = v.f_bfree;
	v.f_ffree = sp.avail_bytes / slab_obj_cost(0, 1);
	v.f_files = sp.objects + v.f_ffree;
	v.f_favail = v.f_ffree;
	v.f_namemax = SLAB_NAME_MAX;
	fuse_reply_statfs(req, &v);
}

static int access_check(const struct tslab_inode *ip, const struct fuse_ctx *ctx,
                        int mask)
{
	unsigned bits;

	if (mask == F_OK)
		return 0;
	if (ctx->uid == 0) {
		if ((mask & X_OK) && !S_ISDIR(ip->mode) && !(ip->mode & 0111))
			return -EACCES;
		return 0;
	}
	if (ctx->uid == ip->uid)
		bits = (ip->mode >> 6) & 7;
	else if (ctx->gid == ip->gid)
		bits = (ip->mode >> 3) & 7;
	else
		bits = ip->mode & 7;
	return ((unsigned)mask & ~bits & 7) ? -EACCES : 0;
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err;

	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		err = access_check(ip, fuse_req_ctx(req), mask);
		if (!err && (mask & W_OK) && tslab_is_ro(fs))
			err = -EROFS;
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	tslab_reply_err(req, err);
}

/* ---- init ---------------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* No writeback cache: measured on small files it costs more
	 * synchronous requests per create+write+close (the kernel then ignores
	 * FOPEN_NOFLUSH and sends FLUSH, a SETATTR for mtime and a GETATTR)
	 * than it saves; one write() is one WRITE either way. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Large files: up to 1 MiB per WRITE (the kernel's max_pages 256). */
	conn->max_write = TSLAB_MAX_WRITE;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* NFS export: the kernel may LOOKUP "." and ".." of a node id. */
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want |= FUSE_CAP_EXPORT_SUPPORT;
	/* The kernel clears setuid/setgid itself and tells us by setattr. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* open() of an existing file costs no request at all: OPEN answers
	 * ENOSYS once and the kernel stops sending OPEN, RELEASE and (after
	 * one ENOSYS) FLUSH. Nothing is kept per open: data is put at fsync,
	 * by the commit thread and at the release of create-opened handles,
	 * and unlinked files live on until FORGET (enum tslab_orphan). */
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
		((struct tslab_fs *)userdata)->no_open = true;
	}
}

/*
 * fuseblk: the kernel waits for the reply to DESTROY at unmount, so the
 * device is flushed and closed here, before umount returns. Otherwise (and
 * when libfuse calls this again at session end) main closes it after the
 * loop.
 */
static void op_destroy(void *userdata)
{
	struct tslab_fs *fs = userdata;

	if (!fs->blkdev)
		return;
	tslab_threads_stop(fs);
	tslab_close_device(fs);
}

const struct fuse_lowlevel_ops tslab_ops = {
    .init = op_init,
    .destroy = op_destroy,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = tslab_op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = tslab_op_rename,
    .link = op_link,
    .open = tslab_op_open,
    .read = tslab_op_read,
    .write = tslab_op_write,
    .flush = tslab_op_flush,
    .release = tslab_op_release,
    .fsync = tslab_op_fsync,
    .opendir = tslab_op_opendir,
    .readdir = tslab_op_readdir,
    .readdirplus = tslab_op_readdirplus,
    .releasedir = tslab_op_releasedir,
    .fsyncdir = tslab_op_fsyncdir,
    .statfs = op_statfs,
    .setxattr = tslab_op_setxattr,
    .getxattr = tslab_op_getxattr,
    .listxattr = tslab_op_listxattr,
    .removexattr = tslab_op_removexattr,
    .access = op_access,
    .create = op_create,
    .lseek = tslab_op_lseek,
    .fallocate = tslab_op_fallocate,
};
