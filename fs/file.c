/* SPDX-License-Identifier: MIT */
/*
 * fs: file data and attributes — open, read, write, release, flush, fsync,
 * setattr.
 *
 * A file's content is brought into a DRAM buffer (tslab_ext.buf) when it
 * is written or its attributes change, and written back as ONE
 * slab_obj_put() at the last release of a create-opened handle, at fsync
 * or fsyncdir, or by the commit thread — never one put per write(). Reads
 * of a file that is not buffered go to slab_obj_read() (the kernel's page
 * cache answers most of them).
 *
 * With fs->no_open the kernel opens existing files without a request and
 * sends no RELEASE or FLUSH for them: nothing here depends on knowing that
 * a file is open, except unlinked files, which live on until FORGET.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "fs/fs_int.h"

/* Largest file: the whole content is buffered in DRAM while written. */
#define TSLAB_FILE_MAX (1ull << 30)

void tslab_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err;

	if (fs->no_open) {
		atomic_store(&fs->kernel_no_open, true);
		fuse_reply_err(req, ENOSYS);
		return;
	}
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (err)
		goto unlock_drop;
	if (S_ISDIR(ip->mode))
		err = -EISDIR;
	else if ((fi->flags & O_ACCMODE) != O_RDONLY && tslab_is_ro(fs))
		err = -EROFS;
	else if (!tslab_ext_get(ep, ip))
		err = -ENOMEM;
	else
		ip->ext->open++;
	pthread_mutex_unlock(&ep->lock);
unlock_drop:
	pthread_rwlock_unlock(&fs->drop_lock);
	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	/* Every write goes through this mount: cached pages stay valid, and
	 * close needs no FLUSH round trip (data is put at release). */
	fi->keep_cache = 1;
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

/* Bytes of IP a READ may return: its size, or the end of the content it
 * had before a shrink while that is still readable (struct tslab_ext). */
static uint64_t read_end(const struct tslab_inode *ip)
{
	const struct tslab_ext *x = ip->ext;

	return x && x->loaded && x->old_end > ip->size ? x->old_end : ip->size;
}

/* The shrink of IP (to SIZE) keeps its old bytes readable (see read_end). */
static void keep_old(struct tslab_ext *x, uint64_t old_size, uint64_t size)
{
	if (size >= old_size)
		return;
	if (!x->loaded) /* O_TRUNC of a clean, unloaded file: the object has them */
		x->old_in_slab = true;
	if (old_size > x->old_end)
		x->old_end = old_size;
	x->old_ticks = 0;
}

/* The file grew back past its old bytes: the shrink is over for readers. */
static void grown(struct tslab_ext *x, uint64_t size)
{
	if (size >= x->old_end) {
		x->old_end = 0;
		x->old_ticks = 0;
		x->old_in_slab = false;
	}
}

static int read_locked(struct tslab_fs *fs, struct tslab_inode *ip, size_t size,
                       off_t off, void **out, size_t *outlen)
{
	struct tslab_ext *x = ip->ext;
	uint64_t end = read_end(ip);
	size_t n;
	void *buf;
	ssize_t r;

	*out = NULL;
	*outlen = 0;
	if (S_ISDIR(ip->mode))
		return -EISDIR;
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= end)
		return 0;
	n = end - (uint64_t)off < size ? (size_t)(end - (uint64_t)off) : size;
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	if (x && x->loaded && end > ip->size && x->old_in_slab) {
		/* Current bytes from the buffer, old ones from the object. */
		size_t cur =
		    (uint64_t)off < ip->size ? (size_t)(ip->size - (uint64_t)off) : 0;

		if (cur > n)
			cur = n;
		memcpy(buf, x->buf + off, cur);
		r = slab_obj_read(fs->st, ip->ino, (uint64_t)off + cur,
		                  (uint8_t *)buf + cur, n - cur);
		if (r < 0) {
			free(buf);
			return tslab_err(fs, (int)r, "reading a file");
		}
		n = cur + (size_t)r;
	} else if (x && x->loaded) {
		memcpy(buf, x->buf + off, n);
	} else {
		r = slab_obj_read(fs->st, ip->ino, (uint64_t)off, buf, n);
		if (r < 0) {
			free(buf);
			return tslab_err(fs, (int)r, "reading a file");
		}
		n = (size_t)r;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

void tslab_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	void *buf = NULL;
	size_t n = 0;
	int err;

	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		err = read_locked(fs, ip, size, off, &buf, &n);
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

static int write_locked(struct tslab_fs *fs, struct tslab_epoch *ep,
                        struct tslab_inode *ip, const char *data, size_t size, off_t off)
{
	struct tslab_ext *x;
	uint64_t end = (uint64_t)off + size;
	int err;

	if (!S_ISREG(ip->mode))
		return S_ISDIR(ip->mode) ? -EISDIR : -EINVAL;
	if (off < 0)
		return -EINVAL;
	if (end > TSLAB_FILE_MAX)
		return -EFBIG;
	err = tslab_space_admit(fs, ep, ip, end > ip->size ? end : ip->size, false);
	if (err)
		return err;
	err = tslab_data_load(fs, ep, ip);
	if (err)
		return err;
	x = ip->ext;
	err = tslab_data_reserve(x, end);
	if (err)
		return err;
	if ((uint64_t)off > ip->size)
		memset(x->buf + ip->size, 0, (size_t)((uint64_t)off - ip->size));
	memcpy(x->buf + off, data, size);
	if (end > ip->size)
		ip->size = end;
	grown(x, ip->size);
	ip->mtime = ip->ctime = tslab_now();
	tslab_mark_dirty(ep, x);
	return 0;
}

void tslab_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                    off_t off, struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err = tslab_is_ro(fs) ? -EROFS : 0;

	if (err)
		goto out;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		err = write_locked(fs, ep, ip, buf, size, off);
		if (!err)
			tslab_flush_if_full(fs, ep);
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_write(req, size);
}

/* fsync, fdatasync and fsyncdir make everything written before them
 * durable (tslabfs(8)): put every dirty inode and pending unlink, then sync
 * the store. Dirty inodes are few: about TSLAB_DIRTY_BATCH per epoch. */
int tslab_sync_all(struct tslab_fs *fs)
{
	int err;

	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_flush_all(fs, 0);
	pthread_rwlock_unlock(&fs->drop_lock);
	if (!err) {
		err = slab_sync(fs->st);
		if (err)
			err = tslab_err(fs, err, "syncing");
	}
	return err;
}

/* Nothing to do at close: ENOSYS makes the kernel stop sending FLUSH
 * (handles we answer carry FOPEN_NOFLUSH anyway). */
void tslab_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, ENOSYS);
}

void tslab_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                    struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err;

	/* A descriptor of a dropped epoch (or a freed file) is stale, as for
	 * read, write and fstat. */
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err)
		pthread_mutex_unlock(&ep->lock);
	pthread_rwlock_unlock(&fs->drop_lock);
	fuse_reply_err(req, err ? -err : -tslab_sync_all(fs));
}

void tslab_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err;

	pthread_rwlock_rdlock(&fs->drop_lock);
	/* A stale handle (dropped epoch) has nothing left to release. */
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (err)
		goto unlock_drop;
	if (ip->ext && ip->ext->open)
		ip->ext->open--;
	if (!ip->ext || ip->ext->open)
		goto unlock;
	if (ip->orphan) {
		err = tslab_orphan_release(fs, ep, ip);
		goto unlock;
	}
	if (ip->ext->dirty)
		err = tslab_inode_put(fs, ip);
	if (err) /* stays dirty: the commit thread retries */
		tslab_log(LOG_WARNING, "%s: file %#llx: content not written at close: %s",
		          fs->device, (unsigned long long)ino, strerror(-err));
	tslab_ext_trim(ep, ip);
unlock:
	pthread_mutex_unlock(&ep->lock);
unlock_drop:
	pthread_rwlock_unlock(&fs->drop_lock);
	fuse_reply_err(req, 0);
}

static int truncate_locked(struct tslab_fs *fs, struct tslab_epoch *ep,
                           struct tslab_inode *ip, uint64_t size)
{
	int err;

	if (S_ISDIR(ip->mode))
		return -EISDIR;
	if (!S_ISREG(ip->mode))
		return -EINVAL;
	if (size > TSLAB_FILE_MAX)
		return -EFBIG;
	err = tslab_space_admit(fs, ep, ip, size, false);
	if (err)
		return err;
	if (!size && tslab_ext_get(ep, ip)) {
		/* O_TRUNC: the old content is not needed (but stays readable). */
		keep_old(ip->ext, ip->size, 0);
		ip->ext->loaded = true;
		ip->size = 0;
		ip->mtime = tslab_now();
		return 0;
	}
	err = tslab_data_load(fs, ep, ip);
	if (!err)
		err = tslab_data_reserve(ip->ext, size);
	if (err)
		return err;
	keep_old(ip->ext, ip->size, size);
	if (size > ip->size)
		memset(ip->ext->buf + ip->size, 0, (size_t)(size - ip->size));
	ip->size = size;
	grown(ip->ext, size);
	ip->mtime = tslab_now();
	return 0;
}

/*
 * Timestamps are stored as signed 64-bit nanoseconds since the epoch:
 * 1677-09-21T00:12:43.145224192Z to 2262-04-11T23:47:16.854775807Z. A time
 * outside is clamped to the nearest end, as the kernel clamps to a
 * filesystem's s_time_min/s_time_max (docs/design.md).
 */
static int64_t ts_ns(const struct timespec *ts)
{
	int64_t sec = (int64_t)ts->tv_sec, nsec = ts->tv_nsec, v;

	if (sec < 0 && nsec > 0) { /* same instant, without the overflow */
		sec++;
		nsec -= 1000000000;
	}
	if (__builtin_mul_overflow(sec, (int64_t)1000000000, &v) ||
	    __builtin_add_overflow(v, nsec, &v))
		return sec < 0 ? INT64_MIN : INT64_MAX;
	return v;
}

static int setattr_locked(struct tslab_fs *fs, struct tslab_epoch *ep,
                          struct tslab_inode *ip, const struct stat *a, int to_set)
{
	int64_t now = tslab_now();
	int err = 0;

	if (to_set & FUSE_SET_ATTR_SIZE)
		err = truncate_locked(fs, ep, ip, (uint64_t)a->st_size);
	else
		err = tslab_space_admit(fs, ep, ip, ip->size, false);
	if (err)
		return err;
	if (to_set & FUSE_SET_ATTR_MODE)
		ip->mode = (ip->mode & S_IFMT) | (a->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		ip->uid = a->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		ip->gid = a->st_gid;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		ip->atime = now;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		ip->atime = ts_ns(&a->st_atim);
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		ip->mtime = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		ip->mtime = ts_ns(&a->st_mtim);
	if (to_set & FUSE_SET_ATTR_CTIME)
		ip->ctime = ts_ns(&a->st_ctim);
	else
		ip->ctime = now;
	return tslab_inode_dirty(fs, ep, ip);
}

void tslab_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                      struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	struct stat st;
	int err = tslab_is_ro(fs) ? -EROFS : 0;

	if (err)
		goto out;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		err = setattr_locked(fs, ep, ip, attr, to_set);
		tslab_inode_stat(ip, &st);
		/* The change is put by fsync, the commit thread or the release
		 * of a create-opened handle (with no_open there is no release
		 * for other opens, and O_TRUNC + write is one put, not two). */
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_attr(req, &st, TSLAB_TIMEOUT);
}
