/* SPDX-License-Identifier: MIT */
/*
 * fs: file data and attributes — open, read, write, release, flush, fsync,
 * setattr.
 *
 * A small file's content (at most SLAB_CHUNK_MAX bytes) is brought into a
 * DRAM buffer (tslab_ext.buf) when it is written or its attributes change,
 * and written back as ONE slab_obj_put() at the last release of a
 * create-opened handle, at fsync or fsyncdir, or by the commit thread —
 * never one put per write(). A larger file is an extents file (chunks.c):
 * only the chunks a write touches are buffered and written. Reads of a file
 * that is not buffered go to slab_obj_read() or the chunks (the kernel's
 * page cache answers most of them).
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
#include <unistd.h>
#include <linux/falloc.h>

#include "fs/fs_int.h"

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

static int read_locked(struct tslab_fs *fs, struct tslab_inode *ip, size_t size,
                       off_t off, void **out, size_t *outlen)
{
	struct tslab_ext *x = ip->ext;
	size_t n;
	void *buf;
	ssize_t r;

	*out = NULL;
	*outlen = 0;
	if (S_ISDIR(ip->mode))
		return -EISDIR;
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= ip->size)
		return 0;
	n = ip->size - (uint64_t)off < size ? (size_t)(ip->size - (uint64_t)off) : size;
	buf = malloc(n);
	if (!buf)
		return -ENOMEM;
	if (x && x->extents) {
		r = tslab_chunks_read(fs, ip, n, off, buf);
		if (r < 0) {
			free(buf);
			return (int)r;
		}
		n = (size_t)r;
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

/* Is IP an extents file whose data is read through the chunks? */
static bool read_by_chunks(struct tslab_fs *fs, struct tslab_inode *ip)
{
	struct tslab_ext *x = ip->ext;

	if (x && x->extents)
		return true;
	return (!x || !x->loaded) && S_ISREG(ip->mode) && ip->size > SLAB_CHUNK_MAX &&
	       slab_fdata_is(fs->st, ip->ino) == 1;
}

/*
 * Reads of extents files reach the device without the epoch lock (only
 * drop_lock, read): metadata requests of the epoch and other files' I/O do
 * not wait for them. Everything else reads under the lock.
 */
void tslab_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	struct tslab_rsnap rs;
	void *buf = NULL;
	size_t n = 0;
	int err;

	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (err)
		goto unlock_drop;
	if (off >= 0 && S_ISREG(ip->mode) && (uint64_t)off < ip->size &&
	    read_by_chunks(fs, ip)) {
		n = ip->size - (uint64_t)off < size ? (size_t)(ip->size - (uint64_t)off) : size;
		buf = malloc(n);
		err = buf ? tslab_chunks_read_begin(ip, n, off, &rs) : -ENOMEM;
		pthread_mutex_unlock(&ep->lock);
		if (!err) {
			ssize_t r = tslab_chunks_read_end(fs, &rs, n, off, buf);

			n = r < 0 ? 0 : (size_t)r;
			err = r < 0 ? (int)r : 0;
		}
		if (err != -EINVAL)
			goto unlock_drop;
		free(buf); /* no longer an extents file: read under the lock */
		buf = NULL;
		err = tslab_get_locked(fs, ino, &ep, &ip);
		if (err)
			goto unlock_drop;
	}
	err = read_locked(fs, ip, size, off, &buf, &n);
	pthread_mutex_unlock(&ep->lock);
unlock_drop:
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
	if (end > TSLAB_FILE_MAX || end < (uint64_t)off)
		return -EFBIG;
	err = tslab_data_load(fs, ep, ip);
	if (err)
		return err;
	x = ip->ext;
	if (!x->extents && end > SLAB_CHUNK_MAX && (err = tslab_chunks_convert(fs, ep, ip)))
		return err;
	if (x->extents) {
		/* holes cost nothing: only the bytes written need room */
		err = tslab_space_check(fs, size);
		return err ? err : tslab_chunks_write(fs, ep, ip, data, size, off);
	}
	if (end > ip->size && (err = tslab_space_check(fs, end - ip->size)))
		return err;
	err = tslab_data_reserve(x, end);
	if (err)
		return err;
	if ((uint64_t)off > ip->size)
		memset(x->buf + ip->size, 0, (size_t)((uint64_t)off - ip->size));
	memcpy(x->buf + off, data, size);
	if (end > ip->size)
		ip->size = end;
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
		tslab_io_wait(ep, ip);
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
	fuse_reply_err(req, -tslab_sync_all(tslab_fs_of(req)));
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
	if (!size && ip->size <= SLAB_CHUNK_MAX && tslab_ext_get(ep, ip) &&
	    !ip->ext->extents) {
		/* O_TRUNC of a small file: the old content is not needed. */
		ip->ext->loaded = true;
		ip->size = 0;
		ip->mtime = tslab_now();
		return 0;
	}
	err = tslab_data_load(fs, ep, ip);
	if (err)
		return err;
	if (!ip->ext->extents && size > SLAB_CHUNK_MAX &&
	    (err = tslab_chunks_convert(fs, ep, ip)))
		return err;
	if (ip->ext->extents)
		return tslab_chunks_truncate(fs, ep, ip, size);
	err = tslab_data_reserve(ip->ext, size);
	if (err)
		return err;
	if (size > ip->size)
		memset(ip->ext->buf + ip->size, 0, (size_t)(size - ip->size));
	ip->size = size;
	ip->mtime = tslab_now();
	return 0;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int setattr_locked(struct tslab_fs *fs, struct tslab_epoch *ep,
                          struct tslab_inode *ip, const struct stat *a, int to_set)
{
	int64_t now = tslab_now();
	int err = 0;

	if (to_set & FUSE_SET_ATTR_SIZE)
		err = truncate_locked(fs, ep, ip, (uint64_t)a->st_size);
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
		tslab_io_wait(ep, ip);
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

/* SEEK_DATA / SEEK_HOLE (other whences never reach the daemon). */
void tslab_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                    struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	uint64_t out = 0;
	int err;

	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (err)
		goto unlock_drop;
	if (off < 0)
		err = -ENXIO;
	else if (!S_ISREG(ip->mode))
		err = S_ISDIR(ip->mode) ? -EISDIR : -EINVAL;
	else if (!(err = tslab_data_load(fs, ep, ip)) && ip->ext->extents)
		err = tslab_chunks_seek(fs, ip, (uint64_t)off, whence == SEEK_DATA, &out);
	else if (!err && (uint64_t)off >= ip->size)
		err = -ENXIO;
	else if (!err)
		out = whence == SEEK_DATA ? (uint64_t)off : ip->size;
	pthread_mutex_unlock(&ep->lock);
unlock_drop:
	pthread_rwlock_unlock(&fs->drop_lock);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_lseek(req, (off_t)out);
}

/* Mode 0 (room checked up front, size extended) and PUNCH_HOLE|KEEP_SIZE;
 * anything else EOPNOTSUPP. */
static int fallocate_locked(struct tslab_fs *fs, struct tslab_epoch *ep,
                            struct tslab_inode *ip, int mode, uint64_t off, uint64_t len)
{
	uint64_t end = off + len;
	int err;

	if (!S_ISREG(ip->mode))
		return S_ISDIR(ip->mode) ? -EISDIR : -ENODEV;
	if (end > TSLAB_FILE_MAX || end < off)
		return -EFBIG;
	err = tslab_data_load(fs, ep, ip);
	if (err)
		return err;
	if (mode == 0) {
		err = tslab_space_check(fs, len);
		if (err || end <= ip->size)
			return err;
		return truncate_locked(fs, ep, ip, end);
	}
	if (ip->ext->extents)
		return tslab_chunks_punch(fs, ep, ip, off, end);
	if (off < ip->size) {
		uint64_t stop = end < ip->size ? end : ip->size;

		memset(ip->ext->buf + off, 0, (size_t)(stop - off));
		ip->mtime = ip->ctime = tslab_now();
		tslab_mark_dirty(ep, ip->ext);
	}
	return 0;
}

void tslab_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                        off_t length, struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err = 0;

	if (mode != 0 && mode != (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE))
		err = -EOPNOTSUPP;
	else if (offset < 0 || length <= 0)
		err = -EINVAL;
	else if (tslab_is_ro(fs))
		err = -EROFS;
	if (err)
		goto out;
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		tslab_io_wait(ep, ip);
		err = fallocate_locked(fs, ep, ip, mode, (uint64_t)offset, (uint64_t)length);
		if (!err)
			err = tslab_inode_dirty(fs, ep, ip);
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	fuse_reply_err(req, -err);
}
