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
 */
#ifndef TSLAB_FS_INT_H
#define TSLAB_FS_INT_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

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
	bool loaded; /* buf/ip->size hold the content */
	bool dirty;  /* newer than the last slab_obj_put */
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
};

#define TSLAB_EPOCH_SLOTS 65536u

struct tslab_fs {
	struct zns_dev *dev;
	struct slab_store *st;
	struct fuse_session *se;
	const char *device;
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
	/* A put failed with ENOSPC: new data is refused until a put succeeds
	 * or an epoch is dropped; the unwritten files stay dirty in DRAM and
	 * the commit thread retries them. */
	atomic_bool space_full;

	pthread_rwlock_t drop_lock;
	pthread_mutex_t epochs_lock; /* epoch table and list; leaf lock */
	struct tslab_epoch *epochs[TSLAB_EPOCH_SLOTS];
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
};

/* ---- log.c / main.c ---------------------------------------------------- */
/* INFO: also informational messages (on stderr before daemonizing: not). */
void tslab_log_init(bool to_stderr, bool info);
void tslab_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
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
void tslab_epoch_destroy(struct tslab_epoch *ep);
void tslab_epoch_free_buffers(struct tslab_epoch *ep);

uint32_t tslab_name_hash(slab_handle_t parent, const char *name, size_t len);
struct tslab_dent *tslab_ns_find(struct tslab_epoch *pep, slab_handle_t parent,
                                 const char *name, size_t len);
int tslab_ns_insert(struct tslab_epoch *pep, struct tslab_ext *dir, struct tslab_dent *d);
void tslab_ns_remove(struct tslab_epoch *pep, struct tslab_ext *dir,
                     struct tslab_dent *d);
int tslab_dent_set_name(struct tslab_epoch *ep, struct tslab_dent *d,
                        slab_handle_t parent, const char *name, size_t len);
void tslab_dent_free_name(struct tslab_epoch *ep, struct tslab_dent *d);

struct tslab_inode *tslab_inode_new(struct tslab_epoch *ep, slab_handle_t h);
void tslab_inode_free(struct tslab_epoch *ep, struct tslab_inode *ip);
struct tslab_inode *tslab_inode_lookup(struct tslab_fs *fs, slab_handle_t h);
struct tslab_ext *tslab_ext_get(struct tslab_epoch *ep, struct tslab_inode *ip);
void tslab_ext_trim(struct tslab_epoch *ep, struct tslab_inode *ip);
int tslab_data_load(struct tslab_fs *fs, struct tslab_epoch *ep, struct tslab_inode *ip);
int tslab_data_reserve(struct tslab_ext *x, size_t len);
int tslab_inode_put(struct tslab_fs *fs, struct tslab_inode *ip);
int tslab_inode_dirty(struct tslab_fs *fs, struct tslab_epoch *ep,
                      struct tslab_inode *ip);
void tslab_mark_dirty(struct tslab_epoch *ep, struct tslab_ext *x);
/* Dirty inodes of one epoch put together by the request that reaches this
 * many, so that buffered content stays bounded between commits (with
 * no_open there is no release to put them). */
#define TSLAB_DIRTY_BATCH 1024u
void tslab_flush_if_full(struct tslab_fs *fs, struct tslab_epoch *ep);
void tslab_inode_stat(const struct tslab_inode *ip, struct stat *st);
#define TSLAB_FLUSH_TRIM  1u /* release buffers of closed, clean files */
#define TSLAB_FLUSH_FINAL 2u /* unmount: free orphans */
int tslab_flush_epoch(struct tslab_fs *fs, struct tslab_epoch *ep, unsigned flags);
int tslab_flush_all(struct tslab_fs *fs, unsigned flags);
int tslab_sync_all(struct tslab_fs *fs);
int tslab_orphan_release(struct tslab_fs *fs, struct tslab_epoch *ep,
                         struct tslab_inode *ip);
/* Nanoseconds of CLOCK_REALTIME, or of the test clock (policy.c). */
int64_t tslab_now(void);
extern int tslab_clock_fd; /* TSLAB_TEST_CLOCK_FILE opened, or -1 */
int64_t tslab_test_clock(void);
/* Free space kept back for data already accepted but not yet put. */
#define TSLAB_SPACE_MARGIN (1u << 20)
int tslab_space_check(struct tslab_fs *fs, uint64_t need);
int tslab_err(struct tslab_fs *fs, int err, const char *what);

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
