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
 * Lock table (fs/)
 *   lock            protects                              held across device I/O
 *   drop_lock (rw)  epoch memory (read: every request)    yes (read side only)
 *   epoch->lock     dentries, inodes, ext, dirty chunks   small files' puts and
 *                                                         reads; extents writes,
 *                                                         flushes and truncates
 *   epochs_lock     epoch table and list (leaf)           no
 * Reads of extents files copy what they need under epoch->lock and reach
 * the device without it (chunks.c, tslab_chunks_read_begin/_end); the slab
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
#include <fuse_lowlevel.h>
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

/* Chunk of an extents file (fs/chunks.c). */
#define TSLAB_CH     SLAB_FDATA_MAX
#define TSLAB_DC_MAX 64u /* dirty chunks cached per file (~257 KiB) */
struct tslab_dchunk {
	uint64_t idx;
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
void tslab_inode_stat(const struct tslab_inode *ip, struct stat *st);
#define TSLAB_FLUSH_TRIM  1u /* release buffers of closed, clean files */
#define TSLAB_FLUSH_FINAL 2u /* unmount: free orphans */
int tslab_flush_epoch(struct tslab_fs *fs, struct tslab_epoch *ep, unsigned flags);
int tslab_flush_all(struct tslab_fs *fs, unsigned flags);
int tslab_sync_all(struct tslab_fs *fs);
int tslab_orphan_release(struct tslab_fs *fs, struct tslab_epoch *ep,
                         struct tslab_inode *ip);
int64_t tslab_now(void);
/* Free space kept back for data already accepted but not yet put. */
#define TSLAB_SPACE_MARGIN (1u << 20)
int tslab_space_check(struct tslab_fs *fs, uint64_t need);
int tslab_err(struct tslab_fs *fs, int err, const char *what);

/* Look an inode up by handle and lock its epoch; caller holds drop_lock. */
int tslab_get_locked(struct tslab_fs *fs, fuse_ino_t ino, struct tslab_epoch **ep,
                     struct tslab_inode **ip);

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
	uint64_t ino, size;
	uint32_t n, cap;
	struct tslab_dchunk *dc;
};
int tslab_chunks_read_begin(struct tslab_inode *ip, size_t size, off_t off,
                            struct tslab_rsnap *rs);
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
int tslab_unlink_inode(struct tslab_fs *fs, struct tslab_epoch *ep,
                       struct tslab_inode *ip);
int tslab_release_dentry(struct tslab_fs *fs, struct tslab_epoch *pep,
                         struct tslab_dent *d);
int tslab_drop_epoch_dir(struct tslab_fs *fs, struct tslab_epoch *pep,
                         struct tslab_inode *pip, struct tslab_inode *ip);

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
