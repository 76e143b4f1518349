/* SPDX-License-Identifier: MIT */
/*
 * fs namespace: epochs, the per-epoch dentry hash, inodes and their
 * on-demand extension (open state, file content, xattrs, children), and the
 * conversion of an inode into a slab object.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include <xxhash.h>

#include "fs/fs_int.h"

#define TSLAB_BUCKETS_MIN 64u

int64_t tslab_now(void)
{
	struct timespec ts;

	if (tslab_clock_fd >= 0)
		return tslab_test_clock();
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Device-level failures switch the mount to read-only; the error is logged
 * once with what was being done. */
int tslab_err(struct tslab_fs *fs, int err, const char *what)
{
	if (err == -EIO || err == -EUCLEAN) {
		tslab_damage(fs, err, what);
		return -EIO;
	}
	if (err == -EROFS) {
		if (!atomic_exchange(&fs->went_ro, true))
			tslab_log(LOG_ERR, "%s: %s: %s; the filesystem is now read-only",
			          fs->device, what, strerror(-err));
		return err == -EUCLEAN ? -EIO : err;
	}
	if (err != -ENOSPC && err != -ESTALE && err != -ENOENT)
		tslab_log(LOG_WARNING, "%s: %s: %s", fs->device, what, strerror(-err));
	return err;
}

/*
 * Space admission (slab_space_reserve, slab.h): an inode that will be put
 * holds a reservation covering the cost of that version; it is taken when
 * the change is accepted, so ENOSPC comes from the request that would
 * overcommit, never from a later put at release, fsync, commit or unmount.
 * FORCE takes it even past the limit: for changes that come with a bigger
 * free (unlink, rmdir touching the parent) or were admitted already.
 */
/* What the next version of IP with SIZE bytes costs: an extents file
 * (and a regular file about to become one) only its head, its chunks being
 * reserved one by one as they are made dirty (chunks.c). */
static uint64_t put_cost(const struct tslab_inode *ip, uint64_t size)
{
	uint64_t data = S_ISREG(ip->mode) || S_ISLNK(ip->mode) ? size : 0;

	if (S_ISREG(ip->mode) && ((ip->ext && ip->ext->extents) || size > SLAB_CHUNK_MAX))
		data = 0;
	return slab_obj_cost(data, ip->d.name_len);
}

int tslab_space_admit(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip,
                      uint64_t size, bool force)
{
	struct tslab_ext *x = tslab_ext_get(ep, ip);
	uint64_t need;
	int err;

	if (!x)
		return -ENOMEM;
	need = put_cost(ip, size);
	if (need <= x->resv)
		return 0;
	err = slab_space_reserve(fs->st, need - x->resv);
	if (err == -ENOSPC && force) {
		slab_space_charge(fs->st, need - x->resv);
		err = 0;
	}
	if (err)
		return err;
	x->resv = need;
	return 0;
}

/* IP was put, freed or dropped: its reservation goes back (after a put
 * its dirty chunks were written: cresv is 0 then). */
void tslab_space_unadmit(struct tslab_fs *fs, struct tslab_inode *ip)
{
	struct tslab_ext *x = ip->ext;

	if (x && x->resv + x->cresv) {
		slab_space_release(fs->st, x->resv + x->cresv);
		x->resv = x->cresv = 0;
	}
}

/* Put IP now (a new node, a rename, a link promotion) with the space for
 * the version reserved around the put: -ENOSPC before anything changes. */
int tslab_put_admitted(struct tslab_fs *fs, struct tslab_inode *ip)
{
	uint64_t cost = put_cost(ip, ip->size);
	int err = slab_space_reserve(fs->st, cost);

	if (err)
		return err;
	err = tslab_inode_put(fs, ip);
	slab_space_release(fs->st, cost);
	return err;
}

/* ---- epochs -------------------------------------------------------------- */

int tslab_epoch_add(struct tslab_fs *fs, uint32_t id, struct tslab_epoch **out)
{
	struct tslab_epoch *ep = calloc(1, sizeof(*ep));
	int err = -ENOMEM;

	if (!ep)
		return -ENOMEM;
	ep->id = id;
	ep->arena = slab_epoch_arena(fs->st, id);
	if (!ep->arena) {
		err = -ESTALE;
		goto free_ep;
	}
	ep->nbuckets = TSLAB_BUCKETS_MIN;
	ep->buckets = calloc(ep->nbuckets, sizeof(*ep->buckets));
	if (!ep->buckets)
		goto free_ep;
	pthread_mutex_init(&ep->lock, NULL);
	pthread_cond_init(&ep->iocv, NULL);

	pthread_mutex_lock(&fs->epochs_lock);
	if (fs->epochs[slab_epoch_slot(id)]) {
		pthread_mutex_unlock(&fs->epochs_lock);
		err = -EEXIST;
		goto free_buckets;
	}
	ep->next = fs->epoch_list;
	if (ep->next)
		ep->next->prev = ep;
	fs->epoch_list = ep;
	__atomic_store_n(&fs->epochs[slab_epoch_slot(id)], ep, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&fs->epochs_lock);
	*out = ep;
	return 0;

free_buckets:
	pthread_cond_destroy(&ep->iocv);
	pthread_mutex_destroy(&ep->lock);
	free(ep->buckets);
free_ep:
	free(ep);
	return err;
}

struct tslab_epoch *tslab_epoch_get(struct tslab_fs *fs, uint32_t id)
{
	struct tslab_epoch *ep =
	    __atomic_load_n(&fs->epochs[slab_epoch_slot(id)], __ATOMIC_ACQUIRE);

	return ep && ep->id == id ? ep : NULL;
}

void tslab_epoch_unlist(struct tslab_fs *fs, struct tslab_epoch *ep)
{
	pthread_mutex_lock(&fs->epochs_lock);
	if (ep->prev)
		ep->prev->next = ep->next;
	else
		fs->epoch_list = ep->next;
	if (ep->next)
		ep->next->prev = ep->prev;
	__atomic_store_n(&fs->epochs[slab_epoch_slot(ep->id)], NULL, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&fs->epochs_lock);
}

/* Frees what the epoch holds outside its arena; the arena itself belongs
 * to slab and goes with slab_epoch_drop() or slab_unmount(). */
void tslab_epoch_destroy(struct tslab_epoch *ep)
{
	pthread_cond_destroy(&ep->iocv);
	pthread_mutex_destroy(&ep->lock);
	free(ep->buckets);
	free(ep);
}

/* File contents are malloc'd: O(open or dirty files of the epoch). */
void tslab_epoch_free_buffers(struct tslab_fs *fs, struct tslab_epoch *ep)
{
	for (struct tslab_ext *x = ep->exts; x; x = x->next) {
		free(x->buf);
		x->buf = NULL;
		tslab_space_unadmit(fs, x->ip);
		tslab_chunks_free(x);
		free(x->otail);
		x->otail = NULL;
	}
}

/* Unmount, after the last flush: free every epoch's DRAM outside the
 * arenas (file buffers first, while the arenas holding the exts live;
 * then, with AFTER_ARENAS once slab_unmount() freed the arenas, the hash
 * tables and epoch structs). No request runs any more. */
void tslab_epochs_free_all(struct tslab_fs *fs, bool after_arenas)
{
	pthread_mutex_lock(&fs->epochs_lock);
	for (struct tslab_epoch *ep = fs->epoch_list, *next; ep; ep = next) {
		next = ep->next;
		if (!after_arenas) {
			tslab_epoch_free_buffers(fs, ep);
			continue;
		}
		__atomic_store_n(&fs->epochs[slab_epoch_slot(ep->id)], NULL,
		                 __ATOMIC_RELEASE);
		tslab_epoch_destroy(ep);
	}
	if (after_arenas)
		fs->epoch_list = NULL;
	pthread_mutex_unlock(&fs->epochs_lock);
}

/* ---- dentries ------------------------------------------------------------ */

uint32_t tslab_name_hash(slab_handle_t parent, const char *name, size_t len)
{
	uint64_t h = XXH3_64bits_withSeed(name, len, parent);

	return (uint32_t)(h ^ (h >> 32));
}

struct tslab_dent *tslab_ns_find(struct tslab_epoch *pep, slab_handle_t parent,
                                 const char *name, size_t len)
{
	uint32_t hash = tslab_name_hash(parent, name, len);

	for (struct tslab_dent *d = pep->buckets[hash & (pep->nbuckets - 1)]; d;
	     d = d->hnext)
		if (d->hash == hash && d->parent == parent && d->name_len == len &&
		    !memcmp(d->name, name, len))
			return d;
	return NULL;
}

static void ns_grow(struct tslab_epoch *ep)
{
	uint32_t n = ep->nbuckets * 2;
	struct tslab_dent **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (uint32_t i = 0; i < ep->nbuckets; i++) {
		struct tslab_dent *d = ep->buckets[i], *next;

		for (; d; d = next) {
			next = d->hnext;
			d->hnext = b[d->hash & (n - 1)];
			b[d->hash & (n - 1)] = d;
		}
	}
	free(ep->buckets);
	ep->buckets = b;
	ep->nbuckets = n;
}

/* D carries parent, name and hash; insert it into PEP's hash and into the
 * directory DIR's entry list. */
int tslab_ns_insert(struct tslab_epoch *pep, struct tslab_ext *dir, struct tslab_dent *d)
{
	struct tslab_dent **b;

	if (pep->nentries >= pep->nbuckets * 2u)
		ns_grow(pep);
	b = &pep->buckets[d->hash & (pep->nbuckets - 1)];
	d->hnext = *b;
	*b = d;
	pep->nentries++;
	d->sib_prev = NULL;
	d->sib_next = dir->children;
	if (dir->children)
		dir->children->sib_prev = d;
	dir->children = d;
	dir->nchildren++;
	return 0;
}

void tslab_ns_remove(struct tslab_epoch *pep, struct tslab_ext *dir, struct tslab_dent *d)
{
	struct tslab_dent **pp = &pep->buckets[d->hash & (pep->nbuckets - 1)];

	while (*pp && *pp != d)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = d->hnext;
		pep->nentries--;
	}
	if (d->sib_prev)
		d->sib_prev->sib_next = d->sib_next;
	else if (dir->children == d)
		dir->children = d->sib_next;
	if (d->sib_next)
		d->sib_next->sib_prev = d->sib_prev;
	d->hnext = d->sib_prev = d->sib_next = NULL;
	dir->nchildren--;
}

/* The name lives in EP, the arena of the object owning the dentry. */
int tslab_dent_set_name(struct tslab_epoch *ep, struct tslab_dent *d,
                        slab_handle_t parent, const char *name, size_t len)
{
	char *n = NULL;

	if (len > SLAB_NAME_MAX)
		return -ENAMETOOLONG;
	if (len) {
		n = slab_arena_alloc(ep->arena, len);
		if (!n)
			return -ENOMEM;
		memcpy(n, name, len);
	}
	tslab_dent_free_name(ep, d);
	d->name = n;
	d->name_len = (uint8_t)len;
	d->parent = parent;
	d->hash = tslab_name_hash(parent, name, len);
	return 0;
}

/* D takes over the name of FROM, which leaves DIR's listing (DIR in EP, as
 * both names are): a link's name becoming its inode's own. */
void tslab_dent_take_name(struct tslab_epoch *ep, struct tslab_inode *dir,
                          struct tslab_dent *d, struct tslab_dent *from)
{
	tslab_ns_remove(ep, dir->ext, from);
	tslab_dent_free_name(ep, d);
	d->name = from->name;
	d->name_len = from->name_len;
	d->parent = from->parent;
	d->hash = from->hash;
	from->name = NULL;
	from->name_len = 0;
	tslab_ns_insert(ep, dir->ext, d);
}

void tslab_dent_free_name(struct tslab_epoch *ep, struct tslab_dent *d)
{
	if (d->name)
		slab_arena_free(ep->arena, d->name, d->name_len);
	d->name = NULL;
	d->name_len = 0;
}

/* ---- inodes -------------------------------------------------------------- */

struct tslab_inode *tslab_inode_new(struct tslab_epoch *ep, slab_handle_t h)
{
	struct tslab_inode *ip = slab_arena_alloc(ep->arena, sizeof(*ip));

	if (!ip)
		return NULL;
	memset(ip, 0, sizeof(*ip));
	ip->ino = h;
	return ip;
}

/* Releases the DRAM of IP (not its slab object). */
void tslab_inode_free(struct tslab_epoch *ep, struct tslab_inode *ip)
{
	struct tslab_ext *x = ip->ext;

	if (x) {
		if (x->dirty)
			ep->ndirty--;
		for (struct tslab_xattr *a = x->xattrs, *n; a; a = n) {
			n = a->next;
			slab_arena_free(ep->arena, a, sizeof(*a) + a->name_len);
		}
		free(x->buf);
		free(x->otail);
		tslab_chunks_free(x);
		if (x->prev)
			x->prev->next = x->next;
		else
			ep->exts = x->next;
		if (x->next)
			x->next->prev = x->prev;
		slab_arena_free(ep->arena, x, sizeof(*x));
	}
	tslab_dent_free_name(ep, &ip->d);
	slab_arena_free(ep->arena, ip, sizeof(*ip));
}

/* Unlocked lookup: the caller holds the inode's epoch lock or drop_lock for
 * writing. NULL for stale handles and for objects that are not inodes. */
struct tslab_inode *tslab_inode_lookup(struct tslab_fs *fs, slab_handle_t h)
{
	void *p = NULL;

	if (!h || slab_obj_get_priv(fs->st, h, &p) < 0)
		return NULL;
	return p;
}

int tslab_get_locked(struct tslab_fs *fs, fuse_ino_t ino, struct tslab_epoch **ep,
                     struct tslab_inode **ip)
{
	struct tslab_epoch *e = tslab_epoch_get(fs, tslab_epoch_of(ino));

	if (!e)
		return -ESTALE;
	pthread_mutex_lock(&e->lock);
	*ip = tslab_inode_lookup(fs, ino);
	if (!*ip) {
		pthread_mutex_unlock(&e->lock);
		return -ESTALE;
	}
	*ep = e;
	tslab_epoch_touch(e);
	return 0;
}

struct tslab_ext *tslab_ext_get(struct tslab_epoch *ep, struct tslab_inode *ip)
{
	struct tslab_ext *x = ip->ext;

	if (x)
		return x;
	x = slab_arena_alloc(ep->arena, sizeof(*x));
	if (!x)
		return NULL;
	memset(x, 0, sizeof(*x));
	x->ip = ip;
	x->next = ep->exts;
	if (x->next)
		x->next->prev = x;
	ep->exts = x;
	ip->ext = x;
	return x;
}

/* Drop the extension when it holds nothing worth keeping. */
void tslab_ext_trim(struct tslab_epoch *ep, struct tslab_inode *ip)
{
	struct tslab_ext *x = ip->ext;

	if (!x || x->dirty || x->open || x->old_end || x->ndc || x->io_busy)
		return;
	free(x->buf);
	x->buf = NULL;
	x->cap = 0;
	x->loaded = false;
	x->extents = false;
	tslab_chunks_free(x);
	/* Orphans stay on the ext list: sync points and unmount find them there. */
	if (x->xattrs || x->links || x->children || S_ISDIR(ip->mode) || x->rdev ||
	    ip->orphan)
		return;
	if (x->prev)
		x->prev->next = x->next;
	else
		ep->exts = x->next;
	if (x->next)
		x->next->prev = x->prev;
	slab_arena_free(ep->arena, x, sizeof(*x));
	ip->ext = NULL;
}

int tslab_data_reserve(struct tslab_ext *x, size_t len)
{
	size_t cap;
	uint8_t *b;

	if (len <= x->cap)
		return 0;
	cap = x->cap ? x->cap : 64;
	while (cap < len)
		cap *= 2;
	b = realloc(x->buf, cap);
	if (!b)
		return -ENOMEM;
	x->buf = b;
	x->cap = cap;
	return 0;
}

static bool has_data(const struct tslab_inode *ip)
{
	return S_ISREG(ip->mode) || S_ISLNK(ip->mode);
}

/* Bring the content of IP into its ext buffer (once). */
int tslab_data_load(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip)
{
	struct tslab_ext *x = tslab_ext_get(ep, ip);
	ssize_t n;
	int err;

	if (!x)
		return -ENOMEM;
	if (x->loaded)
		return 0;
	if (S_ISREG(ip->mode) && ip->size > SLAB_CHUNK_MAX) {
		/* only extents files are this large: their data stays put */
		int r = slab_fdata_is(fs->st, ip->ino);

		if (r < 0)
			return tslab_err(fs, r, "reading a file");
		x->extents = r == 1;
	}
	if (x->extents) {
		x->loaded = true;
		return 0;
	}
	if (has_data(ip) && ip->size) {
		err = tslab_data_reserve(x, ip->size);
		if (err)
			return err;
		n = slab_obj_read(fs->st, ip->ino, 0, x->buf, ip->size);
		if (n < 0)
			return tslab_err(fs, (int)n, "reading a file");
		if ((uint64_t)n != ip->size) {
			tslab_log(LOG_ERR,
			          "%s: object %#llx holds %zd bytes, expected %llu",
			          fs->device, (unsigned long long)ip->ino, n,
			          (unsigned long long)ip->size);
			return -EIO;
		}
	}
	x->loaded = true;
	return 0;
}

void tslab_io_wait(struct tslab_epoch *ep, struct tslab_inode *ip)
{
	while (ip->ext && ip->ext->io_busy)
		pthread_cond_wait(&ep->iocv, &ep->lock);
}

/* Mark IP changed in DRAM; its object is put at release, fsync or commit. */
int tslab_inode_dirty(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip)
{
	int err = tslab_data_load(fs, ep, ip);

	if (err)
		return err;
	tslab_mark_dirty(ep, ip->ext);
	return 0;
}

/* Caller holds EP's lock (or drop_lock for writing); X belongs to an inode
 * of EP. */
void tslab_mark_dirty(struct tslab_epoch *ep, struct tslab_ext *x)
{
	if (!x->dirty)
		ep->ndirty++;
	x->dirty = true;
	atomic_store_explicit(&ep->last_write, tslab_now() / 1000000000,
	                      memory_order_relaxed);
}

/* At the end of a request that dirtied a file in EP (EP locked). A failing
 * put leaves its file dirty; with the space gone or the store read-only
 * the commit thread alone retries, not every request. */
void tslab_flush_if_full(struct tslab_fs *fs, struct tslab_epoch *ep)
{
	if (ep->ndirty < TSLAB_DIRTY_BATCH || atomic_load(&fs->space_full) ||
	    tslab_is_ro(fs))
		return;
	tslab_flush_epoch(fs, ep, TSLAB_FLUSH_TRIM);
}

/* The object is about to be replaced: old bytes of a shrink that only it
 * holds move to the buffer, past the size (closed instead if that fails). */
static void keep_old_bytes(struct tslab_fs *fs, struct tslab_inode *ip)
{
	struct tslab_ext *x = ip->ext;
	ssize_t n = -1;

	if (!x->old_in_slab)
		return;
	x->old_in_slab = false;
	if (x->old_end > ip->size && !tslab_data_reserve(x, x->old_end))
		n = slab_obj_read(fs->st, ip->ino, ip->size, x->buf + ip->size,
		                  x->old_end - ip->size);
	if (n < 0 || (uint64_t)n != x->old_end - ip->size)
		x->old_end = 0;
}

/* Write the newest version of IP (loaded when it has content). */
int tslab_inode_put(struct tslab_fs *fs, struct tslab_inode *ip)
{
	return tslab_inode_put_ext(fs, ip, false);
}

/* Write the newest version of IP (loaded when it has content); an extents
 * file's dirty chunks first, then its head. */
int tslab_inode_put_ext(struct tslab_fs *fs, struct tslab_inode *ip, bool reset)
{
	struct tslab_ext *x = ip->ext;
	struct slab_obj o = {
	    .kind = TSLAB_KIND_INODE,
	    .attr =
	        {
	            .mode = ip->mode,
	            .uid = ip->uid,
	            .gid = ip->gid,
	            .nlink = ip->nlink,
	            .rdev = x ? x->rdev : 0,
	            .size = ip->size,
	            .atime_ns = ip->atime,
	            .mtime_ns = ip->mtime,
	            .ctime_ns = ip->ctime,
	        },
	    .parent = ip->d.parent,
	    .name = ip->d.name,
	    .name_len = ip->d.name_len,
	};
	int err;

	if (x && x->extents) {
		err = tslab_chunks_flush(fs, ip);
		if (err)
			return err;
		o.extents = reset ? SLAB_EXT_RESET : SLAB_EXT_YES;
	} else if (has_data(ip)) {
		if (ip->size && (!x || !x->loaded))
			return -EINVAL;
		if (x)
			keep_old_bytes(fs, ip);
		o.data = x ? x->buf : NULL;
		o.data_len = ip->size;
	}
	err = slab_obj_put(fs->st, ip->ino, &o);
	if (err == -ENOSPC)
		atomic_store(&fs->space_full, true);
	if (err)
		return tslab_err(fs, err, "writing an object");
	if (atomic_load(&fs->space_full))
		atomic_store(&fs->space_full, false);
	tslab_space_unadmit(fs, ip);
	if (x && x->dirty) {
		struct tslab_epoch *ep = tslab_epoch_get(fs, tslab_epoch_of(ip->ino));

		x->dirty = false;
		if (ep)
			ep->ndirty--;
	}
	return 0;
}

/* Nanoseconds to a timespec, tv_nsec in [0, 1e9) also before 1970. */
struct timespec tslab_ns_ts(int64_t ns)
{
	int64_t sec = ns / 1000000000, rem = ns % 1000000000;

	if (rem < 0) {
		sec--;
		rem += 1000000000;
	}
	return (struct timespec){.tv_sec = (time_t)sec, .tv_nsec = (long)rem};
}

void tslab_inode_stat(const struct tslab_inode *ip, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ip->ino;
	st->st_mode = ip->mode;
	st->st_nlink = ip->nlink;
	st->st_uid = ip->uid;
	st->st_gid = ip->gid;
	st->st_rdev = ip->ext ? ip->ext->rdev : 0;
	st->st_size = (off_t)ip->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((ip->size + 511) / 512);
	st->st_atim = tslab_ns_ts(ip->atime);
	st->st_mtim = tslab_ns_ts(ip->mtime);
	st->st_ctim = tslab_ns_ts(ip->ctime);
}

/* Make the unlink of orphan IP durable at the next sync: its object is
 * put with parent 0 (and its content, which open descriptors still read). */
static int orphan_put(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip)
{
	int err = tslab_data_load(fs, ep, ip);

	if (!err)
		err = tslab_inode_put(fs, ip);
	if (!err)
		ip->orphan = TSLAB_ORPHAN_PUT;
	return err;
}

/* Put every dirty inode of EP and record pending orphans. TSLAB_FLUSH_TRIM:
 * also release the buffers of closed files; TSLAB_FLUSH_FINAL (unmount,
 * the kernel holds nothing any more): free the orphans instead. Caller
 * holds drop_lock (read) and EP's lock. */
int tslab_flush_epoch(struct tslab_fs *fs, struct tslab_epoch *ep, unsigned flags)
{
	struct tslab_ext *x, *next;
	int err = 0, r;

	tslab_epoch_assert_locked(fs, ep);

	for (x = ep->exts; x; x = next) {
		struct tslab_inode *ip = x->ip;

		next = x->next;
		r = 0;
		if (ip->orphan && (flags & TSLAB_FLUSH_FINAL)) {
			r = tslab_unlink_inode(fs, ep, ip);
			if (r && !err)
				err = r;
			continue;
		}
		if (ip->orphan == TSLAB_ORPHAN_PENDING)
			r = orphan_put(fs, ep, ip);
		else if (x->dirty && !ip->orphan)
			r = tslab_inode_put(fs, ip);
		if (r && !err)
			err = r;
		if (x->extents && x->old_end &&
		    ((flags & TSLAB_FLUSH_FINAL) ||
		     ((flags & TSLAB_FLUSH_TICK) && ++x->old_ticks >= 2))) {
			tslab_chunks_window_close(ip);
		} else if ((flags & TSLAB_FLUSH_TICK) && x->old_end &&
		           ++x->old_ticks >= 2) {
			x->old_end = 0;
			x->old_ticks = 0;
			x->old_in_slab = false;
		}
		if (flags & TSLAB_FLUSH_TRIM)
			tslab_ext_trim(ep, ip);
	}
	return err;
}

/* Free orphan IP once the kernel has forgotten it and no create-opened
 * handle is left. Caller holds EP's lock. */
int tslab_orphan_release(struct tslab_fs *fs, struct tslab_epoch *ep,
                         struct tslab_inode *ip)
{
	tslab_epoch_assert_locked(fs, ep);

	if (!ip->orphan || ip->nlookup || (ip->ext && ip->ext->open))
		return 0;
	return tslab_unlink_inode(fs, ep, ip);
}

/* Caller holds drop_lock. */
int tslab_flush_all(struct tslab_fs *fs, unsigned flags)
{
	uint32_t *ids = NULL;
	size_t n = 0, cap = 0;
	int err = 0, r;

	tslab_rwlock_assert_held(&fs->drop_lock);

	pthread_mutex_lock(&fs->epochs_lock);
	for (struct tslab_epoch *ep = fs->epoch_list; ep; ep = ep->next) {
		if (n == cap) {
			uint32_t *p =
			    realloc(ids, (cap = cap ? cap * 2 : 64) * sizeof(*ids));

			if (!p) {
				err = -ENOMEM;
				break;
			}
			ids = p;
		}
		ids[n++] = ep->id;
	}
	pthread_mutex_unlock(&fs->epochs_lock);

	for (size_t i = 0; i < n; i++) {
		struct tslab_epoch *ep = tslab_epoch_get(fs, ids[i]);

		if (!ep)
			continue;
		pthread_mutex_lock(&ep->lock);
		r = tslab_flush_epoch(fs, ep, flags);
		pthread_mutex_unlock(&ep->lock);
		if (r && !err)
			err = r;
	}
	free(ids);
	return err;
}
