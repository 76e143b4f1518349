/* SPDX-License-Identifier: MIT */
/*
 * fs: rename and directory listing.
 *
 * Rename within one non-root epoch locks only that epoch; a rename that
 * involves a root-epoch directory (where epoch directories live) takes
 * drop_lock for writing. A rename that would move a file into another
 * epoch fails with EXDEV (mv then copies); an epoch directory may move to
 * any root-epoch directory and stays an epoch.
 *
 * Listing: the first readdir (offset 0) of an open directory snapshots its
 * entries into the directory handle; offsets are indexes into that
 * snapshot, so they stay valid however the directory changes meanwhile.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "fs/fs_int.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* Epoch that owns D's memory and object. */
static struct tslab_epoch *dent_owner(struct tslab_fs *fs, struct tslab_dent *d,
                                      struct tslab_inode *ip)
{
	slab_handle_t h = d->is_link ? ((struct tslab_link *)d)->h : ip->ino;

	return tslab_epoch_get(fs, tslab_epoch_of(h));
}

/* May the entry D (naming IP) move under a directory of epoch TO? */
static bool move_ok(struct tslab_dent *d, struct tslab_inode *ip, uint32_t to)
{
	if (!d->is_link && tslab_is_epoch_dir(ip))
		return to == SLAB_EPOCH_ROOT;
	return tslab_epoch_of(ip->ino) == to;
}

/* Is directory A an ancestor of (or equal to) directory DIR? */
static bool is_ancestor(struct tslab_fs *fs, slab_handle_t a, slab_handle_t dir)
{
	for (unsigned depth = 0; dir && depth < 4096; depth++) {
		struct tslab_inode *ip;

		if (dir == a)
			return true;
		if (dir == SLAB_HANDLE_ROOT)
			return false;
		ip = tslab_inode_lookup(fs, dir);
		dir = ip ? ip->d.parent : 0;
	}
	return false;
}

static int put_moved(struct tslab_fs *fs, struct tslab_dent *d, struct tslab_inode *ip)
{
	if (d->is_link) {
		((struct tslab_link *)d)->ctime = tslab_now();
		return tslab_link_put(fs, (struct tslab_link *)d, ip->mode);
	}
	ip->ctime = tslab_now();
	return tslab_inode_put(fs, ip);
}

struct rn {
	struct tslab_inode *pip, *npip;
	struct tslab_epoch *pep, *npep;
	struct tslab_dent *s, *t;
	struct tslab_inode *sip, *tip;
	const char *name, *newname;
	size_t len, newlen;
};

/* Give D the name (PARENT, NAME) and insert it in DIP's listing. */
static int rename_dent(struct tslab_fs *fs, struct tslab_dent *d, struct tslab_inode *ip,
                       struct tslab_epoch *dep, struct tslab_inode *dip, const char *name,
                       size_t len)
{
	struct tslab_epoch *owner = dent_owner(fs, d, ip);
	int err = owner ? tslab_dent_set_name(owner, d, dip->ino, name, len) : -ESTALE;

	/* On failure D stays out of the DRAM namespace (its object keeps the
	 * old name on the device). */
	if (!err)
		tslab_ns_insert(dep, dip->ext, d);
	return err;
}

static void fix_dir_links(struct rn *r, struct tslab_inode *moved, bool to_new)
{
	if (!S_ISDIR(moved->mode) || r->pip == r->npip)
		return;
	if (to_new) {
		r->pip->nlink--;
		r->npip->nlink++;
	} else {
		r->npip->nlink--;
		r->pip->nlink++;
	}
}

static int rename_exchange(struct tslab_fs *fs, struct rn *r)
{
	int err;

	if (!r->t)
		return -ENOENT;
	if (!move_ok(r->t, r->tip, r->pep->id))
		return -EXDEV;
	if ((S_ISDIR(r->sip->mode) && is_ancestor(fs, r->sip->ino, r->npip->ino)) ||
	    (S_ISDIR(r->tip->mode) && is_ancestor(fs, r->tip->ino, r->pip->ino)))
		return -EINVAL;
	if (!r->s->is_link &&
	    (err = tslab_data_load(fs, dent_owner(fs, r->s, r->sip), r->sip)))
		return err;
	if (!r->t->is_link &&
	    (err = tslab_data_load(fs, dent_owner(fs, r->t, r->tip), r->tip)))
		return err;
	tslab_ns_remove(r->pep, r->pip->ext, r->s);
	tslab_ns_remove(r->npep, r->npip->ext, r->t);
	err = rename_dent(fs, r->s, r->sip, r->npep, r->npip, r->newname, r->newlen);
	if (!err)
		err = rename_dent(fs, r->t, r->tip, r->pep, r->pip, r->name, r->len);
	if (err)
		return err;
	fix_dir_links(r, r->sip, true);
	fix_dir_links(r, r->tip, false);
	err = put_moved(fs, r->s, r->sip);
	if (!err)
		err = put_moved(fs, r->t, r->tip);
	return err;
}

/* Remove the directory being replaced; it is empty. */
static int replace_dir(struct tslab_fs *fs, struct rn *r)
{
	int err;

	if (tslab_is_epoch_dir(r->tip))
		return tslab_drop_epoch_dir(fs, r->npep, r->npip, r->tip);
	err = slab_obj_free(fs->st, r->tip->ino);
	if (err)
		return tslab_err(fs, err, "freeing a directory");
	tslab_xattr_objs_free(fs, r->tip);
	tslab_space_unadmit(fs, r->tip);
	tslab_ns_remove(r->npep, r->npip->ext, r->t);
	tslab_inode_free(r->npep, r->tip);
	r->npip->nlink--;
	return 0;
}

/* Space for the moved object's new version, reserved before anything of
 * the rename changes (rename_move gives it back). */
static uint64_t move_cost(const struct rn *r)
{
	const struct tslab_inode *ip = r->sip;

	if (r->s->is_link)
		return slab_obj_cost(8, (uint32_t)r->newlen);
	return slab_obj_cost(S_ISREG(ip->mode) || S_ISLNK(ip->mode) ? ip->size : 0,
	                     (uint32_t)r->newlen);
}

static int rename_move_admitted(struct tslab_fs *fs, struct rn *r, unsigned flags);

static int rename_move(struct tslab_fs *fs, struct rn *r, unsigned flags)
{
	uint64_t cost = move_cost(r);
	int err = slab_space_reserve(fs->st, cost);

	if (err)
		return err;
	err = rename_move_admitted(fs, r, flags);
	slab_space_release(fs->st, cost);
	return err;
}

static int rename_move_admitted(struct tslab_fs *fs, struct rn *r, unsigned flags)
{
	int err;

	if (r->t) {
		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		if (r->tip == r->sip)
			return 0;
		if (S_ISDIR(r->sip->mode) && !S_ISDIR(r->tip->mode))
			return -ENOTDIR;
		if (!S_ISDIR(r->sip->mode) && S_ISDIR(r->tip->mode))
			return -EISDIR;
		if (S_ISDIR(r->tip->mode) && r->tip->ext && r->tip->ext->nchildren)
			return -ENOTEMPTY;
	}
	if (S_ISDIR(r->sip->mode) && is_ancestor(fs, r->sip->ino, r->npip->ino))
		return -EINVAL;
	if (!r->s->is_link &&
	    (err = tslab_data_load(fs, dent_owner(fs, r->s, r->sip), r->sip)))
		return err;
	if (r->t && S_ISDIR(r->tip->mode)) {
		err = replace_dir(fs, r);
		if (err)
			return err;
		r->t = NULL;
	} else if (r->t) {
		tslab_ns_remove(r->npep, r->npip->ext, r->t);
	}
	tslab_ns_remove(r->pep, r->pip->ext, r->s);
	err = rename_dent(fs, r->s, r->sip, r->npep, r->npip, r->newname, r->newlen);
	if (err)
		return err;
	fix_dir_links(r, r->sip, true);
	/* The new name is written before the replaced file is freed: after a
	 * crash in between, recovery keeps the newer of two equal names. */
	err = put_moved(fs, r->s, r->sip);
	if (!err && r->t)
		err = tslab_release_dentry(fs, r->npep, r->t);
	return err;
}

/* Caller holds what the header comment describes. */
static int rename_locked(struct tslab_fs *fs, struct rn *r, unsigned flags)
{
	int err;

	if (!r->pip || !r->npip || !r->pep || !r->npep)
		return -ENOENT;
	if (!S_ISDIR(r->pip->mode) || !S_ISDIR(r->npip->mode))
		return -ENOTDIR;
	r->s = tslab_ns_find(r->pep, r->pip->ino, r->name, r->len);
	r->sip = r->s ? tslab_dent_inode(fs, r->s) : NULL;
	if (!r->sip)
		return -ENOENT;
	r->t = tslab_ns_find(r->npep, r->npip->ino, r->newname, r->newlen);
	r->tip = r->t ? tslab_dent_inode(fs, r->t) : NULL;
	if (r->t && !r->tip)
		return -EIO;
	if (r->s == r->t)
		return 0;
	/* Sealed epochs: nothing in them moves, and an epoch directory of
	 * one keeps its name (its object cannot be rewritten). */
	if (tslab_sealed_check(r->pep) || tslab_sealed_check(r->npep) ||
	    tslab_sealed_check(tslab_epoch_get(fs, tslab_epoch_of(r->sip->ino))) ||
	    (r->tip &&
	     tslab_sealed_check(tslab_epoch_get(fs, tslab_epoch_of(r->tip->ino)))))
		return -EROFS;
	if (!move_ok(r->s, r->sip, r->npep->id))
		return -EXDEV;
	if (flags & RENAME_EXCHANGE)
		err = rename_exchange(fs, r);
	else
		err = rename_move(fs, r, flags);
	if (!err) {
		tslab_touch_dir(fs, r->pep, r->pip);
		if (r->npip != r->pip)
			tslab_touch_dir(fs, r->npep, r->npip);
	}
	return err;
}

void tslab_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                     fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct rn r = {.name = name, .newname = newname};
	uint32_t e1 = tslab_epoch_of(parent), e2 = tslab_epoch_of(newparent);
	bool excl = e1 != e2 || e1 == SLAB_EPOCH_ROOT;
	struct tslab_epoch *ep = NULL;
	int err = 0;

	r.len = strlen(name);
	r.newlen = strlen(newname);
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE) ||
	    (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE))
		err = -EINVAL;
	else if (r.len > SLAB_NAME_MAX || r.newlen > SLAB_NAME_MAX)
		err = -ENAMETOOLONG;
	else if (tslab_is_ro(fs))
		err = -EROFS;
	if (err)
		goto out;
	if (excl) {
		pthread_rwlock_wrlock(&fs->drop_lock);
	} else {
		pthread_rwlock_rdlock(&fs->drop_lock);
		ep = tslab_epoch_get(fs, e1);
		if (!ep) {
			err = -ESTALE;
			goto unlock_drop;
		}
		pthread_mutex_lock(&ep->lock);
	}
	r.pip = tslab_inode_lookup(fs, parent);
	r.npip = tslab_inode_lookup(fs, newparent);
	r.pep = tslab_epoch_get(fs, e1);
	r.npep = tslab_epoch_get(fs, e2);
	err = rename_locked(fs, &r, flags);
	if (ep)
		pthread_mutex_unlock(&ep->lock);
unlock_drop:
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	tslab_reply_err(req, err);
}

/* ---- listing --------------------------------------------------------------- */

struct dsnap {
	slab_handle_t ino;
	uint32_t name_off;
	uint8_t type;
};

struct tslab_dirh {
	pthread_mutex_t mu;
	size_t n;
	struct dsnap *ents;
	char *names; /* NUL-terminated names */
};

void tslab_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tslab_dirh *dh = calloc(1, sizeof(*dh));

	if (!dh) {
		tslab_reply_err(req, -ENOMEM);
		return;
	}
	pthread_mutex_init(&dh->mu, NULL);
	fi->fh = (uintptr_t)dh;
	fi->keep_cache = 1;
	fi->cache_readdir = 1;
	fuse_reply_open(req, fi);
}

void tslab_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tslab_dirh *dh = (struct tslab_dirh *)(uintptr_t)fi->fh;

	pthread_mutex_destroy(&dh->mu);
	free(dh->ents);
	free(dh->names);
	free(dh);
	tslab_reply_err(req, 0);
}

static uint8_t dent_type(struct tslab_fs *fs, struct tslab_epoch *ep,
                         struct tslab_dent *d, slab_handle_t *ino)
{
	struct tslab_inode *ip;

	if (!d->is_link && tslab_epoch_of(((struct tslab_inode *)d)->ino) != ep->id) {
		*ino = ((struct tslab_inode *)d)->ino; /* an epoch directory */
		return DT_DIR;
	}
	ip = tslab_dent_inode(fs, d);
	*ino = ip ? ip->ino : 0;
	return ip ? (uint8_t)IFTODT(ip->mode) : DT_UNKNOWN;
}

/* Caller holds drop_lock (read) and dh->mu. */
static int snapshot(struct tslab_fs *fs, struct tslab_dirh *dh, fuse_ino_t ino)
{
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	size_t n, nb = 8, i = 0, pos = 0;
	int err = tslab_get_locked(fs, ino, &ep, &ip);

	tslab_mutex_assert_held(&dh->mu);

	if (err)
		return err;
	if (!S_ISDIR(ip->mode) || !ip->ext) {
		err = -ENOTDIR;
		goto unlock;
	}
	n = ip->ext->nchildren + 2;
	for (struct tslab_dent *d = ip->ext->children; d; d = d->sib_next)
		nb += d->name_len + 1u;
	free(dh->ents);
	free(dh->names);
	dh->n = 0;
	dh->ents = malloc(n * sizeof(*dh->ents));
	dh->names = malloc(nb);
	err = -ENOMEM;
	if (!dh->ents || !dh->names)
		goto unlock;
	memcpy(dh->names, ".\0..", 5);
	dh->ents[0] = (struct dsnap){.ino = ip->ino, .name_off = 0, .type = DT_DIR};
	dh->ents[1] =
	    (struct dsnap){.ino = ip->ino == SLAB_HANDLE_ROOT ? ip->ino : ip->d.parent,
	                   .name_off = 2,
	                   .type = DT_DIR};
	i = 2;
	pos = 5;
	for (struct tslab_dent *d = ip->ext->children; d && i < n; d = d->sib_next) {
		dh->ents[i].type = dent_type(fs, ep, d, &dh->ents[i].ino);
		if (!dh->ents[i].ino)
			continue;
		dh->ents[i].name_off = (uint32_t)pos;
		memcpy(dh->names + pos, d->name, d->name_len);
		pos += d->name_len;
		dh->names[pos++] = 0;
		i++;
	}
	dh->n = i;
	err = 0;
unlock:
	pthread_mutex_unlock(&ep->lock);
	return err;
}

/* Adds entry I in plus mode; returns its size, or 0 when it did not fit,
 * or SIZE_MAX when the entry vanished and is skipped. */
static size_t add_plus(fuse_req_t req, struct tslab_fs *fs, const struct dsnap *e,
                       const char *name, char *buf, size_t room, off_t next)
{
	struct fuse_entry_param fe;
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	size_t sz;

	if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]))) {
		memset(&fe, 0, sizeof(fe));
		fe.attr.st_ino = e->ino;
		fe.attr.st_mode = S_IFDIR;
		sz = fuse_add_direntry_plus(req, buf, room, name, &fe, next);
		return sz > room ? 0 : sz;
	}
	if (tslab_get_locked(fs, e->ino, &ep, &ip))
		return SIZE_MAX;
	tslab_fill_entry(&fe, ip);
	sz = fuse_add_direntry_plus(req, buf, room, name, &fe, next);
	if (sz <= room)
		ip->nlookup++; /* the kernel now holds a reference */
	pthread_mutex_unlock(&ep->lock);
	return sz > room ? 0 : sz;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi, bool plus)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_dirh *dh = (struct tslab_dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size ? size : 1);
	size_t pos = 0;
	int err = 0;

	if (!buf) {
		tslab_reply_err(req, -ENOMEM);
		return;
	}
	pthread_mutex_lock(&dh->mu);
	pthread_rwlock_rdlock(&fs->drop_lock);
	if (off == 0 || !dh->ents)
		err = snapshot(fs, dh, ino);
	for (size_t i = (size_t)off; !err && i < dh->n; i++) {
		const struct dsnap *e = &dh->ents[i];
		const char *name = dh->names + e->name_off;
		size_t sz;

		if (plus) {
			sz = add_plus(req, fs, e, name, buf + pos, size - pos,
			              (off_t)i + 1);
			if (sz == SIZE_MAX)
				continue;
		} else {
			struct stat st = {.st_ino = e->ino,
			                  .st_mode = (mode_t)DTTOIF(e->type)};

			sz = fuse_add_direntry(req, buf + pos, size - pos, name, &st,
			                       (off_t)i + 1);
			if (sz > size - pos)
				sz = 0;
		}
		if (!sz)
			break;
		pos += sz;
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	pthread_mutex_unlock(&dh->mu);
	if (err)
		tslab_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

void tslab_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

void tslab_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                          struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

void tslab_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                       struct fuse_file_info *fi)
{
	tslab_reply_err(req, tslab_sync_all(tslab_fs_of(req)));
}
