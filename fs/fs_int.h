/* SPDX-License-Identifier: MIT */
/*
 * fs: private interfaces of the tslabfs FUSE daemon.
 *
 * The whole namespace lives in DRAM; every byte that must survive goes
 * through slab/ as objects. Object kinds (struct slab_obj.kind):
 *   TSLAB_KIND_INODE  a file, directory, symlink, fifo, socket or device;
 *                     parent + name = its primary name; data = file content
 *                     or symlink target.
 *   TSLAB_KIND_LINK   an extra hard link: parent + name = the link's name,
 *                     data = 8-byte little-endian handle of the inode.
 *   TSLAB_KIND_XATTR  parent = owner inode, name = attribute name, data =
 *                     value.
 * An inode with parent 0 (other than the root) is an orphan: unlinked while
 * open; recovery frees it.
 *
 * Memory: an inode's struct tslab_inode, its name, its tslab_ext and its
 * xattr/link entries are allocated from the arena of the inode's epoch, so
 * slab_epoch_drop() releases them wholesale. File contents being written
 * (tslab_ext.buf) are malloc'd and tracked on the epoch's ext list, which
 * holds only inodes that are open, dirty, directories or carry xattrs.
 *
 * Locking. fs->drop_lock is held for reading by every request and for
 * writing by an epoch drop and by renames that touch the root epoch; so an
 * epoch's memory never disappears under a running request. Each epoch has a
 * mutex protecting: the dentries whose parent is in the epoch (hash chains,
 * sibling lists, names) and the inodes of the epoch (attributes, ext, data).
 * Lock order: drop_lock -> root epoch (id 0) -> any other epoch; two
 * non-root epochs are never locked together.
 *
 * Lock rules of the fs module (the slab module's are in slab/slab_int.h;
 * every slab call may take slab locks, so fs locks come first):
 *
 *  lock              guards                                    kind
 *  dh->mu            one open directory stream (readdir)       mutex
 *  fs->drop_lock     epoch lifetime: read by every request,    rwlock
 *                    write by a drop and root-epoch renames
 *  epoch->lock       the epoch's dentries, inodes, exts        mutex
 *  fs->epochs_lock   fs->epochs[], fs->epoch_list              mutex, leaf
 *  fs->commit_mu     commit thread wake-up and stop flag       mutex, leaf
 *  fs->notify_mu     the kernel-notification queue             mutex, leaf
 *
 * Order: dh->mu -> drop_lock -> root epoch lock -> other epoch lock
 *        -> slab locks.  commit_mu and notify_mu are never held while
 * another lock is taken, except in tslab_threads_stop() (commit_mu ->
 * notify_mu), and never while a request or a kernel notification is sent.
 * Functions that require a lock assert it (common/tslab_lock.h).
 *
 * Extents files (chunks.c): reads copy what they need under epoch->lock
 * and reach the device without it (tslab_chunks_read_begin/_end); the slab
 * layer's own epoch lock is taken per chunk-map lookup, never across a
 * device read. A write of an extents file releases epoch->lock while its
 * whole chunks are written (up to 256 KiB per device write), with the
 * file's ext marked io_busy: writes, truncates and fallocates of that
 * file wait for it (tslab_io_wait) at their start; metadata requests and
 * puts do not (a put meanwhile writes the head with the size before the
 * write, whose chunks then lie past it until the next put, which recovery
 * handles like any chunk past the end). Partial chunks (cache misses,
 * read-modify-write) and cache flushes still run under epoch->lock.
 */
#ifndef TSLAB_FS_INT_H
#define TSLAB_FS_INT_H

#define FUSE_USE_VERSION 312
#include <assert.h>
#include <fuse_lowlevel.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/tslab_lock.h"
#include "slab/slab.h"
#include "zns/zns.h"

enum tslab_kind {
	TSLAB_KIND_INODE = 1,
	TSLAB_KIND_LINK = 2,
	TSLAB_KIND_XATTR = 3,
};

/* Longest xattr value accepted (Linux XATTR_SIZE_MAX). */
#define TSLAB_XATTR_MAX 65536u
/* Kernel cache timeouts: every change goes through this mount. */
#define TSLAB_TIMEOUT 86400.0

/* A name in a directory: the primary name embedded in an inode, or a link. */
struct tslab_dent {
	struct tslab_dent *hnext;               /* epoch(parent) hash chain */
	struct tslab_dent *sib_prev, *sib_next; /* entries of the directory */
	slab_handle_t parent;                   /* 0: not in the namespace */
	char *name;                             /* arena, not NUL-terminated */
	uint32_t hash;
	uint8_t name_len;
	uint8_t is_link;
};

struct tslab_ext;

/* ~128 bytes + name per file; see docs/design.md (fs). */
struct tslab_inode {
	struct tslab_dent d; /* primary name */
	slab_handle_t ino;
	struct tslab_ext *ext; /* NULL: clean, closed, no xattrs, no children */
	uint64_t size;
	int64_t atime, mtime, ctime;
	uint32_t mode, uid, gid, nlink;
	uint32_t nlookup; /* the kernel's references (LOOKUP minus FORGET) */
	uint8_t orphan;   /* enum tslab_orphan */
};

/*
 * A regular file whose last name is removed while the kernel still holds
 * it (nlookup > 0: an open descriptor, or only a cached inode) stays
 * readable and writable until the kernel forgets it and the last release
 * of a create-opened handle arrives; then its object is freed. Until a
 * sync point its object keeps the old name on the device (the unlink is
 * not durable yet, as with any unsynced unlink); a sync point (fsync,
 * fsyncdir, commit, unmount) puts an orphan record (parent 0) instead,
 * which recovery frees.
 */
enum tslab_orphan {
	TSLAB_ORPHAN_NONE = 0,
	TSLAB_ORPHAN_PENDING = 1, /* the device still has the old name */
	TSLAB_ORPHAN_PUT = 2,     /* the device has the orphan record */
};

struct tslab_link {
	struct tslab_dent d;
	slab_handle_t h;          /* the link object */
	slab_handle_t target;     /* the inode */
	struct tslab_link *lnext; /* other links of the same inode */
	int64_t ctime;
};

struct tslab_xattr {
	struct tslab_xattr *next;
	slab_handle_t h;
	uint32_t size;
	uint8_t name_len;
	char name[];
};

/* Chunk of an extents file (fs/chunks.c). */
#define TSLAB_CH        SLAB_FDATA_MAX
#define TSLAB_DC_MAX    64u /* dirty chunks cached per file (~257 KiB) */
#define TSLAB_OTAIL_MAX 32u /* old chunks past a shrink kept readable (~128 KiB) */
struct tslab_dchunk {
	uint64_t idx;
	/* dirty chunks: space held for writing it (what its record will add
	 * to the slab's costs: its cost minus OLDC, the replaced record's) */
	uint32_t resv, oldc;
	uint8_t data[TSLAB_CH];
};
/* Largest file: 2^43 bytes (8 TiB, sparse). */
#define TSLAB_FILE_MAX (1ull << 43)

/* Rarely needed per-inode state, allocated on demand. */
struct tslab_ext {
	struct tslab_ext *next, *prev; /* epoch ext list */
	struct tslab_inode *ip;
	uint8_t *buf; /* malloc'd content while loaded; NULL when empty */
	size_t cap;
	struct tslab_xattr *xattrs;
	struct tslab_link *links;    /* extra hard links to this inode */
	struct tslab_dent *children; /* directories: first entry */
	uint32_t nchildren;
	/* Handles from CREATE not yet released. With FUSE_CAP_NO_OPEN_SUPPORT
	 * (fs->no_open) open() sends neither OPEN nor RELEASE, so only
	 * create-opened handles are counted. */
	uint32_t open;
	uint32_t rdev;
	bool loaded; /* buf/ip->size hold the content (extents: mode known) */
	bool dirty;  /* newer than the last slab_obj_put */
	/*
	 * A shrink (truncate, O_TRUNC) leaves the old bytes [ip->size, old_end)
	 * readable until the file grows back past old_end, its object is put
	 * or its buffer is trimmed: a READ the kernel sent before it learnt of
	 * the shrink is answered with them (old values) instead of a short
	 * read, which the kernel would turn into zeros below its i_size
	 * (fs/file.c read_end). They stay for one to two commit intervals, far
	 * longer than a READ is in flight: the buffer is kept (not trimmed)
	 * meanwhile, and a put first copies them from the object into buf.
	 * old_in_slab: they are in the object on the device (O_TRUNC of an
	 * unloaded file), else in buf.
	 */
	bool old_in_slab;
	uint8_t old_ticks; /* commit ticks seen; closed (buffer freed) at 2 */
	uint64_t old_end;
	/* Extents files: the old bytes of the chunks past ip->size that a
	 * shrink removed (malloc'd copies, at most TSLAB_OTAIL_MAX chunks from
	 * the new end on), readable until the window closes
	 * (tslab_chunks_window_close). */
	struct tslab_dchunk *otail;
	uint32_t notail;
	/* Space reserved (slab_space_reserve) for the inode's next put (its
	 * head for an extents file); given back when it is put, freed or its
	 * epoch dropped. */
	uint64_t resv;
	/* Extents files: space reserved for the dirty chunks in dc (one full
	 * chunk record each, slab_fdata_cost(TSLAB_CH)), given back as each is
	 * written or dropped; cpool: taken ahead by the request in progress
	 * and not used yet (zero between requests). */
	uint64_t cresv, cpool;
	/* An extents file: data in chunks (fs/chunks.c), buf unused; dc holds
	 * its dirty chunks (malloc'd, at most TSLAB_DC_MAX). */
	bool extents;
	/* A write of this file has the epoch lock released while its chunks
	 * go to the device (chunks.c): other writes, truncates and fallocates
	 * of the file wait on epoch->iocv; the ext stays (not trimmed). */
	bool io_busy;
	uint32_t ndc, dccap;
	struct tslab_dchunk *dc;
};

/* Retention and sealing policy (policy.c); durations in seconds, 0 = off. */
struct tslab_policy {
	uint64_t retention, seal_idle;
	unsigned space_pct; /* retention_space=PERCENT, 0 = off */
	unsigned keep;      /* newest epochs never dropped by policy */
	int clock_fd;       /* TSLAB_TEST_CLOCK_FILE, -1 = real time */
	pthread_t thread;
	bool started, stopping, kick;
	bool stuck;                 /* over space_pct with nothing the policy may drop */
	_Atomic uint64_t unflushed; /* bytes accepted since the last pass */
	uint64_t chunk;             /* unflushed that triggers a pass */
	pthread_mutex_t mu;
	pthread_cond_t cv, done_cv;
	uint64_t passes_started, passes_done;
	_Atomic uint64_t dropped, sealed; /* by policy, this mount */
};

struct tslab_epoch {
	uint32_t id;
	pthread_mutex_t lock;
	pthread_cond_t iocv; /* an ext's io_busy went false */
	struct slab_arena *arena;
	struct tslab_dent **buckets; /* malloc'd; dentries with parent in epoch */
	uint32_t nbuckets, nentries;
	uint32_t ndirty; /* exts with dirty set */
	struct tslab_ext *exts;
	struct tslab_epoch *next, *prev; /* fs->epoch_list, under epochs_lock */
	/* policy.c, on the fs clock (tslab_now). created (ns): mkdir, or
	 * after a remount the oldest ctime among its objects; last_write (s):
	 * newest change. Written under the epoch lock, read without. */
	_Atomic int64_t created, last_write;
	bool sealed; /* under lock; set once, after the epoch was flushed */
	/* Shrinks of extents files of the epoch so far, under lock: a READ
	 * served without the lock is done again under it when this moved
	 * (tslab_chunks_shrunk). Per epoch, not per file: a file's ext may be
	 * trimmed and made again meanwhile, the epoch stays. */
	uint32_t shrinks;
	/* Idle pruning (prune.c): the coarse monotonic second of the last
	 * request that locked the epoch (tslab_get_locked); 0 when none came
	 * since the mount or since the prune thread last invalidated it. */
	_Atomic int64_t used_s;
};

/* errors= policy (damage.c) */
enum tslab_errors {
	TSLAB_ERRORS_REMOUNT_RO = 0, /* default */
	TSLAB_ERRORS_CONTINUE,
	TSLAB_ERRORS_UNMOUNT,
};

struct tslab_fs {
	struct zns_dev *dev;
	struct slab_store *st;
	struct fuse_session *se;
	const char *device;
	const char *writelog; /* -o writelog=PATH, or NULL */
	unsigned epoch_depth;
	unsigned commit_s;
	bool read_only;
	bool foreground;
	/* OPEN answers ENOSYS: the kernel opens files without asking us and
	 * sends no RELEASE or FLUSH for them (set in INIT when supported). */
	bool no_open;
	/* The kernel has seen that ENOSYS: from now on it sends no RELEASE
	 * either, also for files opened by CREATE. Until then every created
	 * file costs a RELEASE, so the first CREATE of a mount makes the
	 * notify thread open that file once (probe_h; threads.c). */
	atomic_bool kernel_no_open;
	atomic_uint probes;     /* probes started (at most TSLAB_PROBES) */
	slab_handle_t probe_h;  /* under notify_mu; 0: none pending */
	const char *mountpoint; /* absolute; NULL when not usable for paths */
	/* Mounted as fuseblk (a block device, as root): the kernel sends
	 * DESTROY at unmount and waits for its reply, so the device is closed
	 * there; closed tells main it is done. */
	bool blkdev;
	bool closed;
	int close_err;
	atomic_bool went_ro;
	enum tslab_errors errors;
	/* A put failed with ENOSPC: new data is refused until a put succeeds
	 * or an epoch is dropped; the unwritten files stay dirty in DRAM and
	 * the commit thread retries them. */
	atomic_bool space_full;

	pthread_rwlock_t drop_lock;
	pthread_mutex_t epochs_lock; /* epoch table and list; leaf lock */
	struct tslab_epoch *epochs[SLAB_EPOCH_SLOTS]; /* by slab_epoch_slot() */
	struct tslab_epoch *epoch_list;

	pthread_t commit_thread;
	bool commit_started;
	pthread_mutex_t commit_mu;
	pthread_cond_t commit_cv;
	bool stopping;

	pthread_t notify_thread;
	bool notify_started;
	pthread_mutex_t notify_mu;
	pthread_cond_t notify_cv;
	struct tslab_notify *notify_q;

	struct tslab_policy pol; /* policy.c */
	/* prune.c: -o idle_prune=SECONDS (0: off). */
	unsigned prune_s;
	unsigned read_ahead_kb; /* -o read_ahead_kb (readahead.c) */
	pthread_t prune_thread;
	bool prune_started;
	bool prune_stop; /* under prune_mu */
	pthread_mutex_t prune_mu;
	pthread_cond_t prune_cv;
	atomic_uint_least64_t prunes; /* invalidations sent */
};

/* ---- main.c -------------------------------------------------------------- */
/* INFO: also informational messages (on stderr before daemonizing: not). */
void tslab_log_init(bool to_stderr, bool info);
void tslab_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* readahead.c: once the mount at MNT (absolute; NULL: nothing) answers,
 * set its bdi's read_ahead_kb to KB (0: leave the kernel's default); a
 * failure is logged. _stop joins the thread (after the unmount). */
#define TSLAB_READ_AHEAD_KB 4096u
void tslab_readahead_start(const char *mnt, unsigned kb);
void tslab_readahead_stop(void);
/* Flush everything, unmount the store and close the device, once. */
int tslab_close_device(struct tslab_fs *fs);

/* ---- ns.c: epochs, dentries, inodes ------------------------------------ */
static inline uint32_t tslab_epoch_of(slab_handle_t h)
{
	return slab_handle_epoch(h);
}

int tslab_epoch_add(struct tslab_fs *fs, uint32_t id, struct tslab_epoch **out);
struct tslab_epoch *tslab_epoch_get(struct tslab_fs *fs, uint32_t id);
void tslab_epoch_unlist(struct tslab_fs *fs, struct tslab_epoch *ep);
void tslab_epochs_free_all(struct tslab_fs *fs, bool after_arenas);
void tslab_epoch_destroy(struct tslab_epoch *ep);
void tslab_epoch_free_buffers(struct tslab_fs *fs, struct tslab_epoch *ep);

uint32_t tslab_name_hash(slab_handle_t parent, const char *name, size_t len);
struct tslab_dent *tslab_ns_find(struct tslab_epoch *pep, slab_handle_t parent,
                                 const char *name, size_t len);
int tslab_ns_insert(struct tslab_epoch *pep, struct tslab_ext *dir, struct tslab_dent *d);
void tslab_ns_remove(struct tslab_epoch *pep, struct tslab_ext *dir,
                     struct tslab_dent *d);
int tslab_dent_set_name(struct tslab_epoch *ep, struct tslab_dent *d,
                        slab_handle_t parent, const char *name, size_t len);
void tslab_dent_free_name(struct tslab_epoch *ep, struct tslab_dent *d);
void tslab_dent_take_name(struct tslab_epoch *ep, struct tslab_inode *dir,
                          struct tslab_dent *d, struct tslab_dent *from);

struct tslab_inode *tslab_inode_new(struct tslab_epoch *ep, slab_handle_t h);
void tslab_inode_free(struct tslab_epoch *ep, struct tslab_inode *ip);
struct tslab_inode *tslab_inode_lookup(struct tslab_fs *fs, slab_handle_t h);
struct tslab_ext *tslab_ext_get(struct tslab_epoch *ep, struct tslab_inode *ip);
void tslab_ext_trim(struct tslab_epoch *ep, struct tslab_inode *ip);
int tslab_data_load(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip);
int tslab_data_reserve(struct tslab_ext *x, size_t len);
int tslab_inode_put(struct tslab_fs *fs, struct tslab_inode *ip);
/* RESET: an extents file truncated to 0 starts a new data generation. */
int tslab_inode_put_ext(struct tslab_fs *fs, struct tslab_inode *ip, bool reset);
int tslab_inode_dirty(struct tslab_fs *fs, struct tslab_epoch *ep,
                      struct tslab_inode *ip);
void tslab_mark_dirty(struct tslab_epoch *ep, struct tslab_ext *x);
/* Wait (epoch lock held, released while waiting) until no write of IP has
 * its chunks in flight. Only at the start of a request. */
void tslab_io_wait(struct tslab_epoch *ep, struct tslab_inode *ip);
/* Dirty inodes of one epoch put together by the request that reaches this
 * many, so that buffered content stays bounded between commits (with
 * no_open there is no release to put them). */
#define TSLAB_DIRTY_BATCH 1024u
void tslab_flush_if_full(struct tslab_fs *fs, struct tslab_epoch *ep);
struct timespec tslab_ns_ts(int64_t ns);
void tslab_inode_stat(const struct tslab_inode *ip, struct stat *st);
#define TSLAB_FLUSH_TRIM  1u /* release buffers of closed, clean files */
#define TSLAB_FLUSH_FINAL 2u /* unmount: free orphans */
#define TSLAB_FLUSH_TICK  4u /* commit thread: age the old bytes of shrinks */
int tslab_flush_epoch(struct tslab_fs *fs, struct tslab_epoch *ep, unsigned flags);
int tslab_flush_all(struct tslab_fs *fs, unsigned flags);
int tslab_sync_all(struct tslab_fs *fs);
int tslab_orphan_release(struct tslab_fs *fs, struct tslab_epoch *ep,
                         struct tslab_inode *ip);
/* Clear the privileges of a non-directory as Linux does when an
 * unprivileged write or truncate, or a chown, changes it: setuid always,
 * setgid only with group execute (setgid without it marks mandatory
 * locking, not privilege). Caller holds IP's epoch lock and dirties IP. */
static inline void tslab_kill_suidgid(struct tslab_inode *ip)
{
	if (S_ISDIR(ip->mode))
		return;
	ip->mode &= ~(uint32_t)S_ISUID;
	if (ip->mode & S_IXGRP)
		ip->mode &= ~(uint32_t)S_ISGID;
}
/* Nanoseconds of CLOCK_REALTIME, or of the test clock (policy.c). */
int64_t tslab_now(void);
extern int tslab_clock_fd; /* TSLAB_TEST_CLOCK_FILE opened, or -1 */
int64_t tslab_test_clock(void);
int tslab_err(struct tslab_fs *fs, int err, const char *what);
/* The FUSE edge: reply to REQ with ERR, 0 or a negative errno. The one place
 * where the module's negative errnos become the positive ones FUSE sends. */
static inline void tslab_reply_err(fuse_req_t req, int err)
{
	fuse_reply_err(req, -err);
}

/* Held-lock rule for an epoch's dentries and inodes: EP's lock, or
 * drop_lock for writing (no request runs then). */
#define tslab_epoch_assert_locked(fs, ep)                                                \
	assert(tslab_mutex_held(&(ep)->lock) || tslab_rwlock_wrheld(&(fs)->drop_lock))

/* ---- damage.c ------------------------------------------------------------ */
/* "remount-ro", "continue", "unmount" (NULL: the default); -EINVAL else. */
int tslab_errors_parse(const char *s, enum tslab_errors *out);
const char *tslab_errors_name(enum tslab_errors e);
/* Damage or a device error seen while doing WHAT: apply fs->errors. */
void tslab_damage(struct tslab_fs *fs, int err, const char *what);
/* Switch the kernel mount at fs->mountpoint to read-only (root only). */
int tslab_kernel_ro(struct tslab_fs *fs);

/* Look an inode up by handle and lock its epoch; caller holds drop_lock. */
int tslab_get_locked(struct tslab_fs *fs, fuse_ino_t ino, struct tslab_epoch **ep,
                     struct tslab_inode **ip);

/* ---- policy.c: retention, sealing, control attributes ------------------ */
/* Parse DURATION (N, Ns, Nm, Nh, Nd, Nw) into seconds; -EINVAL. */
int tslab_parse_duration(const char *s, uint64_t *out);
int tslab_policy_init(struct tslab_fs *fs);
int tslab_policy_start(struct tslab_fs *fs);
void tslab_policy_stop(struct tslab_fs *fs);
/* Before taking any lock in a request that adds about BYTES: with
 * retention_space, once a chunk of data was accepted since the last pass
 * or space is over the mark, wake the policy and wait for one pass, which
 * puts what DRAM holds and drops epochs (backpressure). */
void tslab_policy_throttle(struct tslab_fs *fs, uint64_t bytes);
/* -EROFS when EP (locked by the caller) is sealed. */
static inline int tslab_sealed_check(const struct tslab_epoch *ep)
{
	return ep && ep->sealed ? -EROFS : 0;
}
/* Seal the epoch of epoch directory INO (no locks held). */
int tslab_policy_seal(struct tslab_fs *fs, fuse_ino_t ino);
/* Drop the epoch of epoch directory INO as rmdir does (no locks held);
 * the kernel's entry is invalidated. REASON goes to the log. */
int tslab_policy_drop(struct tslab_fs *fs, fuse_ino_t ino, const char *reason);
/* Text of the root's user.tslab.epochs / user.tslab.zonemap attributes
 * (malloc'd into *out); caller holds drop_lock for reading, no epoch lock. */
int tslab_policy_epochs_text(struct tslab_fs *fs, char **out, size_t *len);
int tslab_policy_zones_text(struct tslab_fs *fs, char **out, size_t *len);
int tslab_policy_gc_text(struct tslab_fs *fs, char **out, size_t *len);
/* Recovery: fold an object's times into EP's created / last_write. */
void tslab_epoch_times(struct tslab_epoch *ep, const struct slab_attr *a);
/* Epoch directory of EP, NULL if none (EP locked or drop_lock held). */
struct tslab_inode *tslab_epoch_dir_inode(struct tslab_epoch *ep);
/* ---- prune.c: idle epochs leave the kernel's cache ------------------------ */
/* Note a request on EP (cheap: one coarse clock read, a store once a second). */
void tslab_epoch_touch(struct tslab_epoch *ep);
int tslab_prune_start(struct tslab_fs *fs);
void tslab_prune_stop(struct tslab_fs *fs);
/* ---- chunks.c: data of extents files (caller holds the epoch lock) ----- */
int tslab_chunks_convert(struct tslab_fs *fs, struct tslab_epoch *ep,
                         struct tslab_inode *ip);
int tslab_chunks_write(struct tslab_fs *fs, struct tslab_epoch *ep,
                       struct tslab_inode *ip, const char *data, size_t size, off_t off);
ssize_t tslab_chunks_read(struct tslab_fs *fs, struct tslab_inode *ip, size_t size,
                          off_t off, uint8_t *buf);
/* A read in two steps: _begin with the epoch lock held (size and copies
 * of the cached dirty chunks of the range), _end without it (the device
 * reads). The caller holds drop_lock throughout, and the kernel holds the
 * inode during the request, so IP stays. -EINVAL from _end: the file is
 * no longer an extents file; read again under the lock. */
struct tslab_rsnap {
	uint64_t ino, size; /* size: readable end (read_end) */
	uint32_t shrinks;   /* ep->shrinks when taken (0 without EP) */
	uint64_t cur;       /* the file's size; old bytes from there on */
	uint32_t n, cap, nt;
	struct tslab_dchunk *dc, *ot; /* copies of dirty chunks, old tails */
};
int tslab_chunks_read_begin(const struct tslab_epoch *ep, struct tslab_inode *ip,
                            size_t size, off_t off, struct tslab_rsnap *rs);
ssize_t tslab_chunks_read_end(struct tslab_fs *fs, struct tslab_rsnap *rs, size_t size,
                              off_t off, uint8_t *buf);
int tslab_chunks_truncate(struct tslab_fs *fs, struct tslab_epoch *ep,
                          struct tslab_inode *ip, uint64_t size);
int tslab_chunks_punch(struct tslab_fs *fs, struct tslab_epoch *ep,
                       struct tslab_inode *ip, uint64_t off, uint64_t end);
/* SEEK_DATA (DATA) / SEEK_HOLE from OFF; -ENXIO past the data / the end. */
int tslab_chunks_seek(struct tslab_fs *fs, struct tslab_inode *ip, uint64_t off,
                      bool data, uint64_t *out);
int tslab_chunks_flush(struct tslab_fs *fs, struct tslab_inode *ip);
void tslab_chunks_free(struct tslab_ext *x);
/* Take the space of N chunks a request may make dirty ahead (x->cpool):
 * -ENOSPC before anything changes; _unpool gives back what it did not use. */
int tslab_chunks_admit(struct tslab_fs *fs, struct tslab_ext *x, uint64_t n);
void tslab_chunks_unpool(struct tslab_fs *fs, struct tslab_ext *x);
/* End the window in which the old bytes of a shrink stay readable. */
void tslab_chunks_window_close(struct tslab_inode *ip);
/* Did a file of EP shrink since RS was taken (epoch lock held)? */
bool tslab_chunks_shrunk(const struct tslab_epoch *ep, const struct tslab_rsnap *rs);

/* ---- recover.c --------------------------------------------------------- */
int tslab_mount_store(struct tslab_fs *fs);

/* ---- ops.c / file.c / xattr.c ------------------------------------------ */
extern const struct fuse_lowlevel_ops tslab_ops;
void tslab_op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void tslab_op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                       const char *value, size_t size, int flags);
void tslab_op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void tslab_op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
void tslab_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tslab_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   struct fuse_file_info *fi);
void tslab_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
                    off_t off, struct fuse_file_info *fi);
void tslab_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tslab_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tslab_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                    struct fuse_file_info *fi);
void tslab_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
                    struct fuse_file_info *fi);
void tslab_op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                        off_t length, struct fuse_file_info *fi);
#define TSLAB_MAX_WRITE (1u << 20)
void tslab_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                      struct fuse_file_info *fi);
void tslab_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                     fuse_ino_t newparent, const char *newname, unsigned int flags);
void tslab_op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tslab_op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                      struct fuse_file_info *fi);
void tslab_op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                          struct fuse_file_info *fi);
void tslab_op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void tslab_op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                       struct fuse_file_info *fi);

/* Helpers shared by the operation files (ops.c). */
struct tslab_fs *tslab_fs_of(fuse_req_t req);
bool tslab_is_ro(struct tslab_fs *fs);
struct tslab_inode *tslab_dent_inode(struct tslab_fs *fs, struct tslab_dent *d);
bool tslab_is_epoch_dir(const struct tslab_inode *ip);
void tslab_fill_entry(struct fuse_entry_param *e, const struct tslab_inode *ip);
void tslab_touch_dir(struct tslab_fs *fs, struct tslab_epoch *ep,
                     struct tslab_inode *dip);
int tslab_link_put(struct tslab_fs *fs, const struct tslab_link *l, uint32_t mode);
int tslab_space_admit(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip,
                      uint64_t size, bool force);
void tslab_space_unadmit(struct tslab_fs *fs, struct tslab_inode *ip);
int tslab_put_admitted(struct tslab_fs *fs, struct tslab_inode *ip);
void tslab_xattr_objs_free(struct tslab_fs *fs, struct tslab_inode *ip);
int tslab_unlink_inode(struct tslab_fs *fs, struct tslab_epoch *ep,
                       struct tslab_inode *ip);
int tslab_release_dentry(struct tslab_fs *fs, struct tslab_epoch *pep,
                         struct tslab_dent *d);
int tslab_drop_epoch_dir(struct tslab_fs *fs, struct tslab_epoch *pep,
                         struct tslab_inode *pip, struct tslab_inode *ip);
/* rmdir of epoch directory NAME in PARENT (the one path for rmdir, policy
 * and control drops). EXPECT: epoch id the directory must have, 0 = any.
 * Logs name, files, bytes and REASON. */
int tslab_drop_epoch(struct tslab_fs *fs, fuse_ino_t parent, const char *name, size_t len,
                     uint32_t expect, const char *reason);

/* ---- notify (ops.c) / commit (ns.c) threads ---------------------------- */
int tslab_threads_start(struct tslab_fs *fs);
void tslab_threads_stop(struct tslab_fs *fs);
/* DROPPED: an epoch went with the entry; memory is trimmed afterwards. */
void tslab_notify_inval_entry(struct tslab_fs *fs, slab_handle_t parent, const char *name,
                              size_t len, bool dropped);
#define TSLAB_PROBES 3u
/* File H was just created: let the notify thread teach the kernel no_open. */
void tslab_notify_probe(struct tslab_fs *fs, slab_handle_t h);

#endif /* TSLAB_FS_INT_H */
