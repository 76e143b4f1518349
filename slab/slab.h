/* SPDX-License-Identifier: MIT */
/*
 * slab: objects, slab pages, lifetime epochs, handles, DRAM arenas, space
 * accounting, reclaim and GC. Sits on zns/, used by fs/ and mkfs/.
 *
 * Model
 *   - An OBJECT is identified by a 64-bit handle and stored on the device as
 *     one record (or, when larger than SLAB_CHUNK_MAX, a head record plus
 *     chunk records) carrying its attributes, its (parent, name) and its data.
 *     Every change appends a new version; the newest sequence number wins.
 *   - Every object belongs to exactly one EPOCH (encoded in its handle).
 *     Records of an epoch are packed into 4 KiB slab pages that hold records
 *     of that epoch only; pages are appended at a zone's write pointer.
 *   - Dropping an epoch writes one durable drop record, resets every zone
 *     whose live bytes fall to zero, frees the epoch's DRAM arena and makes
 *     every handle of the epoch stale. Its cost is O(zones + arena chunks),
 *     never O(objects).
 *   - Epoch 0 is the root epoch: it always exists and is never dropped.
 *
 * Handles
 *   bits 63..40  epoch id (24 bits: slot 16 | generation 8)
 *   bits 39..32  object generation (8 bits)
 *   bits 31..0   object slot within the epoch (slot 0 is never used)
 *   The first object allocated in the root epoch of an empty store has
 *   handle 1 (SLAB_HANDLE_ROOT), which fs/ uses as FUSE_ROOT_ID.
 *   A lookup of a stale (freed, dropped, reused) or forged handle is O(1)
 *   and returns -ESTALE.
 *
 * Durability
 *   slab_obj_put()/slab_obj_free() return once the new version is in DRAM
 *   and visible to readers; it reaches the device when its page fills, when
 *   the commit interval passes, or at slab_sync(). slab_sync() makes every
 *   put/free that returned before it was called durable; concurrent callers
 *   share device writes (group commit) and small syncs go through a shared
 *   journal zone so that they do not each consume a slab page.
 *
 * Concurrency
 *   All functions are thread-safe. Epochs are the unit of concurrency: puts
 *   into different epochs do not serialise on one lock. Lock order inside:
 *   epoch lock -> zone allocator lock -> device.
 *
 * Errors: negative errno. -ESTALE bad handle, -ENOSPC full, -EROFS store
 * went read-only after an unrecoverable device error, -EIO device error,
 * -EUCLEAN corrupt on-disk data, -EINVAL bad argument.
 */
#ifndef TSLAB_SLAB_H
#define TSLAB_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "zns/zns.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t slab_handle_t;

#define SLAB_HANDLE_ROOT ((slab_handle_t)1)
#define SLAB_EPOCH_ROOT  0u
/* Largest payload stored in one record; larger objects are chunked. */
#define SLAB_CHUNK_MAX 4000u
#define SLAB_NAME_MAX  255u

static inline uint32_t slab_handle_epoch(slab_handle_t h)
{
	return (uint32_t)(h >> 40);
}

struct slab_store;
struct slab_arena;

/* ---- formatting and mounting ------------------------------------------ */

struct slab_format_opts {
	const char *label;      /* up to 31 bytes, may be NULL */
	const uint8_t *uuid;    /* 16 bytes, NULL = random */
	uint32_t reserve_zones; /* zones kept free for GC; 0 = default */
};

/* Reset the zones in use and write a fresh superblock. */
int slab_format(struct zns_dev *dev, const struct slab_format_opts *o);

/* Superblock as read from the device (host byte order). */
struct slab_sb_info {
	uint32_t version;
	uint64_t features_compat, features_incompat, features_ro_compat;
	uint8_t uuid[16];
	char label[32];
	uint64_t created_ns;
	uint64_t sequence;
	uint32_t sb_zones[2];
	uint32_t journal_zones;
	uint32_t first_data_zone;
	uint32_t reserve_zones;
};
/* Read and verify the newest valid superblock. -ENODATA when there is none
 * (not a tslabfs device), -EUCLEAN when corrupt, -EOPNOTSUPP for unknown
 * incompatible features or a newer format version. */
int slab_sb_read(struct zns_dev *dev, struct slab_sb_info *out);

struct slab_mount_opts {
	bool read_only;
	unsigned commit_ms; /* flush interval for unsynced data; 0 = default 5000 */
	bool no_checkpoint; /* ignore the checkpoint and scan every zone */
};

/* Attributes stored with an object (host order). */
struct slab_attr {
	uint32_t mode; /* S_IFMT | permission bits */
	uint32_t uid, gid;
	uint32_t nlink;
	uint32_t rdev;
	uint64_t size; /* logical size (regular files: length of data) */
	int64_t atime_ns, mtime_ns, ctime_ns;
};

/* Object kinds are fs-defined; slab stores them and hands them back. */
struct slab_obj {
	uint8_t kind;
	struct slab_attr attr;
	slab_handle_t parent;
	const char *name; /* not NUL-terminated */
	uint8_t name_len;
	const void *data; /* object payload, attr-independent */
	uint64_t data_len;
};

/*
 * Called by slab_mount() once per live object found by recovery, in no
 * particular order. o->data points to the payload when the object is stored
 * in a single record (data_len <= SLAB_CHUNK_MAX), else is NULL (read it with
 * slab_obj_read()). Pointers are valid only during the call. A non-zero
 * return aborts the mount with that error.
 * An object recovered from a checkpoint has o->data set only when data_len
 * <= SLAB_DATA_INLINE (else NULL: read it with slab_obj_read()); every other
 * field is as stored.
 */
#define SLAB_DATA_INLINE 16u
typedef int (*slab_recover_fn)(void *ctx, slab_handle_t h, const struct slab_obj *o);

/* Mount: newest valid superblock, journal replay, scan of every zone up to
 * its write pointer (records accepted by checksum; a torn tail ends a
 * zone's scan), then one callback per live object.
 * With a checkpoint (written in the background and by slab_unmount): the
 * checkpoint, then only what was written after it (zone tails past the
 * write pointers it recorded, zones reset since, the journal). A checkpoint
 * that fails its checksum or does not match the device is ignored (logged)
 * and every zone is scanned. */
int slab_mount(struct zns_dev *dev, const struct slab_mount_opts *o, slab_recover_fn fn,
               void *ctx, struct slab_store **out);
/* Sync everything, stop background work, write a checkpoint (skipped,
 * logged, when space is short), free all memory. The device stays open
 * (the caller owns it). */
int slab_unmount(struct slab_store *st);

/* ---- objects ------------------------------------------------------------ */

/* Reserve a new handle in EPOCH (DRAM only, nothing written). */
int slab_obj_alloc(struct slab_store *st, uint32_t epoch, slab_handle_t *out);
/* Append a new version of object H (replacing any previous version). */
int slab_obj_put(struct slab_store *st, slab_handle_t h, const struct slab_obj *o);
/* Delete H: durable tombstone at next sync, slot released, H becomes stale. */
int slab_obj_free(struct slab_store *st, slab_handle_t h);
/* Read payload bytes [off, off+len) of H's newest version; returns bytes read
 * (short at end of data). */
ssize_t slab_obj_read(struct slab_store *st, slab_handle_t h, uint64_t off, void *buf,
                      size_t len);
/* 0 if H is live, -ESTALE otherwise. O(1). */
int slab_obj_check(struct slab_store *st, slab_handle_t h);
/* Opaque per-object pointer owned by the caller (e.g. fs inode). */
int slab_obj_set_priv(struct slab_store *st, slab_handle_t h, void *priv);
int slab_obj_get_priv(struct slab_store *st, slab_handle_t h, void **priv);

/* ---- epochs ------------------------------------------------------------- */

int slab_epoch_create(struct slab_store *st, uint32_t *epoch_out);
/*
 * Drop EPOCH: durable before return, and the zones that held only its pages
 * are reset. Its handles are stale at once; its DRAM (slot table, arena,
 * page buffer) is unlinked and returned to the system by the background
 * thread shortly after. -EINVAL for the root epoch.
 */
int slab_epoch_drop(struct slab_store *st, uint32_t epoch);
/*
 * Seal EPOCH: from now on no object of it can be allocated, put or freed
 * (-EROFS); reads, GC and the drop work as before. Its open page is written
 * and its zone let go for other epochs. Durable before return, kept across
 * remounts; sealing a sealed epoch does nothing. -EINVAL for the root epoch.
 */
int slab_epoch_seal(struct slab_store *st, uint32_t epoch);
/* Wait until the DRAM of every epoch dropped so far has been returned. */
void slab_reclaim_wait(struct slab_store *st);
/* The epoch's DRAM arena, released wholesale after slab_epoch_drop(). */
struct slab_arena *slab_epoch_arena(struct slab_store *st, uint32_t epoch);

struct slab_epoch_stats {
	uint64_t objects;
	uint64_t live_bytes; /* record bytes on device still live */
	uint64_t pages;      /* slab pages written */
	uint32_t zones;      /* zones holding its pages */
	bool sealed;
};
int slab_epoch_stats(struct slab_store *st, uint32_t epoch, struct slab_epoch_stats *out);

/* ---- durability --------------------------------------------------------- */

int slab_sync(struct slab_store *st);

/* ---- space and counters ------------------------------------------------- */

struct slab_space {
	uint64_t total_bytes; /* capacity of data zones */
	uint64_t free_bytes;  /* not holding live data (reclaimable by GC) */
	uint64_t avail_bytes; /* free minus GC reserve */
	uint64_t objects;
	uint32_t zones_total, zones_empty;
};
void slab_space_get(struct slab_store *st, struct slab_space *out);

struct slab_counters {
	uint64_t objects, bytes_live, bytes_dead;
	uint64_t pages_written, journal_writes, zone_resets;
	uint64_t gc_runs, gc_bytes_moved;
	uint64_t user_bytes_written, device_bytes_written; /* WA = device/user */
	uint64_t slow_path_hits;
};
void slab_counters_get(struct slab_store *st, struct slab_counters *out);

/* ---- administration (admin.c): zone map, epoch list, GC on request ------ */

enum slab_zone_use {
	SLAB_ZUSE_FREE = 0, /* empty */
	SLAB_ZUSE_OPEN,     /* receiving pages */
	SLAB_ZUSE_FULL,     /* written (full, finished or let go) */
	SLAB_ZUSE_META,     /* superblock or journal */
	SLAB_ZUSE_GC,       /* being collected */
	SLAB_ZUSE_BAD,      /* offline or unusable */
};
#define SLAB_ZONE_NO_OWNER UINT32_MAX
struct slab_zone_info {
	uint32_t zone;
	uint8_t use;     /* enum slab_zone_use */
	bool root;       /* holds root-epoch pages */
	uint64_t wp;     /* bytes written since the last reset */
	uint64_t live;   /* live record bytes; wp - live is dead or padding */
	uint32_t owner;  /* first epoch with live pages here, or SLAB_ZONE_NO_OWNER */
	uint32_t owners; /* epochs with live pages here */
};
/* Fill OUT[0..nzones) (every zone of the device, metadata included) and
 * return the number of zones; when N is too small, fill nothing and return
 * the number needed. A snapshot: consistent per zone. */
int slab_zone_map(struct slab_store *st, struct slab_zone_info *out, uint32_t n);
/* Ids of the live epochs (root included) into IDS[0..cap); returns how
 * many there are (may exceed CAP). */
int slab_epoch_list(struct slab_store *st, uint32_t *ids, uint32_t cap);
/* Collect up to MAX_ZONES written zones of which at least an eighth is
 * dead, fewest live bytes first, whatever the free space (slab_gc_pass
 * only runs when space is short); *DONE = zones collected. 0, or a
 * negative errno. */
int slab_gc_run(struct slab_store *st, uint32_t max_zones, uint32_t *done);

/* ---- DRAM arenas (size-classed, per epoch) ------------------------------ */

/* Thread-safe. Sizes up to SLAB_ARENA_MAX; larger sizes return NULL. */
#define SLAB_ARENA_MAX 4096u
struct slab_arena *slab_arena_new(void);
void slab_arena_destroy(struct slab_arena *a); /* frees everything in O(chunks) */
void *slab_arena_alloc(struct slab_arena *a, size_t size);
void slab_arena_free(struct slab_arena *a, void *p, size_t size);
size_t slab_arena_bytes(const struct slab_arena *a); /* DRAM held */

#ifdef __cplusplus
}
#endif

#endif /* TSLAB_SLAB_H */
