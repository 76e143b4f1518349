/* SPDX-License-Identifier: MIT */
/*
 * fs: extended attributes. user.* attributes are objects of kind
 * TSLAB_KIND_XATTR (parent = owner inode, name = attribute name, data =
 * value) in the owner's epoch; DRAM keeps only the name, size and handle.
 *
 * user.tslab.files, .bytes, .slabs and .zones on an epoch directory (and
 * the root, for the root epoch) are read-only figures from
 * slab_epoch_stats(): objects, live record bytes, slab pages written and
 * zones holding the epoch's pages; .created, .last_write and
 * .retention_due are times (seconds, fs clock) from policy.c. The user.tslab.
 * prefix is reserved.
 *
 * Control attributes (tslabfs(8), tslabctl(8)); writing needs root or the
 * directory's owner:
 *   user.tslab.sealed  on an epoch directory: 0/1; write 1 to seal it
 *   user.tslab.drop    on an epoch directory: reads 0; write 1 = rmdir
 *   user.tslab.epochs  on the root: table of every epoch (read-only)
 *   user.tslab.zonemap on the root: the zone map (read-only)
 *   user.tslab.gc      on the root: GC counters; write "run" to collect
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <syslog.h>

#include "fs/fs_int.h"

#define TSLAB_XATTR_RESERVED "user.tslab."

static const char *const epoch_attrs[] = {
    "user.tslab.files",  "user.tslab.bytes",         "user.tslab.slabs",
    "user.tslab.zones",  "user.tslab.created",       "user.tslab.last_write",
    "user.tslab.sealed", "user.tslab.retention_due", "user.tslab.drop"};
static const char *const root_attrs[] = {"user.tslab.epochs", "user.tslab.zonemap",
                                         "user.tslab.gc"};
#define N_ROOT_ATTRS  (sizeof(root_attrs) / sizeof(root_attrs[0]))
#define N_EPOCH_ATTRS (sizeof(epoch_attrs) / sizeof(epoch_attrs[0]))

static bool has_epoch_attrs(const struct tslab_inode *ip)
{
	return ip->ino == SLAB_HANDLE_ROOT || tslab_is_epoch_dir(ip);
}

static struct tslab_xattr *xattr_find(struct tslab_inode *ip, const char *name,
                                      size_t len, struct tslab_xattr ***pp)
{
	if (!ip->ext)
		return NULL;
	for (struct tslab_xattr **p = &ip->ext->xattrs; *p; p = &(*p)->next)
		if ((*p)->name_len == len && !memcmp((*p)->name, name, len)) {
			if (pp)
				*pp = p;
			return *p;
		}
	return NULL;
}

/* Value of a user.tslab.* attribute as text; -ENODATA if not one. */
static int epoch_attr(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip,
                      const char *name, char *out, size_t outlen)
{
	struct slab_epoch_stats s;
	uint64_t v;
	int err;

	if (!has_epoch_attrs(ip))
		return -ENODATA;
	/* Count what was written, also files still buffered in DRAM (EP is
	 * the directory's own epoch, locked by the caller). */
	tslab_flush_epoch(fs, ep, 0);
	err = slab_epoch_stats(fs->st, tslab_epoch_of(ip->ino), &s);
	if (err)
		return tslab_err(fs, err, "reading epoch statistics");
	if (!strcmp(name, "user.tslab.created"))
		return snprintf(out, outlen, "%" PRId64,
		                (int64_t)(ep->created / 1000000000));
	if (!strcmp(name, "user.tslab.last_write"))
		return snprintf(out, outlen, "%" PRId64, (int64_t)ep->last_write);
	if (!strcmp(name, "user.tslab.retention_due"))
		return fs->pol.retention && ep->id != SLAB_EPOCH_ROOT
		           ? snprintf(out, outlen, "%" PRId64,
		                      ep->last_write + (int64_t)fs->pol.retention)
		           : snprintf(out, outlen, "-");
	if (!strcmp(name, "user.tslab.drop"))
		return snprintf(out, outlen, "0");
	if (!strcmp(name, epoch_attrs[0]))
		v = s.objects;
	else if (!strcmp(name, epoch_attrs[1]))
		v = s.live_bytes;
	else if (!strcmp(name, epoch_attrs[2]))
		v = s.pages;
	else if (!strcmp(name, epoch_attrs[3]))
		v = s.zones;
	else if (!strcmp(name, "user.tslab.sealed"))
		v = s.sealed;
	else
		return -ENODATA;
	return snprintf(out, outlen, "%" PRIu64, v);
}

static bool root_attr(const char *name)
{
	for (size_t i = 0; i < N_ROOT_ATTRS; i++)
		if (!strcmp(name, root_attrs[i]))
			return true;
	return false;
}

/* Caller holds drop_lock for reading and no epoch lock. */
static int root_text(struct tslab_fs *fs, const char *name, char **out, size_t *len)
{
	if (!strcmp(name, "user.tslab.epochs"))
		return tslab_policy_epochs_text(fs, out, len);
	if (!strcmp(name, "user.tslab.zonemap"))
		return tslab_policy_zones_text(fs, out, len);
	return tslab_policy_gc_text(fs, out, len);
}

/* Root, or the owner of INO. */
static int control_perm(struct tslab_fs *fs, fuse_req_t req, fuse_ino_t ino)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err;

	if (ctx->uid == 0)
		return 0;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		err = ip->uid == ctx->uid ? 0 : -EPERM;
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	return err;
}

static bool value_is(const char *value, size_t size, const char *want)
{
	size_t l = strlen(want);

	while (size && (value[size - 1] == '\n' || value[size - 1] == 0))
		size--;
	return size == l && !memcmp(value, want, l);
}

/* Writing a control attribute. After the reply, for a drop, the kernel's
 * entry is invalidated by tslab_policy_drop (on the notify thread). */
static int control_set(struct tslab_fs *fs, fuse_req_t req, fuse_ino_t ino,
                       const char *name, const char *value, size_t size)
{
	int err = control_perm(fs, req, ino);
	uint32_t done;

	if (err)
		return err;
	if (tslab_is_ro(fs))
		return -EROFS;
	if (!strcmp(name, "user.tslab.sealed"))
		return value_is(value, size, "1") ? tslab_policy_seal(fs, ino) : -EINVAL;
	if (!strcmp(name, "user.tslab.drop"))
		return value_is(value, size, "1")
		           ? tslab_policy_drop(fs, ino, "control attribute")
		           : -EINVAL;
	if (!strcmp(name, "user.tslab.gc") && ino == SLAB_HANDLE_ROOT) {
		if (!value_is(value, size, "run"))
			return -EINVAL;
		err =
		    slab_gc_run(fs->st, (uint32_t)slab_zone_map(fs->st, NULL, 0), &done);
		if (!err)
			tslab_log(LOG_INFO, "%s: gc run: %u zones collected", fs->device,
			          done);
		return err ? tslab_err(fs, err, "collecting garbage") : 0;
	}
	return -EPERM;
}

static void reply_value(fuse_req_t req, const void *val, size_t len, size_t size)
{
	if (!size)
		fuse_reply_xattr(req, len);
	else if (len > size)
		tslab_reply_err(req, -ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

static int get_locked(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip,
                      const char *name, void **val, size_t *len)
{
	struct tslab_xattr *a;
	char num[32];
	ssize_t n;
	int r;

	if (!strncmp(name, TSLAB_XATTR_RESERVED, strlen(TSLAB_XATTR_RESERVED))) {
		r = epoch_attr(fs, ep, ip, name, num, sizeof(num));
		if (r < 0)
			return r;
		*val = strdup(num);
		*len = (size_t)r;
		return *val ? 0 : -ENOMEM;
	}
	a = xattr_find(ip, name, strlen(name), NULL);
	if (!a)
		return -ENODATA;
	*len = a->size;
	*val = malloc(a->size ? a->size : 1);
	if (!*val)
		return -ENOMEM;
	n = a->size ? slab_obj_read(fs->st, a->h, 0, *val, a->size) : 0;
	if (n != (ssize_t)a->size) {
		/* the caller frees *val on every path: leave nothing behind */
		free(*val);
		*val = NULL;
		return n < 0 ? tslab_err(fs, (int)n, "reading an xattr") : -EIO;
	}
	return 0;
}

void tslab_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	void *val = NULL;
	size_t len = 0;
	int err;

	/* Only user.* names are ever stored: the kernel's security.capability
	 * check before every write() is answered without a lock. */
	if (strncmp(name, "user.", 5) || !name[5]) {
		tslab_reply_err(req, strncmp(name, "user.", 5) ? -ENODATA : -EINVAL);
		return;
	}
	if (ino == SLAB_HANDLE_ROOT && root_attr(name)) {
		pthread_rwlock_rdlock(&fs->drop_lock);
		err = root_text(fs, name, (char **)&val, &len);
		pthread_rwlock_unlock(&fs->drop_lock);
		goto reply;
	}
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		err = get_locked(fs, ep, ip, name, &val, &len);
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
reply:
	if (err)
		tslab_reply_err(req, err);
	else
		reply_value(req, val, len, size);
	free(val);
}

static int xattr_put(struct tslab_fs *fs, struct tslab_xattr *a, slab_handle_t owner,
                     const char *value, size_t size)
{
	struct slab_obj o = {
	    .kind = TSLAB_KIND_XATTR,
	    .attr = {.mode = S_IFREG | 0600,
	             .nlink = 1,
	             .size = size,
	             .ctime_ns = tslab_now()},
	    .parent = owner,
	    .name = a->name,
	    .name_len = a->name_len,
	    .data = value,
	    .data_len = size,
	};
	uint64_t cost = slab_obj_cost(size, a->name_len);
	int err = slab_space_reserve(fs->st, cost);

	if (err)
		return err;
	err = slab_obj_put(fs->st, a->h, &o);
	slab_space_release(fs->st, cost);
	return err ? tslab_err(fs, err, "writing an xattr") : 0;
}

static int set_new(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip,
                   const char *name, size_t len, const char *value, size_t size)
{
	struct tslab_ext *x = tslab_ext_get(ep, ip);
	struct tslab_xattr *a;
	slab_handle_t h;
	int err;

	if (!x)
		return -ENOMEM;
	err = slab_obj_alloc(fs->st, ep->id, &h);
	if (err)
		return tslab_err(fs, err, "creating an xattr");
	a = slab_arena_alloc(ep->arena, sizeof(*a) + len);
	if (!a) {
		slab_obj_free(fs->st, h);
		return -ENOMEM;
	}
	a->h = h;
	a->size = (uint32_t)size;
	a->name_len = (uint8_t)len;
	memcpy(a->name, name, len);
	err = xattr_put(fs, a, ip->ino, value, size);
	if (err) {
		slab_arena_free(ep->arena, a, sizeof(*a) + len);
		slab_obj_free(fs->st, h);
		return err;
	}
	a->next = x->xattrs;
	x->xattrs = a;
	return 0;
}

static int set_locked(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip,
                      const char *name, const char *value, size_t size, int flags)
{
	size_t len = strlen(name);
	struct tslab_xattr *a = xattr_find(ip, name, len, NULL);
	int err = tslab_sealed_check(ep);

	if (err)
		return err;
	if (a && (flags & XATTR_CREATE))
		return -EEXIST;
	if (!a && (flags & XATTR_REPLACE))
		return -ENODATA;
	if (!a)
		return set_new(fs, ep, ip, name, len, value, size);
	err = xattr_put(fs, a, ip->ino, value, size);
	if (!err)
		a->size = (uint32_t)size;
	return err;
}

static int name_ok(struct tslab_fs *fs, const char *name, bool write)
{
	size_t len = strlen(name);

	if (!len || len > SLAB_NAME_MAX)
		return -ERANGE;
	/* As the kernel's VFS answers for a known prefix with nothing after it. */
	if (!strcmp(name, "user."))
		return -EINVAL;
	if (!write)
		return 0;
	if (strncmp(name, "user.", 5))
		return -EOPNOTSUPP;
	if (!strncmp(name, TSLAB_XATTR_RESERVED, strlen(TSLAB_XATTR_RESERVED)))
		return -EPERM;
	return tslab_is_ro(fs) ? -EROFS : 0;
}

void tslab_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                       const char *value, size_t size, int flags)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err;

	if (!strncmp(name, TSLAB_XATTR_RESERVED, strlen(TSLAB_XATTR_RESERVED))) {
		err = control_set(fs, req, ino, name, value, size);
		goto out;
	}
	err = name_ok(fs, name, true);
	if (!err && size > TSLAB_XATTR_MAX)
		err = -E2BIG;
	if (err)
		goto out;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		err = set_locked(fs, ep, ip, name, value, size, flags);
		if (!err)
			ip->ctime = tslab_now();
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	tslab_reply_err(req, err);
}

static int remove_locked(struct tslab_fs *fs, struct tslab_epoch *ep,
                         struct tslab_inode *ip, const char *name)
{
	struct tslab_xattr **pp = NULL, *a = xattr_find(ip, name, strlen(name), &pp);
	int err = tslab_sealed_check(ep);

	if (err)
		return err;
	if (!a)
		return -ENODATA;
	err = slab_obj_free(fs->st, a->h);
	if (err)
		return tslab_err(fs, err, "removing an xattr");
	*pp = a->next;
	slab_arena_free(ep->arena, a, sizeof(*a) + a->name_len);
	ip->ctime = tslab_now();
	tslab_ext_trim(ep, ip);
	return 0;
}

void tslab_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err = name_ok(fs, name, true);

	if (err)
		goto out;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		err = remove_locked(fs, ep, ip, name);
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	tslab_reply_err(req, err);
}

static size_t list_locked(struct tslab_inode *ip, char *buf, size_t cap)
{
	size_t pos = 0;

	if (has_epoch_attrs(ip))
		for (size_t i = 0; i < N_EPOCH_ATTRS; i++) {
			size_t l = strlen(epoch_attrs[i]) + 1;

			if (buf && pos + l <= cap)
				memcpy(buf + pos, epoch_attrs[i], l);
			pos += l;
		}
	if (ip->ino == SLAB_HANDLE_ROOT)
		for (size_t i = 0; i < N_ROOT_ATTRS; i++) {
			size_t l = strlen(root_attrs[i]) + 1;

			if (buf && pos + l <= cap)
				memcpy(buf + pos, root_attrs[i], l);
			pos += l;
		}
	for (struct tslab_xattr *a = ip->ext ? ip->ext->xattrs : NULL; a; a = a->next) {
		if (buf && pos + a->name_len + 1 <= cap) {
			memcpy(buf + pos, a->name, a->name_len);
			buf[pos + a->name_len] = 0;
		}
		pos += a->name_len + 1u;
	}
	return pos;
}

void tslab_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	char *buf = size ? malloc(size) : NULL;
	size_t len = 0;
	int err = size && !buf ? -ENOMEM : 0;

	if (err)
		goto out;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		len = list_locked(ip, buf, size);
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	if (err)
		tslab_reply_err(req, err);
	else
		reply_value(req, buf, len, size);
	free(buf);
}
