/* SPDX-License-Identifier: MIT */
/*
 * fs: data of extents files — regular files larger than one record.
 *
 * A regular file of at most SLAB_CHUNK_MAX bytes is one object with its
 * content in the record (tslab_ext.buf while it is being changed). When a
 * write or truncate takes it past that, it becomes an extents file
 * (slab_fdata_begin): its bytes live in chunks of TSLAB_CH bytes, chunk i
 * holding file offsets [i * TSLAB_CH, (i + 1) * TSLAB_CH), each written on
 * its own (slab_fdata_write), and its head record carries attributes only.
 * It stays an extents file until it is freed.
 *
 * Dirty chunks are gathered per file in tslab_ext.dc (at most TSLAB_DC_MAX
 * chunks, about 256 KiB; a full cache is written out by the write that
 * needs room) and written, in index order, before the head at every put of
 * the inode (fsync, commit thread, release, truncate). DRAM per file being
 * written is therefore bounded by TSLAB_DC_MAX chunks, never by its size.
 *
 * Invariants (epoch lock held for all of it)
 *   - bytes at file offsets >= ip->size read as zeros once the file grows:
 *     a chunk loaded for a change has its bytes past ip->size cleared; the
 *     chunk holding the old end of file is rewritten when the file grows;
 *     chunks wholly past the old end get hole records (slab_fdata_punch),
 *     which also covers chunks that a crash left beyond the recovered size;
 *   - cached chunks lie below ip->size (truncate drops the others);
 *   - a truncation puts the head (smaller size) before its hole records,
 *     and a truncation to 0 puts a head that starts a new data generation
 *     (SLAB_EXT_RESET): no chunk is ever both dead and needed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_int.h"

static uint64_t ch_first(uint64_t idx)
{
	return idx * TSLAB_CH;
}

/* Cached dirty chunk IDX, or NULL. */
static struct tslab_dchunk *dc_find(struct tslab_ext *x, uint64_t idx)
{
	for (uint32_t i = 0; i < x->ndc; i++)
		if (x->dc[i].idx == idx)
			return &x->dc[i];
	return NULL;
}

static int dc_cmp(const void *a, const void *b)
{
	const struct tslab_dchunk *x = a, *y = b;

	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void tslab_chunks_free(struct tslab_ext *x)
{
	free(x->dc);
	x->dc = NULL;
	x->ndc = x->dccap = 0;
}

/* Write every cached chunk of IP (in index order) and empty the cache. */
int tslab_chunks_flush(struct tslab_fs *fs, struct tslab_inode *ip)
{
	struct tslab_ext *x = ip->ext;
	uint32_t done = 0;
	int err = 0;

	if (!x || !x->ndc)
		return 0;
	qsort(x->dc, x->ndc, sizeof(*x->dc), dc_cmp);
	while (done < x->ndc && !err) {
		struct tslab_dchunk *c = &x->dc[done];
		const void *run[SLAB_FDATA_RUN];
		uint32_t n = 0;

		/* consecutive full chunks go out as one device write */
		while (done + n < x->ndc && n < SLAB_FDATA_RUN &&
		       x->dc[done + n].idx == c->idx + n &&
		       ch_first(c->idx + n) + TSLAB_CH <= ip->size) {
			run[n] = x->dc[done + n].data;
			n++;
		}
		if (n > 1) {
			err = slab_fdata_write_run(fs->st, ip->ino, c->idx, n, run);
			if (!err)
				done += n;
			continue;
		}
		uint64_t first = ch_first(c->idx);
		uint32_t len;

		if (first < ip->size) { /* else dropped: truncate removes them */
			len = ip->size - first < TSLAB_CH ? (uint32_t)(ip->size - first)
			                                  : TSLAB_CH;
			err = slab_fdata_write(fs->st, ip->ino, c->idx, c->data, len);
		}
		if (!err)
			done++;
	}
	/* Keep what was not written (retried by the next put). */
	memmove(x->dc, x->dc + done, (x->ndc - done) * sizeof(*x->dc));
	x->ndc -= done;
	if (err == -ENOSPC)
		atomic_store(&fs->space_full, true);
	if (err)
		return tslab_err(fs, err, "writing file data");
	if (!x->ndc)
		tslab_chunks_free(x);
	return 0;
}

/* Chunk IDX of IP as it reads now, into BUF (TSLAB_CH bytes). */
static int chunk_load(struct tslab_fs *fs, struct tslab_inode *ip, uint64_t idx,
                      uint8_t *buf)
{
	uint64_t first = ch_first(idx);
	ssize_t n = 0;

	if (first < ip->size) {
		n = slab_fdata_read(fs->st, ip->ino, idx, buf);
		if (n < 0)
			return tslab_err(fs, (int)n, "reading file data");
	}
	memset(buf + n, 0, TSLAB_CH - (size_t)n);
	/* past the end of file: zeros, whatever an old record still holds */
	if (first + TSLAB_CH > ip->size) {
		uint64_t keep = first < ip->size ? ip->size - first : 0;

		memset(buf + keep, 0, TSLAB_CH - keep);
	}
	return 0;
}

/*
 * The cached chunk IDX, added (and loaded unless WHOLE: the caller
 * overwrites every byte that matters) when absent. A full cache is written
 * out first.
 */
static int dc_get(struct tslab_fs *fs, struct tslab_inode *ip, uint64_t idx, bool whole,
                  struct tslab_dchunk **out)
{
	struct tslab_ext *x = ip->ext;
	struct tslab_dchunk *c = dc_find(x, idx);
	int err;

	if (c) {
		*out = c;
		return 0;
	}
	if (x->ndc >= TSLAB_DC_MAX && (err = tslab_chunks_flush(fs, ip)))
		return err;
	if (x->ndc == x->dccap) {
		uint32_t ncap = x->dccap ? x->dccap * 2 : 4;
		struct tslab_dchunk *n;

		if (ncap > TSLAB_DC_MAX)
			ncap = TSLAB_DC_MAX;
		n = realloc(x->dc, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		x->dc = n;
		x->dccap = ncap;
	}
	c = &x->dc[x->ndc];
	c->idx = idx;
	if (whole)
		memset(c->data, 0, TSLAB_CH);
	else if ((err = chunk_load(fs, ip, idx, c->data)))
		return err;
	x->ndc++;
	*out = c;
	return 0;
}

/* Drop cached chunks with index >= FROM (and < TO). */
static void dc_drop(struct tslab_ext *x, uint64_t from, uint64_t to)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < x->ndc; i++)
		if (x->dc[i].idx < from || x->dc[i].idx >= to)
			x->dc[n++] = x->dc[i];
	x->ndc = n;
	if (!n)
		tslab_chunks_free(x);
}

/* IP grows from ip->size to NEWSIZE: what lies beyond the old end must read
 * as zeros (see the invariants above). */
static int grow(struct tslab_fs *fs, struct tslab_inode *ip, uint64_t newsize)
{
	uint64_t old = ip->size, k0 = (old + TSLAB_CH - 1) / TSLAB_CH;
	struct tslab_dchunk *c;
	int err;

	if (newsize <= old)
		return 0;
	if (old % TSLAB_CH && (err = dc_get(fs, ip, old / TSLAB_CH, false, &c)))
		return err;
	err = slab_fdata_punch(fs->st, ip->ino, k0, SLAB_FDATA_NIDX);
	if (err)
		return tslab_err(fs, err, "writing file data");
	return 0;
}

int tslab_chunks_convert(struct tslab_fs *fs, struct tslab_epoch *ep,
                         struct tslab_inode *ip)
{
	struct tslab_ext *x = ip->ext;
	struct tslab_dchunk *c;
	int err;

	err = slab_fdata_begin(fs->st, ip->ino);
	if (err)
		return tslab_err(fs, err, "starting file data");
	x->extents = true;
	/* The old record stays valid until the extents head is put. A file
	 * from before extents (chunked object) may be larger than one chunk. */
	for (uint64_t first = 0; first < ip->size; first += TSLAB_CH) {
		size_t n = ip->size - first < TSLAB_CH ? (size_t)(ip->size - first) : TSLAB_CH;

		err = dc_get(fs, ip, first / TSLAB_CH, true, &c);
		if (err)
			return err;
		memcpy(c->data, x->buf + first, n);
	}
	free(x->buf);
	x->buf = NULL;
	x->cap = 0;
	tslab_mark_dirty(ep, x);
	return 0;
}

int tslab_chunks_write(struct tslab_fs *fs, struct tslab_epoch *ep,
                       struct tslab_inode *ip, const char *data, size_t size, off_t off)
{
	uint64_t pos = (uint64_t)off, end = pos + size;
	int err = grow(fs, ip, end);

	while (!err && pos < end) {
		uint64_t idx = pos / TSLAB_CH, first = ch_first(idx);

		if (pos == first && end - pos >= TSLAB_CH) {
			/* whole chunks: straight from the request, no copy */
			const void *run[SLAB_FDATA_RUN];
			uint32_t k = 0;

			for (; k < SLAB_FDATA_RUN && pos + (k + 1) * (uint64_t)TSLAB_CH <= end;
			     k++) {
				run[k] = data + (pos + k * (uint64_t)TSLAB_CH - (uint64_t)off);
				dc_drop(ip->ext, idx + k, idx + k + 1);
			}
			/* the device write without the epoch lock (fs_int.h) */
			ip->ext->io_busy = true;
			pthread_mutex_unlock(&ep->lock);
			err = k == 1 ? slab_fdata_write(fs->st, ip->ino, idx, run[0], TSLAB_CH)
			             : slab_fdata_write_run(fs->st, ip->ino, idx, k, run);
			pthread_mutex_lock(&ep->lock);
			ip->ext->io_busy = false;
			pthread_cond_broadcast(&ep->iocv);
			if (err) {
				err = tslab_err(fs, err, "writing file data");
				break;
			}
			pos += k * (uint64_t)TSLAB_CH;
			if (pos > ip->size)
				ip->size = pos;
			continue;
		}
		uint64_t in = pos - first;
		size_t n = TSLAB_CH - in < end - pos ? TSLAB_CH - in : (size_t)(end - pos);
		uint64_t valid = ip->size > first ? ip->size - first : 0;
		/* the write covers every byte of the chunk that holds data */
		bool whole = in == 0 && (n == TSLAB_CH || n >= valid);
		struct tslab_dchunk *c;

		err = dc_get(fs, ip, idx, whole, &c);
		if (err)
			break;
		memcpy(c->data + in, data + (pos - (uint64_t)off), n);
		pos += n;
		if (pos > ip->size)
			ip->size = pos;
	}
	ip->mtime = ip->ctime = tslab_now();
	tslab_mark_dirty(ep, ip->ext);
	return err;
}

int tslab_chunks_read_begin(struct tslab_inode *ip, size_t size, off_t off,
                            struct tslab_rsnap *rs)
{
	struct tslab_ext *x = ip->ext;
	uint64_t pos = (uint64_t)off, end = pos + size;

	memset(rs, 0, sizeof(*rs));
	rs->ino = ip->ino;
	rs->size = ip->size;
	if (end > ip->size)
		end = ip->size;
	for (uint32_t i = 0; x && pos < end && i < x->ndc; i++) {
		uint64_t first = ch_first(x->dc[i].idx);

		if (first >= end || first + TSLAB_CH <= pos)
			continue;
		if (rs->n == rs->cap) {
			uint32_t ncap = rs->cap ? rs->cap * 2 : 4;
			struct tslab_dchunk *d = realloc(rs->dc, ncap * sizeof(*d));

			if (!d) {
				free(rs->dc);
				return -ENOMEM;
			}
			rs->dc = d;
			rs->cap = ncap;
		}
		rs->dc[rs->n++] = x->dc[i];
	}
	return 0;
}

static const struct tslab_dchunk *rs_find(const struct tslab_rsnap *rs, uint64_t idx)
{
	for (uint32_t i = 0; i < rs->n; i++)
		if (rs->dc[i].idx == idx)
			return &rs->dc[i];
	return NULL;
}

ssize_t tslab_chunks_read_end(struct tslab_fs *fs, struct tslab_rsnap *rs, size_t size,
                              off_t off, uint8_t *buf)
{
	uint64_t pos = (uint64_t)off, end = pos + size;
	uint32_t lens[SLAB_FDATA_RUN];
	uint8_t *tmp;
	ssize_t ret;

	if (end > rs->size)
		end = rs->size;
	if (pos >= end) {
		ret = 0;
		goto out;
	}
	tmp = malloc((size_t)SLAB_FDATA_RUN * TSLAB_CH);
	if (!tmp) {
		ret = -ENOMEM;
		goto out;
	}
	while (pos < end) {
		uint64_t idx = pos / TSLAB_CH, last = (end - 1) / TSLAB_CH;
		uint32_t n = last - idx + 1 < SLAB_FDATA_RUN ? (uint32_t)(last - idx + 1)
		                                               : SLAB_FDATA_RUN;
		int err = slab_fdata_read_run(fs->st, rs->ino, idx, n, tmp, lens);

		if (err) {
			free(tmp);
			ret = err == -EINVAL ? err : tslab_err(fs, err, "reading file data");
			goto out;
		}
		for (uint32_t i = 0; i < n && pos < end; i++) {
			const uint8_t *c = tmp + (size_t)i * TSLAB_CH;
			const struct tslab_dchunk *d = rs_find(rs, idx + i);
			uint64_t in = pos - ch_first(idx + i);
			size_t k = TSLAB_CH - in < end - pos ? TSLAB_CH - in : (size_t)(end - pos);

			if (d)
				c = d->data;
			else
				memset(tmp + (size_t)i * TSLAB_CH + lens[i], 0, TSLAB_CH - lens[i]);
			memcpy(buf, c + in, k);
			buf += k;
			pos += k;
		}
	}
	free(tmp);
	ret = (ssize_t)(end - (uint64_t)off);
out:
	free(rs->dc);
	rs->dc = NULL;
	return ret;
}

ssize_t tslab_chunks_read(struct tslab_fs *fs, struct tslab_inode *ip, size_t size,
                          off_t off, uint8_t *buf)
{
	struct tslab_rsnap rs;
	int err = tslab_chunks_read_begin(ip, size, off, &rs);

	return err ? err : tslab_chunks_read_end(fs, &rs, size, off, buf);
}

int tslab_chunks_truncate(struct tslab_fs *fs, struct tslab_epoch *ep,
                          struct tslab_inode *ip, uint64_t size)
{
	struct tslab_ext *x = ip->ext;
	uint64_t keep = (size + TSLAB_CH - 1) / TSLAB_CH;
	int err;

	if (size > ip->size) {
		err = grow(fs, ip, size);
		if (!err) {
			ip->size = size;
			tslab_mark_dirty(ep, x);
		}
		return err;
	}
	if (size == ip->size)
		return 0;
	dc_drop(x, keep, UINT64_MAX);
	if (size % TSLAB_CH) {
		struct tslab_dchunk *c = dc_find(x, size / TSLAB_CH);

		if (c)
			memset(c->data + size % TSLAB_CH, 0, TSLAB_CH - size % TSLAB_CH);
	}
	ip->size = size;
	ip->mtime = ip->ctime = tslab_now();
	tslab_mark_dirty(ep, x);
	/* the smaller head first, then the holes (see above) */
	err = tslab_inode_put_ext(fs, ip, size == 0);
	if (err || !size)
		return err;
	err = slab_fdata_punch(fs->st, ip->ino, keep, SLAB_FDATA_NIDX);
	return err ? tslab_err(fs, err, "truncating") : 0;
}

/* Zero [off, end) of IP (inside the file): cached partial chunks, hole
 * records for whole ones. */
int tslab_chunks_punch(struct tslab_fs *fs, struct tslab_epoch *ep,
                       struct tslab_inode *ip, uint64_t off, uint64_t end)
{
	struct tslab_ext *x = ip->ext;
	uint64_t a = (off + TSLAB_CH - 1) / TSLAB_CH, b = end / TSLAB_CH;
	struct tslab_dchunk *c;
	int err = 0;

	if (end > ip->size)
		end = ip->size;
	if (off >= end)
		return 0;
	if (end == ip->size)
		b = (end + TSLAB_CH - 1) / TSLAB_CH; /* the last chunk is wholly gone */
	for (uint64_t pos = off; pos < end && !err;) {
		uint64_t idx = pos / TSLAB_CH, first = ch_first(idx);
		uint64_t stop = first + TSLAB_CH < end ? first + TSLAB_CH : end;

		if (idx >= a && idx < b) {
			pos = ch_first(b);
			continue;
		}
		err = dc_get(fs, ip, idx, false, &c);
		if (!err)
			memset(c->data + (pos - first), 0, stop - pos);
		pos = stop;
	}
	if (!err && a < b) {
		dc_drop(x, a, b);
		err = slab_fdata_punch(fs->st, ip->ino, a, b);
		if (err)
			err = tslab_err(fs, err, "punching a hole");
	}
	ip->mtime = ip->ctime = tslab_now();
	tslab_mark_dirty(ep, x);
	return err;
}

/* Does chunk IDX of IP hold data (cached or on the device)? */
static int chunk_has_data(struct tslab_fs *fs, struct tslab_inode *ip, uint64_t idx)
{
	uint64_t next;
	int err;

	if (ip->ext && dc_find(ip->ext, idx))
		return 1;
	err = slab_fdata_next_data(fs->st, ip->ino, idx, &next);
	if (err == -ENXIO)
		return 0;
	if (err)
		return err;
	return next == idx;
}

int tslab_chunks_seek(struct tslab_fs *fs, struct tslab_inode *ip, uint64_t off,
                      bool data, uint64_t *out)
{
	uint64_t idx = off / TSLAB_CH, best = UINT64_MAX, next;
	struct tslab_ext *x = ip->ext;
	int err;

	if (off >= ip->size)
		return -ENXIO;
	if (data) {
		err = slab_fdata_next_data(fs->st, ip->ino, idx, &next);
		if (err && err != -ENXIO)
			return tslab_err(fs, err, "seeking");
		if (!err)
			best = next;
		for (uint32_t i = 0; x && i < x->ndc; i++)
			if (x->dc[i].idx >= idx && x->dc[i].idx < best)
				best = x->dc[i].idx;
		if (best == UINT64_MAX || ch_first(best) >= ip->size)
			return -ENXIO;
		*out = ch_first(best) > off ? ch_first(best) : off;
		return 0;
	}
	for (;; idx++) {
		if (ch_first(idx) >= ip->size) {
			*out = ip->size;
			return 0;
		}
		err = chunk_has_data(fs, ip, idx);
		if (err < 0)
			return tslab_err(fs, err, "seeking");
		if (!err) {
			*out = ch_first(idx) > off ? ch_first(idx) : off;
			return 0;
		}
	}
}
