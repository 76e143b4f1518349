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
#include "fs/transport.h"

void tslab_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tslab_fs *fs = tslab_fs_of(req);
	struct tslab_epoch *ep;
	struct tslab_inode *ip;
	int err;

	if (fs->no_open) {
		atomic_store(&fs->kernel_no_open, true);
		tslab_reply_err(req, -ENOSYS);
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
		tslab_reply_err(req, err);
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
	if (x && x->extents) {
		r = tslab_chunks_read(fs, ip, n, off, buf);
		if (r < 0) {
			free(buf);
			return (int)r;
		}
		n = (size_t)r;
	} else if (x && x->loaded && end > ip->size && x->old_in_slab) {
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
	/* (old bytes past a shrink, read_end, are read under the lock: the
	 * window's chunks change only under it) */
	if (off >= 0 && S_ISREG(ip->mode) && (uint64_t)off < ip->size &&
	    ((uint64_t)off + size <= ip->size || read_end(ip) == ip->size) &&
	    read_by_chunks(fs, ip)) {
		n = ip->size - (uint64_t)off < size ? (size_t)(ip->size - (uint64_t)off)
		                                    : size;
		buf = malloc(n);
		err = buf ? tslab_chunks_read_begin(ep, ip, n, off, &rs) : -ENOMEM;
		pthread_mutex_unlock(&ep->lock);
		if (!err) {
			ssize_t r = tslab_chunks_read_end(fs, &rs, n, off, buf);

			n = r < 0 ? 0 : (size_t)r;
			err = r < 0 ? (int)r : 0;
		}
		/* A shrink meanwhile may have put holes where this read looked:
		 * read again under the lock (its old bytes are kept). */
		if (!err && !tslab_get_locked(fs, ino, &ep, &ip)) {
			bool again = tslab_chunks_shrunk(ep, &rs);

			pthread_mutex_unlock(&ep->lock);
			if (again)
				err = -EINVAL;
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
		tslab_reply_err(req, err);
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
	if ((err = tslab_sealed_check(ep)))
		return err;
	if (off < 0)
		return -EINVAL;
	if (end > TSLAB_FILE_MAX || end < (uint64_t)off)
		return -EFBIG;
	err = tslab_space_admit(fs, ep, ip, end > ip->size ? end : ip->size, false);
	if (err)
		return err;
	err = tslab_data_load(fs, ep, ip);
	if (err)
		return err;
	x = ip->ext;
	if (x->extents || end > SLAB_CHUNK_MAX) {
		/* holes cost nothing: the chunks the write makes dirty (and the
		 * one holding the old end, and a small file's own) need room */
		uint64_t n =
		    size ? (end - 1) / TSLAB_CH - (uint64_t)off / TSLAB_CH + 2 : 1;

		if (!x->extents)
			n += (ip->size + TSLAB_CH - 1) / TSLAB_CH;
		if ((err = tslab_chunks_admit(fs, x, n)))
			return err;
		if (!x->extents)
			err = tslab_chunks_convert(fs, ep, ip);
		if (!err)
			err = tslab_chunks_write(fs, ep, ip, data, size, off);
		tslab_chunks_unpool(fs, x);
		return err;
	}
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
	bool kill = tslab_transport_kill_suidgid();
	int err = tslab_is_ro(fs) ? -EROFS : 0;

	if (err)
		goto out;
	tslab_policy_throttle(fs, size);
	pthread_rwlock_rdlock(&fs->drop_lock);
	err = tslab_get_locked(fs, ino, &ep, &ip);
	if (!err) {
		tslab_io_wait(ep, ip);
		err = write_locked(fs, ep, ip, buf, size, off);
		/* FUSE_WRITE_KILL_SUIDGID: an unprivileged writer (the
		 * kernel leaves this to us with killpriv_v2, and on direct
		 * I/O); write_locked dirtied IP, which puts the mode too */
		if (!err && kill)
			tslab_kill_suidgid(ip);
		if (!err)
			tslab_flush_if_full(fs, ep);
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
out:
	if (err)
		tslab_reply_err(req, err);
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
	tslab_reply_err(req, -ENOSYS);
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
	tslab_reply_err(req, err ? err : tslab_sync_all(fs));
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
	tslab_reply_err(req, 0);
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
	if (!size && ip->size <= SLAB_CHUNK_MAX && tslab_ext_get(ep, ip) &&
	    !ip->ext->extents) {
		/* O_TRUNC of a small file: the old content is not needed (but
		 * stays readable). */
		keep_old(ip->ext, ip->size, 0);
		ip->ext->loaded = true;
		ip->size = 0;
		ip->mtime = tslab_now();
		return 0;
	}
	err = tslab_data_load(fs, ep, ip);
	if (err)
		return err;
	if (ip->ext->extents || size > SLAB_CHUNK_MAX) {
		struct tslab_ext *x = ip->ext;
		/* the chunk holding the old end (growth) and a small file's own */
		uint64_t n = 1 + (x->extents ? 0 : (ip->size + TSLAB_CH - 1) / TSLAB_CH);

		if ((err = tslab_chunks_admit(fs, x, n)))
			return err;
		if (!x->extents)
			err = tslab_chunks_convert(fs, ep, ip);
		if (!err)
			err = tslab_chunks_truncate(fs, ep, ip, size);
		tslab_chunks_unpool(fs, x);
		return err;
	}
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
	int err = tslab_sealed_check(ep);

	if (err)
		return err;
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
	/* FUSE_SET_ATTR_KILL_SUID is the kernel's FATTR_KILL_SUIDGID
	 * (killpriv_v2: an unprivileged truncate); a chown clears them
	 * always, as Linux does, whether or not the kernel said so. */
	if (to_set & (FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
		tslab_kill_suidgid(ip);
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
		tslab_reply_err(req, err);
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
		tslab_reply_err(req, -EINVAL);
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
		tslab_reply_err(req, err);
	else
		fuse_reply_lseek(req, (off_t)out);
}

/* Mode 0 (room checked up front, size extended) and PUNCH_HOLE|KEEP_SIZE;
 * anything else EOPNOTSUPP. */
static int fallocate_locked(struct tslab_fs *fs, struct tslab_epoch *ep,
                            struct tslab_inode *ip, int mode, uint64_t off, uint64_t len,
                            bool *inval)
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
		/* Room for the range's chunks now (an extents file's chunks are
		 * reserved when written: the check does not hold them), and for
		 * the growth as truncate admits it. */
		if (ip->ext->extents || end > SLAB_CHUNK_MAX) {
			uint64_t c = ((end - 1) / TSLAB_CH - off / TSLAB_CH + 1) *
			             slab_fdata_cost(TSLAB_CH);

			err = slab_space_reserve(fs->st, c);
			if (err)
				return err;
			slab_space_release(fs->st, c);
		}
		if (end <= ip->size)
			return tslab_space_admit(fs, ep, ip, ip->size, false);
		/* READs may have put old bytes past the size in the kernel's
		 * pages (read_end): unlike a truncate, a fallocate that extends
		 * the file does not drop them there */
		*inval = read_end(ip) > ip->size;
		return truncate_locked(fs, ep, ip, end);
	}
	/* a punch frees at least what it costs: admitted past the limit */
	if ((err = tslab_space_admit(fs, ep, ip, ip->size, true)))
		return err;
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
	bool inval = false;
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
		err = fallocate_locked(fs, ep, ip, mode, (uint64_t)offset,
		                       (uint64_t)length, &inval);
		if (!err)
			err = tslab_inode_dirty(fs, ep, ip);
		pthread_mutex_unlock(&ep->lock);
	}
	pthread_rwlock_unlock(&fs->drop_lock);
	/* before the reply: the caller's next read must not find them (the
	 * kernel holds no page lock across FALLOCATE) */
	if (!err && inval && fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
out:
	tslab_reply_err(req, err);
}
