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
 *   into different epochs do not serialise on one lock, and no store-wide
 *   lock is held across a device call (the lock rules are in slab_int.h).
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

/* An epoch id is (slot << 8 | generation): at most SLAB_EPOCH_SLOTS epochs
 * exist at once, each in its own slot, so a table indexed by
 * slab_epoch_slot() never holds two live epochs in one entry. */
#define SLAB_EPOCH_SLOTS 65536u

static inline uint32_t slab_epoch_slot(uint32_t epoch)
{
	return (epoch >> 8) % SLAB_EPOCH_SLOTS;
}

struct slab_store;
struct slab_arena;

/* ---- formatting and mounting ------------------------------------------ */

struct slab_format_opts {
	const char *label;      /* up to 31 bytes, may be NULL */
	const uint8_t *uuid;    /* 16 bytes, NULL = random */
	uint32_t reserve_zones; /* zones kept free for GC; 0 = default */
};

/* Whether a device of NR_ZONES zones can be formatted with O (NULL: the
 * defaults): 0, -ENOSPC (too few zones), -EINVAL (reserve too large).
 * Touches nothing; slab_format() applies the same rules. */
int slab_format_fits(uint32_t nr_zones, const struct slab_format_opts *o);
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
	/* fsck: damage found by the scan is listed (slab_damage_list) instead of
	 * failing the mount, the scan goes on past it, no zone is reset at mount
	 * and the error mark does not force read-only. */
	bool check;
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
	/* Extents file (slab_fdata_*): the head carries no payload, data_len
	 * is 0, the bytes live in FDATA chunks. SLAB_EXT_RESET on a put also
	 * starts a new data generation: every chunk written so far is dead. */
	uint8_t extents;
};
#define SLAB_EXT_YES   1u
#define SLAB_EXT_RESET 2u

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

/* ---- damage (damage.c) --------------------------------------------------- *
 * A page or record below a zone's write pointer that fails its checks is
 * damage, unless the log simply ends there (a page whose header is intact
 * but that extends past the write pointer: a torn tail; a checkpoint zone).
 * A normal mount that finds damage logs each place and fails with -EUCLEAN
 * after setting the error mark (read-only compatible feature 0x1) when the
 * device is writable; a store whose superblock carries the mark mounts
 * read-only until fsck.tslabfs clears it. */
#define SLAB_DAMAGE_NO_EPOCH 0xffffffffu
struct slab_damage {
	uint32_t zone;
	uint64_t offset; /* byte offset in the zone of the bad page or record */
	uint32_t epoch;  /* epoch whose records the zone holds, or NO_EPOCH */
	bool journal;    /* a journal zone: any epoch may have lost records */
};
/* Damage found so far: copies up to MAX entries, returns the total. */
size_t slab_damage_list(struct slab_store *st, struct slab_damage *out, size_t max);
/* Record damage found while running (a read that failed its checks), log it
 * and set the error mark; from then on no checkpoint is written. */
void slab_damage_report(struct slab_store *st, uint32_t zone, uint64_t offset,
                        const char *what);
/* The store answers -EROFS to every change from now on (errors=remount-ro);
 * unmount writes nothing. */
void slab_set_read_only(struct slab_store *st);
bool slab_is_read_only(struct slab_store *st);
/* The superblock carries the error mark (set at mount or since). */
bool slab_has_error_mark(struct slab_store *st);
/*
 * fsck repair on a store mounted with opts.check and writable: drop every
 * epoch holding damage (durable), reset the damaged zones, clear the error
 * mark. -EUCLEAN (nothing changed) when a damaged zone belongs to no single
 * non-root epoch (journal, root epoch, unknown): that cannot be repaired
 * without guessing.
 */
int slab_damage_repair(struct slab_store *st);
/* Would slab_damage_repair() repair it? 0 or -EUCLEAN (any mount). */
int slab_damage_repairable(struct slab_store *st);
/* Clear the error mark of an undamaged store (fsck after a clean check). */
int slab_error_mark_clear(struct slab_store *st);

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

/* ---- file data as extents (fdata.c) --------------------------------------
 *
 * An extents object keeps its bytes in FDATA records of up to
 * SLAB_FDATA_MAX bytes, one per chunk index (byte offset / SLAB_FDATA_MAX),
 * each with its own version: writing a chunk costs that chunk, never the
 * object. Its head (slab_obj_put with extents set) carries attributes only.
 * A chunk record counts at recovery when the newest head of the object is
 * an extents head and the chunk is newer than the head's data base (set by
 * slab_fdata_begin and by a SLAB_EXT_RESET put). Chunks are durable at the
 * next slab_sync() like puts; they may be written before or after the head.
 */
#define SLAB_FDATA_MAX 4020u
/* Highest chunk index + 1 (file offsets below 2^43 + a little). */
#define SLAB_FDATA_NIDX (1ull << 32)
/* Make H an extents object with a new data base (no device write; its
 * previous single or chunked version stays valid until the extents head is
 * put). Does nothing when H is one already. */
int slab_fdata_begin(struct slab_store *st, slab_handle_t h);
/* 1 when H is an extents object, 0 when not, -ESTALE. */
int slab_fdata_is(struct slab_store *st, slab_handle_t h);
/* Append chunk IDX of H with LEN (<= SLAB_FDATA_MAX) bytes; LEN 0 writes a
 * hole record (the chunk reads as zeros). */
int slab_fdata_write(struct slab_store *st, slab_handle_t h, uint64_t idx,
                     const void *data, uint32_t len);
/* Full chunks IDX0 .. IDX0+N-1 (N <= SLAB_FDATA_RUN, each SLAB_FDATA_MAX
 * bytes at BUFS[i]) in one device write, one slab page per chunk. */
#define SLAB_FDATA_RUN 64u
int slab_fdata_write_run(struct slab_store *st, slab_handle_t h, uint64_t idx0,
                         uint32_t n, const void *const *bufs);
/* Read chunk IDX of H into BUF (SLAB_FDATA_MAX bytes): the bytes stored
 * (0 for a hole or a chunk never written; the rest reads as zeros). */
ssize_t slab_fdata_read(struct slab_store *st, slab_handle_t h, uint64_t idx, void *buf);
/* Chunks IDX0 .. IDX0+N-1 (N <= SLAB_FDATA_RDRUN) into OUT (N *
 * SLAB_FDATA_MAX bytes), the bytes stored of each in LENS[i]; chunks in
 * consecutive pages are read with one device read. SLAB_FDATA_RDRUN covers
 * the chunks of a 1 MiB READ at any offset (262), so that a large READ of a
 * sequentially written file is one or a few device reads. */
#define SLAB_FDATA_RDRUN 264u
int slab_fdata_read_run(struct slab_store *st, slab_handle_t h, uint64_t idx0, uint32_t n,
                        uint8_t *out, uint32_t *lens);
/* Hole records for every chunk holding data with index in [FROM, TO). */
int slab_fdata_punch(struct slab_store *st, slab_handle_t h, uint64_t from, uint64_t to);
/* What the record of chunk IDX of H costs now (slab_fdata_cost of it, 0
 * when none): a new version of the chunk adds its own cost minus this. */
uint64_t slab_fdata_chunk_cost(struct slab_store *st, slab_handle_t h, uint64_t idx);
/* First chunk index >= IDX holding data; -ENXIO when none. */
int slab_fdata_next_data(struct slab_store *st, slab_handle_t h, uint64_t idx,
                         uint64_t *out);

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

/*
 * Space admission. Every change a caller accepts is backed by space
 * reserved when it is accepted, so that it can always be put later (with
 * the journal, GC and page-packing headroom it needs): ENOSPC comes from
 * slab_space_reserve(), never from the put.
 *   slab_obj_cost()      device bytes a version of an object with DATA_LEN
 *                        bytes of payload and a NAME_LEN-byte name costs
 *                        (records rounded as the page packer spends pages);
 *   slab_space_reserve() take BYTES (-ENOSPC when the live objects' costs
 *                        plus everything reserved would pass the limit);
 *   slab_space_release() give them back, once the change is put (the put
 *                        itself is then counted) or abandoned.
 * Puts and frees keep the live costs exact; a put that was not reserved
 * still works while there is room (it is just not admitted ahead).
 */
uint64_t slab_obj_cost(uint64_t data_len, uint32_t name_len);
/* Device bytes an FDATA chunk record of LEN (<= SLAB_FDATA_MAX) bytes
 * costs. An extents object costs slab_obj_cost(0, name_len) for its head
 * plus this for each chunk record (data or hole) its map names. */
uint64_t slab_fdata_cost(uint32_t len);
int slab_space_reserve(struct slab_store *st, uint64_t bytes);
void slab_space_release(struct slab_store *st, uint64_t bytes);
/* Reserve without the limit: for a change that comes with a larger free
 * (the parent directory of an unlink), which must work on a full device. */
void slab_space_charge(struct slab_store *st, uint64_t bytes);

struct slab_space {
	uint64_t device_bytes; /* every zone, superblock and journal included */
	uint64_t total_bytes;  /* capacity of data zones */
	uint64_t free_bytes;   /* data zones not holding live records */
	uint64_t limit_bytes;  /* data zones minus GC reserve and headroom */
	uint64_t used_bytes;   /* live objects' costs + reserved */
	uint64_t avail_bytes;  /* limit - used: what can still be reserved */
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
