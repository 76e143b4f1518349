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
 *
 * Space (slab.h, "Space admission"): the head is admitted as for any inode
 * (tslab_space_admit, its head's cost only); every chunk in dc holds in
 * c->resv (summed in x->cresv) what writing it will add to the slab's
 * costs: its record's cost at the current size minus that of the record it
 * replaces (dc_settle, at the end of every request that changes chunks),
 * given back when it is written (the slab then counts the record) or
 * dropped. A request takes a full chunk's cost per chunk it may make dirty
 * ahead (tslab_chunks_admit into x->cpool), so ENOSPC comes before it
 * changes anything, never from a flush at fsync, release or unmount; and
 * the costs counted after a flush are what df said before it.
 *
 * Readers (fs/file.c read_end): a shrink copies the old bytes of the chunks
 * from the new end on (at most TSLAB_OTAIL_MAX) into x->otail before its
 * holes are written, and keeps them readable until
 * tslab_chunks_window_close (two commit ticks, a growth past them,
 * unmount): a READ the kernel sent before it learnt of the shrink is
 * answered with them. A read that reached the device without the lock
 * while the file shrank is done again under it (tslab_chunks_shrunk).
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

/* What one cached dirty chunk holds reserved: a full chunk record. */
static uint64_t ch_cost(void)
{
	return slab_fdata_cost(TSLAB_CH);
}

/* A chunk enters the cache: its cost from the request's pool, else
 * reserved now (FORCE: charged past the limit, for a change that frees
 * at least as much, a punch). */
static int ch_take(struct tslab_fs *fs, struct tslab_ext *x, bool force)
{
	uint64_t c = ch_cost();

	if (x->cpool >= c) {
		x->cpool -= c;
	} else if (force) {
		slab_space_charge(fs->st, c);
	} else {
		int err = slab_space_reserve(fs->st, c);

		if (err)
			return err;
	}
	x->cresv += c;
	return 0;
}

/* Bytes C held for chunks go back (written or dropped). */
static void ch_give_bytes(struct tslab_fs *fs, struct tslab_ext *x, uint64_t c)
{
	if (c > x->cresv) /* released already (tslab_space_unadmit) */
		c = x->cresv;
	x->cresv -= c;
	slab_space_release(fs->st, c);
}

static void ch_give(struct tslab_fs *fs, struct tslab_ext *x, uint64_t n)
{
	ch_give_bytes(fs, x, n * ch_cost());
}

/* Bytes chunk IDX of IP adds when written at the current size. */
static uint64_t dc_need(const struct tslab_inode *ip, const struct tslab_dchunk *c)
{
	uint64_t first = c->idx * TSLAB_CH, len, cost;

	if (first >= ip->size)
		return 0; /* dropped at the flush */
	len = ip->size - first < TSLAB_CH ? ip->size - first : TSLAB_CH;
	cost = slab_fdata_cost((uint32_t)len);
	return cost > c->oldc ? cost - c->oldc : 0;
}

/* Make every dirty chunk hold what writing it will add (from the pool,
 * else reserved; FORCE: charged past the limit). */
static int dc_settle(struct tslab_fs *fs, struct tslab_inode *ip, bool force)
{
	struct tslab_ext *x = ip->ext;

	for (uint32_t i = 0; i < x->ndc; i++) {
		struct tslab_dchunk *c = &x->dc[i];
		uint64_t need = dc_need(ip, c);

		if (need < c->resv) {
			ch_give_bytes(fs, x, c->resv - need);
		} else if (need > c->resv) {
			uint64_t more = need - c->resv;

			if (x->cpool >= more) {
				x->cpool -= more;
			} else if (force) {
				slab_space_charge(fs->st, more);
			} else {
				int err = slab_space_reserve(fs->st, more);

				if (err)
					return err;
			}
			x->cresv += more;
		}
		c->resv = (uint32_t)need;
	}
	return 0;
}

int tslab_chunks_admit(struct tslab_fs *fs, struct tslab_ext *x, uint64_t n)
{
	uint64_t c = n * ch_cost();
	int err = slab_space_reserve(fs->st, c);

	if (!err)
		x->cpool += c;
	return err;
}

void tslab_chunks_unpool(struct tslab_fs *fs, struct tslab_ext *x)
{
	slab_space_release(fs->st, x->cpool);
	x->cpool = 0;
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
	for (uint32_t i = 0; i < done; i++)
		ch_give_bytes(fs, x, x->dc[i].resv);
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
	/* its space: dc_settle, at the end of the request */
	c->resv = 0;
	c->oldc = (uint32_t)slab_fdata_chunk_cost(fs->st, ip->ino, idx);
	x->ndc++;
	*out = c;
	return 0;
}

/* Drop cached chunks with index >= FROM (and < TO). */
static void dc_drop(struct tslab_fs *fs, struct tslab_ext *x, uint64_t from, uint64_t to)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < x->ndc; i++) {
		if (x->dc[i].idx < from || x->dc[i].idx >= to)
			x->dc[n++] = x->dc[i];
		else
			ch_give_bytes(fs, x, x->dc[i].resv);
	}
	x->ndc = n;
	if (!n)
		tslab_chunks_free(x);
}

/* The old tail kept for chunk IDX, or NULL. */
static struct tslab_dchunk *ot_find(struct tslab_dchunk *ot, uint32_t n, uint64_t idx)
{
	for (uint32_t i = 0; i < n; i++)
		if (ot[i].idx == idx)
			return &ot[i];
	return NULL;
}

void tslab_chunks_window_close(struct tslab_inode *ip)
{
	struct tslab_ext *x = ip->ext;

	if (!x)
		return;
	free(x->otail);
	x->otail = NULL;
	x->notail = 0;
	x->old_end = 0;
	x->old_ticks = 0;
}

bool tslab_chunks_shrunk(const struct tslab_epoch *ep, const struct tslab_rsnap *rs)
{
	return ep->shrinks != rs->shrinks;
}

/*
 * IP shrinks to SIZE (its dirty chunks written): keep the bytes of chunks
 * SIZE / TSLAB_CH on, as they read now past SIZE, until the window
 * closes; a chunk kept already keeps its older bytes past the old end.
 */
static int ot_keep(struct tslab_fs *fs, struct tslab_inode *ip, uint64_t size)
{
	struct tslab_ext *x = ip->ext;
	uint64_t last = (ip->size + TSLAB_CH - 1) / TSLAB_CH;
	uint8_t *buf = malloc(TSLAB_CH);
	int err = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t idx = size / TSLAB_CH; idx < last && !err; idx++) {
		struct tslab_dchunk *t = ot_find(x->otail, x->notail, idx), *n;
		uint64_t first = ch_first(idx);
		uint64_t cur = ip->size - first < TSLAB_CH ? ip->size - first : TSLAB_CH;
		ssize_t got;

		if (!t && x->notail >= TSLAB_OTAIL_MAX)
			break; /* farther old bytes are not kept (docs/design.md) */
		got = slab_fdata_read(fs->st, ip->ino, idx, buf);
		if (got < 0) {
			err = tslab_err(fs, (int)got, "reading file data");
			break;
		}
		memset(buf + got, 0, TSLAB_CH - (size_t)got);
		if (!t) {
			n = realloc(x->otail, (x->notail + 1) * sizeof(*n));
			if (!n) {
				err = -ENOMEM;
				break;
			}
			x->otail = n;
			t = &x->otail[x->notail++];
			t->idx = idx;
			memset(t->data, 0, TSLAB_CH);
		}
		/* below the current end the newest bytes; past it the tail's */
		memcpy(t->data, buf, cur);
	}
	free(buf);
	return err;
}

/* Hole records for chunks [FROM, TO) of IP except [SKIP_A, SKIP_B), which
 * the caller is about to write. */
static int punch_except(struct tslab_fs *fs, struct tslab_inode *ip, uint64_t from,
                        uint64_t to, uint64_t skip_a, uint64_t skip_b)
{
	int err = 0;

	if (skip_a >= skip_b || skip_b <= from || skip_a >= to)
		skip_a = skip_b = to;
	if (from < skip_a)
		err = slab_fdata_punch(fs->st, ip->ino, from, skip_a);
	if (!err && skip_b < to)
		err =
		    slab_fdata_punch(fs->st, ip->ino, skip_b > from ? skip_b : from, to);
	return err ? tslab_err(fs, err, "writing file data") : 0;
}

/* IP grows from ip->size to NEWSIZE: what lies beyond the old end must read
 * as zeros (see the invariants above); chunks [WA, WB) are about to be
 * written by the caller and need no hole. A growth past the old bytes of a
 * shrink ends their window. */
static int grow(struct tslab_fs *fs, struct tslab_inode *ip, uint64_t newsize,
                uint64_t wa, uint64_t wb)
{
	struct tslab_ext *x = ip->ext;
	uint64_t old = ip->size, k0 = (old + TSLAB_CH - 1) / TSLAB_CH;
	struct tslab_dchunk *c;
	int err;

	if (newsize <= old)
		return 0;
	if (newsize >= x->old_end)
		tslab_chunks_window_close(ip);
	if (old % TSLAB_CH && (err = dc_get(fs, ip, old / TSLAB_CH, false, &c)))
		return err;
	return punch_except(fs, ip, k0, SLAB_FDATA_NIDX, wa, wb);
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
		size_t n =
		    ip->size - first < TSLAB_CH ? (size_t)(ip->size - first) : TSLAB_CH;

		err = dc_get(fs, ip, first / TSLAB_CH, true, &c);
		if (err)
			return err;
		memcpy(c->data, x->buf + first, n);
	}
	free(x->buf);
	x->buf = NULL;
	x->cap = 0;
	/* it grows past any old bytes of a small file's shrink */
	x->old_end = 0;
	x->old_ticks = 0;
	x->old_in_slab = false;
	tslab_mark_dirty(ep, x);
	return 0;
}

int tslab_chunks_write(struct tslab_fs *fs, struct tslab_epoch *ep,
                       struct tslab_inode *ip, const char *data, size_t size, off_t off)
{
	uint64_t pos = (uint64_t)off, end = pos + size, old = ip->size;
	int err = grow(fs, ip, end, pos / TSLAB_CH, (end + TSLAB_CH - 1) / TSLAB_CH);

	while (!err && pos < end) {
		uint64_t idx = pos / TSLAB_CH, first = ch_first(idx);

		if (pos == first && end - pos >= TSLAB_CH) {
			/* whole chunks: straight from the request, no copy */
			const void *run[SLAB_FDATA_RUN];
			uint32_t k = 0;

			for (; k < SLAB_FDATA_RUN &&
			       pos + (k + 1) * (uint64_t)TSLAB_CH <= end;
			     k++) {
				run[k] =
				    data + (pos + k * (uint64_t)TSLAB_CH - (uint64_t)off);
				dc_drop(fs, ip->ext, idx + k, idx + k + 1);
			}
			/* written at once: held only while they are */
			for (uint32_t i = 0; i < k && !err; i++)
				if ((err = ch_take(fs, ip->ext, false)))
					ch_give(fs, ip->ext, i);
			if (err)
				break;
			/* the device write without the epoch lock (fs_int.h) */
			ip->ext->io_busy = true;
			pthread_mutex_unlock(&ep->lock);
			err = k == 1 ? slab_fdata_write(fs->st, ip->ino, idx, run[0],
			                                TSLAB_CH)
			             : slab_fdata_write_run(fs->st, ip->ino, idx, k, run);
			pthread_mutex_lock(&ep->lock);
			ip->ext->io_busy = false;
			pthread_cond_broadcast(&ep->iocv);
			ch_give(fs, ip->ext, k);
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
		size_t n =
		    TSLAB_CH - in < end - pos ? TSLAB_CH - in : (size_t)(end - pos);
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
	if (err && ip->size > old) {
		/* A failed write does not extend the file (the caller saw an
		 * error, not a short count): what it wrote past the old end is
		 * past the end again and reads as zeros once the file grows. */
		dc_drop(fs, ip->ext, (old + TSLAB_CH - 1) / TSLAB_CH, UINT64_MAX);
		if (old % TSLAB_CH) {
			struct tslab_dchunk *c = dc_find(ip->ext, old / TSLAB_CH);

			if (c)
				memset(c->data + old % TSLAB_CH, 0,
				       TSLAB_CH - old % TSLAB_CH);
		}
		ip->size = old;
	}
	ip->mtime = ip->ctime = tslab_now();
	tslab_mark_dirty(ep, ip->ext);
	return err ? err : dc_settle(fs, ip, false);
}

int tslab_chunks_read_begin(const struct tslab_epoch *ep, struct tslab_inode *ip,
                            size_t size, off_t off, struct tslab_rsnap *rs)
{
	struct tslab_ext *x = ip->ext;
	uint64_t pos = (uint64_t)off, end = pos + size;

	memset(rs, 0, sizeof(*rs));
	rs->ino = ip->ino;
	rs->shrinks = ep ? ep->shrinks : 0;
	rs->cur = ip->size;
	rs->size = x && x->old_end > ip->size ? x->old_end : ip->size;
	if (x && x->notail && rs->size > ip->size && end > ip->size) {
		/* the old bytes of chunks that held the end */
		rs->ot = malloc(x->notail * sizeof(*rs->ot));
		if (!rs->ot)
			return -ENOMEM;
		memcpy(rs->ot, x->otail, x->notail * sizeof(*rs->ot));
		rs->nt = x->notail;
	}
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
				free(rs->ot);
				return -ENOMEM;
			}
			rs->dc = d;
			rs->cap = ncap;
		}
		rs->dc[rs->n++] = x->dc[i];
	}
	return 0;
}

static const struct tslab_dchunk *rs_find(const struct tslab_dchunk *dc, uint32_t n,
                                          uint64_t idx)
{
	for (uint32_t i = 0; i < n; i++)
		if (dc[i].idx == idx)
			return &dc[i];
	return NULL;
}

/* A READ is at most max_pages (TSLAB_MAX_WRITE / 4096, libfuse derives it
 * from max_write) pages: its chunks, at any offset, are one run. */
_Static_assert(SLAB_FDATA_RDRUN >= (TSLAB_MAX_WRITE + TSLAB_CH - 1) / TSLAB_CH + 1,
               "a READ's chunks fit one slab_fdata_read_run");

ssize_t tslab_chunks_read_end(struct tslab_fs *fs, struct tslab_rsnap *rs, size_t size,
                              off_t off, uint8_t *buf)
{
	uint64_t pos = (uint64_t)off, end = pos + size;
	uint32_t lens[SLAB_FDATA_RDRUN], most;
	uint8_t *tmp;
	ssize_t ret;

	if (end > rs->size)
		end = rs->size;
	if (pos >= end) {
		ret = 0;
		goto out;
	}
	/* the whole READ (up to 1 MiB) in one slab_fdata_read_run */
	most = (end - 1) / TSLAB_CH - pos / TSLAB_CH + 1 < SLAB_FDATA_RDRUN
	           ? (uint32_t)((end - 1) / TSLAB_CH - pos / TSLAB_CH + 1)
	           : SLAB_FDATA_RDRUN;
	tmp = malloc((size_t)most * TSLAB_CH);
	if (!tmp) {
		ret = -ENOMEM;
		goto out;
	}
	while (pos < end) {
		uint64_t idx = pos / TSLAB_CH, last = (end - 1) / TSLAB_CH;
		uint32_t n = last - idx + 1 < most ? (uint32_t)(last - idx + 1) : most;
		int err = slab_fdata_read_run(fs->st, rs->ino, idx, n, tmp, lens);

		if (err) {
			free(tmp);
			ret = err == -EINVAL ? err
			                     : tslab_err(fs, err, "reading file data");
			goto out;
		}
		for (uint32_t i = 0; i < n && pos < end; i++) {
			const uint8_t *c = tmp + (size_t)i * TSLAB_CH;
			const struct tslab_dchunk *d = rs_find(rs->dc, rs->n, idx + i);
			uint64_t in = pos - ch_first(idx + i);
			size_t k = TSLAB_CH - in < end - pos ? TSLAB_CH - in
			                                     : (size_t)(end - pos);

			memset(tmp + (size_t)i * TSLAB_CH + lens[i], 0,
			       TSLAB_CH - lens[i]);
			if (pos >= rs->cur) {
				/* old bytes past a shrink (read_end): the chunk holding
				 * the end from its copy, the others from the device */
				const struct tslab_dchunk *t =
				    rs_find(rs->ot, rs->nt, idx + i);

				if (t)
					c = t->data;
			} else {
				if (d)
					c = d->data;
				/* the current bytes end inside this piece */
				if (pos + k > rs->cur)
					k = (size_t)(rs->cur - pos);
			}
			memcpy(buf, c + in, k);
			buf += k;
			pos += k;
			if (pos < end && pos % TSLAB_CH)
				i--; /* the rest of this chunk, from the old bytes */
		}
	}
	free(tmp);
	ret = (ssize_t)(end - (uint64_t)off);
out:
	free(rs->dc);
	rs->dc = NULL;
	free(rs->ot);
	rs->ot = NULL;
	return ret;
}

ssize_t tslab_chunks_read(struct tslab_fs *fs, struct tslab_inode *ip, size_t size,
                          off_t off, uint8_t *buf)
{
	struct tslab_rsnap rs;
	int err = tslab_chunks_read_begin(NULL, ip, size, off, &rs);

	return err ? err : tslab_chunks_read_end(fs, &rs, size, off, buf);
}

int tslab_chunks_truncate(struct tslab_fs *fs, struct tslab_epoch *ep,
                          struct tslab_inode *ip, uint64_t size)
{
	struct tslab_ext *x = ip->ext;
	uint64_t keep = (size + TSLAB_CH - 1) / TSLAB_CH;
	int err;

	if (size > ip->size) {
		err = grow(fs, ip, size, 0, 0);
		if (!err) {
			ip->size = size;
			tslab_mark_dirty(ep, x);
		}
		return err ? err : dc_settle(fs, ip, false);
	}
	if (size == ip->size)
		return 0;
	/* the old bytes stay readable for READs sent before the shrink */
	if ((err = tslab_chunks_flush(fs, ip)) || (err = ot_keep(fs, ip, size)))
		return err;
	if (ip->size > x->old_end)
		x->old_end = ip->size;
	x->old_ticks = 0;
	ep->shrinks++;
	dc_drop(fs, x, keep, UINT64_MAX);
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
		dc_drop(fs, x, a, b);
		err = slab_fdata_punch(fs->st, ip->ino, a, b);
		if (err)
			err = tslab_err(fs, err, "punching a hole");
	}
	ip->mtime = ip->ctime = tslab_now();
	tslab_mark_dirty(ep, x);
	/* a punch frees more than it costs: charged past the limit */
	return err ? err : dc_settle(fs, ip, true);
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
