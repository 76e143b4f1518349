/* SPDX-License-Identifier: MIT */
/*
 * slab private definitions: on-device encodings (superblock, page header,
 * record), the DRAM arena internals, and the store's in-memory state.
 * Only the slab sources and tests/slab include this header.
 */
#ifndef TSLAB_SLAB_INT_H
#define TSLAB_SLAB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/tslab_le.h"
#include "common/tslab_lock.h"
#include "slab/slab.h"

/*
 * Lock rules of the slab module (the one place they are stated; functions
 * that require a lock assert it with tslab_*_assert_held()).
 *
 *  lock                 guards                                   kind
 *  st->gclock           one GC pass at a time                    mutex
 *  epoch->lock          the epoch's slots, open page, zone list,  mutex
 *                       state; the root epoch's lock also guards
 *                       st->drops
 *  st->elock            epoch free list, st->neslots              mutex, leaf
 *  st->dlock            the dirty-epoch list                      mutex, leaf
 *  st->slock/scond      group-commit generation counters          mutex, leaf
 *  st->bglock           background thread's wake-ups, graves,     mutex, leaf
 *                       reclaim counters, throttled writers
 *  zone->wlock          page writes, finish and reset of one zone mutex
 *  st->zlock            zone states, write pointers, generations, mutex
 *                       writers, st->active/budget
 *  st->iolock           device calls (shared) against the fence   rwlock
 *                       (exclusive)
 *  rcache set locks     one read-cache set                        mutex, leaf
 *  arena spinlock       one DRAM arena                            spin, leaf
 *
 * Order (take left before right; never the reverse):
 *   gclock -> root epoch lock -> other epoch lock -> zone wlock -> zlock
 *   -> iolock (shared) -> device
 * An epoch lock may also be held while taking elock, dlock or bglock
 * (leaves: nothing is taken under them but the device is never called with
 * them held). Two non-root epoch locks are never held together.
 * make_active_room() only try-locks a wlock under zlock, so it cannot wait.
 *
 * Device I/O: st->zlock is store-wide and is never held across a device
 * call; a zone's wlock (per zone) and an epoch's lock (per epoch) may be.
 */

uint64_t slab_hash64(const void *p, size_t len);
static inline uint32_t slab_hash32(const void *p, size_t len)
{
	return (uint32_t)slab_hash64(p, len);
}

/* ---- superblock (sb.c) -------------------------------------------------- */

#define SLAB_SB_MAGIC      "TSLABFS\0"
#define SLAB_SB_VERSION    1u
#define SLAB_SB_BLOCK      4096u
#define SLAB_SB_ZONE0      0u
#define SLAB_SB_NZONES     2u
#define SLAB_JOURNAL_FIRST 2u
#define SLAB_JOURNAL_DEF   2u
#define SLAB_RESERVE_DEF   2u
/* Feature bits known to this version. */
#define SLAB_FEAT_COMPAT_CKPT  0x1ull /* checkpoint reference at offset 160 */
#define SLAB_FEAT_COMPAT_KNOWN SLAB_FEAT_COMPAT_CKPT
/* Incompatible: FDATA records and extents heads (record flag 0x80). */
#define SLAB_FEAT_INCOMPAT_FDATA 0x1ull
#define SLAB_FEAT_INCOMPAT_KNOWN SLAB_FEAT_INCOMPAT_FDATA
/* The store holds damage found and not yet repaired (damage.c): mount it
 * read-only and run fsck.tslabfs. */
#define SLAB_FEAT_RO_COMPAT_ERROR 0x1ull
#define SLAB_FEAT_RO_COMPAT_KNOWN SLAB_FEAT_RO_COMPAT_ERROR

/*
 * On-device superblock layout (little-endian; the rest of the 4096-byte block
 * is zero). Documented as a struct so that the offsets can be asserted; the
 * bytes are produced by slab_sb_encode(), never by copying this struct.
 */
struct slab_sb_disk {
	uint8_t magic[8];            /*   0 "TSLABFS\0" */
	uint32_t version;            /*   8 */
	uint32_t block_size;         /*  12 4096 */
	uint64_t features_compat;    /*  16 */
	uint64_t features_incompat;  /*  24 */
	uint64_t features_ro_compat; /*  32 */
	uint8_t uuid[16];            /*  40 */
	char label[32];              /*  56 */
	uint32_t lba_size;           /*  88 */
	uint32_t nr_zones;           /*  92 */
	uint64_t zone_size;          /*  96 */
	uint64_t zone_capacity;      /* 104 */
	uint32_t sb_zone[2];         /* 112 */
	uint32_t journal_first;      /* 120 */
	uint32_t journal_zones;      /* 124 */
	uint32_t first_data_zone;    /* 128 */
	uint32_t reserve_zones;      /* 132 */
	uint64_t created_ns;         /* 136 */
	uint64_t sequence;           /* 144 */
	uint64_t csum;               /* 152 XXH3-64 of the block, this field 0 */
};
#define SLAB_SB_CSUM_OFF 152u
#define SLAB_SB_OFF(f)   offsetof(struct slab_sb_disk, f)
_Static_assert(sizeof(struct slab_sb_disk) == 160, "superblock layout");
_Static_assert(SLAB_SB_OFF(version) == 8 && SLAB_SB_OFF(block_size) == 12, "sb version");
_Static_assert(SLAB_SB_OFF(features_compat) == 16 &&
                   SLAB_SB_OFF(features_incompat) == 24 &&
                   SLAB_SB_OFF(features_ro_compat) == 32,
               "sb features");
_Static_assert(SLAB_SB_OFF(uuid) == 40 && SLAB_SB_OFF(label) == 56, "sb uuid, label");
_Static_assert(SLAB_SB_OFF(lba_size) == 88 && SLAB_SB_OFF(nr_zones) == 92 &&
                   SLAB_SB_OFF(zone_size) == 96 && SLAB_SB_OFF(zone_capacity) == 104,
               "sb geometry");
_Static_assert(SLAB_SB_OFF(sb_zone) == 112 && SLAB_SB_OFF(journal_first) == 120 &&
                   SLAB_SB_OFF(journal_zones) == 124 &&
                   SLAB_SB_OFF(first_data_zone) == 128 &&
                   SLAB_SB_OFF(reserve_zones) == 132,
               "sb zones");
_Static_assert(SLAB_SB_OFF(created_ns) == 136 && SLAB_SB_OFF(sequence) == 144,
               "sb times");
_Static_assert(SLAB_SB_OFF(csum) == SLAB_SB_CSUM_OFF, "sb csum");

/* Geometry as recorded in the superblock. */
struct slab_sb_geom {
	uint32_t lba_size, nr_zones;
	uint64_t zone_size, zone_capacity;
};

void slab_sb_encode(uint8_t *blk, const struct slab_sb_info *sb,
                    const struct slab_sb_geom *g);
/* 0, -ENODATA (no magic), -EUCLEAN (bad checksum/fields), -EOPNOTSUPP. */
int slab_sb_decode(const uint8_t *blk, struct slab_sb_info *sb, struct slab_sb_geom *g);
/* Append a new superblock copy (sequence = sb->sequence) to the ping-pong
 * pair, switching zones when the current one is full. */
int slab_sb_write(struct zns_dev *dev, const struct slab_sb_info *sb);

/*
 * Checkpoint reference, stored in the superblock block from offset 160 when
 * SLAB_FEAT_COMPAT_CKPT is set (covered by the superblock checksum):
 *   160 u32 version (SLAB_CKPT_VERSION)   164 u32 number of zones
 *   168 u64 checkpoint number             176 u64 image bytes
 *   184 u64 XXH3-64 of the image          192 u32 zones[], in image order
 */
#define SLAB_CKPT_VERSION 1u
#define SLAB_CKPT_REF_OFF 160u
#define SLAB_CKPT_MAXZ    960u
struct slab_ckpt_ref {
	uint32_t version, nzones;
	uint64_t seq, bytes, csum;
	uint32_t zones[SLAB_CKPT_MAXZ];
};
/* On-device checkpoint reference, at SLAB_CKPT_REF_OFF in the superblock
 * block (little-endian; ckpt_ref_encode/decode in sb.c use these offsets). */
struct slab_ckpt_ref_disk {
	uint32_t version; /*  0 SLAB_CKPT_VERSION */
	uint32_t nzones;  /*  4 1..SLAB_CKPT_MAXZ */
	uint64_t seq;     /*  8 checkpoint number */
	uint64_t bytes;   /* 16 image bytes */
	uint64_t csum;    /* 24 XXH3-64 of the image */
	uint32_t zones[]; /* 32 zone numbers, in image order */
};
#define SLAB_CR_OFF(f) offsetof(struct slab_ckpt_ref_disk, f)
_Static_assert(sizeof(struct slab_ckpt_ref_disk) == 32, "ckpt ref fixed part");
_Static_assert(SLAB_CR_OFF(nzones) == 4 && SLAB_CR_OFF(seq) == 8 &&
                   SLAB_CR_OFF(bytes) == 16 && SLAB_CR_OFF(csum) == 24 &&
                   SLAB_CR_OFF(zones) == 32,
               "ckpt ref fields");
_Static_assert(SLAB_CKPT_REF_OFF == sizeof(struct slab_sb_disk),
               "ckpt ref follows the sb");
_Static_assert(SLAB_CKPT_REF_OFF + SLAB_CR_OFF(zones) + 4 * SLAB_CKPT_MAXZ <=
                   SLAB_SB_BLOCK,
               "ckpt ref fits the superblock block");
/* Encode with a checkpoint reference (REF NULL: none, feature bit cleared). */
void slab_sb_encode_ckpt(uint8_t *blk, const struct slab_sb_info *sb,
                         const struct slab_sb_geom *g, const struct slab_ckpt_ref *ref);
/* The newest valid superblock and its checkpoint reference: *has_ref tells
 * whether one is present and well-formed. Errors as slab_sb_read(). */
int slab_sb_read_ckpt(struct zns_dev *dev, struct slab_sb_info *out,
                      struct slab_ckpt_ref *ref, bool *has_ref);
int slab_sb_write_ckpt(struct zns_dev *dev, const struct slab_sb_info *sb,
                       const struct slab_ckpt_ref *ref);

/* ---- slab pages and records (record.c) ------------------------------- */

#define SLAB_PAGE_SIZE     4096u
#define SLAB_PAGE_HDR      32u
#define SLAB_PAGE_MAGIC    "TSPG"
#define SLAB_EPOCH_JOURNAL 0xffffffffu /* epoch field of journal pages */

/* On-device page header (little-endian; docs/format.md "Slab pages").
 * Bytes are produced by slab_page_hdr_encode() at these offsets. */
struct slab_page_hdr_disk {
	uint8_t magic[4]; /*  0 "TSPG" */
	uint32_t csum;    /*  4 low 32 bits of XXH3-64 of bytes 8..31 */
	uint32_t epoch;   /*  8 epoch id, SLAB_EPOCH_JOURNAL for the journal */
	uint16_t used;    /* 12 bytes incl. header, 32..4096 */
	uint16_t nrec;    /* 14 records */
	uint64_t seq;     /* 16 page sequence number */
	uint32_t def_uid; /* 24 default uid of the page's records */
	uint32_t def_gid; /* 28 default gid */
};
#define SLAB_PH_OFF(f) offsetof(struct slab_page_hdr_disk, f)
_Static_assert(sizeof(struct slab_page_hdr_disk) == SLAB_PAGE_HDR, "page header");
_Static_assert(SLAB_PH_OFF(csum) == 4 && SLAB_PH_OFF(epoch) == 8 &&
                   SLAB_PH_OFF(used) == 12 && SLAB_PH_OFF(nrec) == 14 &&
                   SLAB_PH_OFF(seq) == 16 && SLAB_PH_OFF(def_uid) == 24 &&
                   SLAB_PH_OFF(def_gid) == 28,
               "page header fields");

/* A decoded page header (host order). */
struct slab_page_hdr {
	uint32_t epoch;
	uint16_t used; /* bytes incl. header */
	uint16_t nrec;
	uint64_t seq;
	uint32_t def_uid, def_gid;
};
void slab_page_hdr_encode(uint8_t *p, const struct slab_page_hdr *h);
/* 0 or -EUCLEAN (bad magic, checksum or used field). */
int slab_page_hdr_decode(const uint8_t *p, struct slab_page_hdr *h);

enum slab_rtype {
	SLAB_REC_OBJ = 1,
	SLAB_REC_CHUNK = 2,
	SLAB_REC_TOMB = 3,
	SLAB_REC_DROP = 4,
	SLAB_REC_EPOCH = 5, /* epoch marker: slot 0 of a non-root epoch */
	SLAB_REC_FDATA = 6, /* one chunk of an extents file (parent = index) */
};
/* Kind byte of an epoch marker record. */
#define SLAB_EPOCH_KIND_OPEN   0u
#define SLAB_EPOCH_KIND_SEALED 1u

#define SLAB_REC_HDR 44u
/* Extension flags, in the order the fields follow the header. */
#define SLAB_RF_UIDGID  0x01u /* u32 uid, u32 gid */
#define SLAB_RF_CTIME   0x02u /* i64 */
#define SLAB_RF_ATIME   0x04u /* i64 */
#define SLAB_RF_SIZE    0x08u /* u64 logical size */
#define SLAB_RF_NLINK   0x10u /* u32 */
#define SLAB_RF_RDEV    0x20u /* u32 */
#define SLAB_RF_CHUNKED 0x40u /* u64 total payload length; chunks follow */
#define SLAB_RF_EXTENTS 0x80u /* u64 data base sequence; data in FDATA records */
#define SLAB_RF_KNOWN   0xffu
/* Largest record that fits a page. */
#define SLAB_REC_MAX (SLAB_PAGE_SIZE - SLAB_PAGE_HDR)

/* On-device fixed record header (little-endian, unaligned: the u64 fields
 * are byte arrays so that the struct has no padding). slab_rec_encode() and
 * slab_rec_decode() access the bytes at these offsets. */
struct slab_rec_disk {
	uint32_t csum;       /*  0 low 32 bits of XXH3-64 of bytes [4, len) */
	uint8_t rtype;       /*  4 enum slab_rtype */
	uint8_t kind;        /*  5 fs-defined */
	uint8_t name_len;    /*  6 */
	uint8_t flags;       /*  7 SLAB_RF_* */
	uint16_t mode;       /*  8 */
	uint16_t data_len;   /* 10 payload bytes in this record */
	uint8_t handle[8];   /* 12 */
	uint8_t parent[8];   /* 20 */
	uint8_t seq[8];      /* 28 */
	uint8_t mtime_ns[8]; /* 36 */
};
#define SLAB_RD_OFF(f) offsetof(struct slab_rec_disk, f)
_Static_assert(sizeof(struct slab_rec_disk) == SLAB_REC_HDR, "record header");
_Static_assert(SLAB_RD_OFF(rtype) == 4 && SLAB_RD_OFF(kind) == 5 &&
                   SLAB_RD_OFF(name_len) == 6 && SLAB_RD_OFF(flags) == 7 &&
                   SLAB_RD_OFF(mode) == 8 && SLAB_RD_OFF(data_len) == 10,
               "record header bytes");
_Static_assert(SLAB_RD_OFF(handle) == 12 && SLAB_RD_OFF(parent) == 20 &&
                   SLAB_RD_OFF(seq) == 28 && SLAB_RD_OFF(mtime_ns) == 36,
               "record header u64 fields");

/* A decoded record (host order). name/data point into the encoded bytes. */
struct slab_rec {
	uint8_t rtype, kind, name_len, flags;
	uint16_t mode, data_len;
	uint64_t handle, parent, seq;
	int64_t mtime_ns, ctime_ns, atime_ns;
	uint32_t uid, gid, nlink, rdev;
	uint64_t size;  /* logical size */
	uint64_t total; /* payload length of a chunked object */
	uint64_t dbase; /* extents head: FDATA records below this seq are dead */
	const char *name;
	const void *data;
	uint32_t len; /* encoded length */
};

/* Length REC would take when encoded against page defaults DUID/DGID; the
 * flags field is recomputed from the values. */
uint32_t slab_rec_size(const struct slab_rec *r, uint32_t duid, uint32_t dgid);
/* Encoded length of a record we wrote ourselves (header fields only). */
uint32_t slab_rec_len_at(const uint8_t *p);
/* Encode into P (room CAP); returns the length or -ENOSPC. */
int slab_rec_encode(uint8_t *p, size_t cap, const struct slab_rec *r, uint32_t duid,
                    uint32_t dgid);
/* Decode and verify the record at P (AVAIL bytes left in the page) against
 * page defaults DUID/DGID. 0 or -EUCLEAN. */
int slab_rec_decode(const uint8_t *p, size_t avail, uint32_t duid, uint32_t dgid,
                    struct slab_rec *r);
/* Copy the encoded record SRC (length LEN, page defaults SUID/SGID) to DST,
 * re-expressed against defaults DUID/DGID; returns the new length (LEN or
 * LEN + 8) or -ENOSPC when CAP is too small. */
int slab_rec_copy(uint8_t *dst, size_t cap, const uint8_t *src, uint32_t len,
                  uint32_t suid, uint32_t sgid, uint32_t duid, uint32_t dgid);

/* ---- DRAM arena (arena.c) --------------------------------------------- */

#define SLAB_ARENA_CHUNK  (64u * 1024u)
#define SLAB_ARENA_NCLASS 28u
/* Class index for SIZE (1..SLAB_ARENA_MAX), and the class's block size. */
unsigned slab_arena_class(size_t size);
size_t slab_arena_class_size(unsigned cls);
/* Allocations of any size (> SLAB_ARENA_MAX go to a tracked malloc list),
 * released by slab_arena_destroy() if not freed before. */
void *slab_arena_alloc_any(struct slab_arena *a, size_t size);
void slab_arena_free_any(struct slab_arena *a, void *p, size_t size);

/* ---- handles ----------------------------------------------------------- */

static inline uint32_t slab_eslot(uint32_t epoch)
{
	return epoch >> 8;
}
static inline uint8_t slab_egen(uint32_t epoch)
{
	return (uint8_t)epoch;
}
static inline uint32_t slab_epoch_id(uint32_t eslot, uint8_t egen)
{
	return (eslot << 8) | egen;
}
static inline slab_handle_t slab_handle_make(uint32_t epoch, uint8_t gen, uint32_t slot)
{
	return ((uint64_t)epoch << 40) | ((uint64_t)gen << 32) | slot;
}
static inline uint32_t slab_handle_slot(slab_handle_t h)
{
	return (uint32_t)h;
}
static inline uint8_t slab_handle_gen(slab_handle_t h)
{
	return (uint8_t)(h >> 32);
}

/* ---- store state --------------------------------------------------------- */

/* Record location. zone is a zone index, or one of these. */
#define SLAB_LOC_NONE 0xffffffffu /* no record */
#define SLAB_LOC_OPEN 0xfffffffeu /* in the epoch's open DRAM page at off */
struct slab_loc {
	uint32_t zone;
	uint32_t off;
};

enum slab_slot_state {
	SLOT_FREE = 0, /* loc may still hold its live tombstone */
	SLOT_ALLOC,    /* handle handed out, no record yet (loc: old tombstone) */
	SLOT_LIVE,     /* loc = newest OBJ record */
};

struct slab_chunks {
	uint32_t n;
	uint64_t total; /* payload bytes */
	struct slab_loc loc[];
};

/*
 * Chunk map of an extents file (fdata.c): a sparse radix tree over the
 * chunk index (4 levels of 256, indices < 2^32), arena-allocated. An entry
 * names the newest FDATA record of its index (len == SLAB_REC_HDR: a hole
 * record, reads as zeros); zone SLAB_LOC_NONE: no record.
 */
struct slab_fent {
	struct slab_loc loc;
	uint16_t len;
};
struct slab_fmap {
	uint64_t dbase;             /* FDATA records with a lower seq are dead */
	uint64_t hint;              /* no data entry at or above this index */
	uint64_t nent;              /* entries in use (data or hole) */
	void *root;                 /* level-0 node, NULL when empty */
	struct slab_chunks *legacy; /* chunks of the chunked head still live */
};

/* One object slot (32 bytes). Protected by its epoch's lock. */
struct slab_slot {
	struct slab_loc loc; /* newest record of this slot (OBJ head or TOMB) */
	uint16_t len;        /* its encoded length */
	uint8_t gen;
	uint8_t state;
	union {
		uint32_t next_free; /* FREE: next slot in the epoch's FIFO free list */
		uint32_t cost;      /* LIVE: what its version costs (space.c) */
	};
	void *priv;
	/* LIVE chunked objects: their chunk table; extents files: their
	 * struct slab_fmap with bit 0 set (slab_slot_fmap()). Arena memory. */
	struct slab_chunks *chunks;
};
_Static_assert(sizeof(struct slab_slot) == 32, "slot size");

static inline struct slab_fmap *slab_slot_fmap(const struct slab_slot *s)
{
	uintptr_t p = (uintptr_t)s->chunks;

	return (p & 1u) ? (struct slab_fmap *)(p & ~(uintptr_t)1) : NULL;
}
/* The chunk table of the slot's chunked head (also while it turns into an
 * extents file), or NULL. */
static inline struct slab_chunks *slab_slot_chunks(const struct slab_slot *s)
{
	uintptr_t p = (uintptr_t)s->chunks;

	return (p & 1u) ? ((struct slab_fmap *)(p & ~(uintptr_t)1))->legacy
	                : (struct slab_chunks *)p;
}
static inline void slab_slot_set_fmap(struct slab_slot *s, struct slab_fmap *fm)
{
	s->chunks = fm ? (struct slab_chunks *)((uintptr_t)fm | 1u) : NULL;
}

/* The DRAM of a dropped epoch: its arena, slot directory and page buffer. */
struct slab_grave {
	struct slab_grave *next;
	struct slab_arena *arena;
	struct slab_slot **sdir;
	uint32_t sdir_n;
	uint8_t *pagebuf;
};

/* Live bytes an epoch has in one zone (valid while zone gen == zgen). */
struct slab_ezone {
	uint32_t zone, zgen;
	uint64_t live;
};

enum slab_epoch_state {
	EPOCH_FREE = 0,
	EPOCH_OPEN,
	EPOCH_CLOSING, /* drop in progress: puts fail, pages are discarded */
	EPOCH_DROPPED, /* drop record live until its zones are all reset */
};

/* DRAM page being filled for one epoch (or the journal). */
struct slab_dpage {
	uint8_t *buf; /* SLAB_PAGE_SIZE, zns_buf_alloc'd */
	uint32_t used;
	uint32_t jmark; /* records below this offset are already in the journal */
	uint16_t nrec;
	uint32_t def_uid, def_gid;
};

struct slab_epoch {
	pthread_mutex_t lock; /* protects everything below */
	uint8_t gen;
	uint8_t state;
	bool dirty;     /* on the store's dirty list (unjournaled records) */
	bool wrote;     /* a page was written since the last commit tick */
	bool sealed;    /* no alloc/put/free any more (epoch marker kind) */
	bool journaled; /* some of its records went to the journal ... */
	uint64_t jlast; /* ... last during journal cycle jlast */
	uint32_t eslot;
	struct slab_arena *arena;
	/* object slots: geometric chunk directory, see slot_ptr() */
	struct slab_slot **sdir;
	uint32_t sdir_n;               /* chunks allocated */
	uint32_t nslots;               /* slots [0, nslots) exist */
	uint32_t free_head, free_tail; /* FIFO of free slots, 0 = none */
	uint64_t objects;
	uint64_t cost; /* space.c: sum of its slots' costs */
	uint64_t pages;
	struct slab_dpage page;
	uint32_t cur_zone; /* zone receiving its pages, SLAB_LOC_NONE if none */
	/* Zone of its last page write (SLAB_LOC_NONE: none yet) and
	 * st->flush_started right after that write: a page goes to another
	 * zone only once a flush started later has completed (zone.c), so the
	 * epoch's pages reach the device in order across zones. */
	uint32_t wzone;
	uint64_t wflush;
	struct slab_ezone *ez;
	uint32_t ez_n, ez_cap;
	uint32_t next_efree; /* epoch free list link */
};

enum slab_zstate {
	ZS_FREE = 0, /* empty */
	ZS_OPEN,     /* accepting pages */
	ZS_FULL,     /* no more pages (finished, full, or torn tail) */
	ZS_META,     /* superblock / journal */
	ZS_GC,       /* being collected */
	ZS_BAD,      /* offline / unusable */
	ZS_RESET,    /* FULL, being reset on the device (its wlock held) */
};

struct slab_zone {
	pthread_mutex_t wlock; /* serialises page writes to this zone */
	_Atomic uint64_t live; /* live record bytes */
	uint64_t wp;           /* under zlock (and wlock while writing) */
	uint64_t filled_seq;   /* page seq of the first page since reset (age) */
	uint32_t gen;          /* bumped at every reset */
	uint16_t writers;      /* epochs whose cur_zone this is */
	uint8_t state;
	bool ro; /* READ_ONLY: readable, never written */
	/* Opened by the root epoch: holds root pages only. Root records (drop
	 * records, epoch directories) outlive data epochs; sharing a zone with
	 * one would pin that epoch's dead pages, and its drop record, until GC. */
	bool root;
	/* FULL to slab but still open on the device (an OPEN zone whose
	 * records all died, taken for reset without a finish): it keeps its
	 * place in st->active until the reset. */
	bool dev_open;
};

/* A dropped epoch whose drop record is still needed. Under the root lock. */
struct slab_drop {
	uint32_t epoch;
	uint64_t seq;
	struct slab_loc loc; /* the DROP record */
	uint16_t len;
	bool ready;            /* ez filled in: may be retired */
	bool jwait;            /* its epoch had journaled records ... */
	uint64_t jcycle;       /* ... so retire only once st->jcycle > this */
	struct slab_ezone *ez; /* zones that held its pages (zone, zgen) */
	uint32_t ez_n;
};

struct slab_store {
	struct zns_dev *dev;
	struct zns_geometry geo;
	struct slab_sb_info sb;
	bool ro; /* mounted read-only or went read-only */
	unsigned commit_ms;

	_Atomic uint64_t seq;      /* next record sequence number */
	_Atomic uint64_t page_seq; /* next page sequence number */

	/* epochs: table of SLAB_EPOCH_SLOTS pointers, entries never freed */
	struct slab_epoch **etab;
	pthread_mutex_t elock; /* epoch free list, neslots */
	uint32_t neslots;      /* slots [0, neslots) initialised */
	uint32_t efree_head, efree_tail;

	/* zones (zlock protects states, wp, writers, counts) */
	pthread_mutex_t zlock;
	struct slab_zone *zones;
	uint32_t nzones, first_data, nr_journal;
	uint32_t active, budget; /* data zones in ZS_OPEN; allowed */
	_Atomic uint32_t zones_free;
	uint32_t reserve;

	/* drops pending retirement (root epoch lock) */
	struct slab_drop *drops;
	uint32_t ndrops, drops_cap;

	/* dirty epochs: have records not yet on the device */
	pthread_mutex_t dlock;
	uint32_t *dirty;
	uint32_t ndirty, dirty_cap;

	/* group commit */
	pthread_mutex_t slock;
	pthread_cond_t scond;
	bool sync_running;
	uint64_t sync_begun, sync_done;
	int sync_err;
	/* gather (sync.c): callers waiting for the next sync, the size of the
	 * last batch, the leader is gathering, mean sync time (ns, EWMA) */
	uint32_t sync_next_n, sync_last_n;
	bool sync_gathering;
	uint64_t sync_avg_ns;

	/* journal: owned by the running sync (or mount/unmount) */
	uint32_t jzone;            /* current journal zone */
	uint64_t jwp[8];           /* write pointer of each journal zone */
	_Atomic uint64_t jcycle;   /* times every journal zone was reset */
	atomic_bool jcycle_wanted; /* the next sync cycles the journal */
	uint8_t *jbuf;
	size_t jbuf_cap;

	/* background thread: commit interval, idle zone release, GC */
	pthread_t bg;
	bool bg_started, bg_stop, gc_wanted, gc_gave_up;
	uint64_t gc_dead_mark; /* dead bytes when GC gave up (zlock) */
	pthread_mutex_t bglock;
	pthread_cond_t bgcond;    /* wakes the background thread */
	pthread_cond_t spacecond; /* throttled writers wait here */
	/* DRAM of dropped epochs waiting for the background thread to free it
	 * (bglock); a drop only unlinks it, so its cost does not grow with the
	 * number of objects the epoch held. */
	struct slab_grave *graves;
	/* Drops handed to the background thread, and how many of them it has
	 * finished (graves freed, then a sync that resets the dead zones). */
	uint64_t reclaim_asked, reclaim_done;
	pthread_mutex_t gclock; /* one GC pass at a time */

	/* read cache of data-zone blocks (slab_cache.h); NULL: disabled */
	struct slab_rcache *rcache;

	/* I/O fence: device calls hold iolock shared; slab_fence() takes it
	 * exclusively and sets fenced, after which every device call fails. */
	pthread_rwlock_t iolock;
	bool fenced;

	/* sum of every data zone's live bytes (slab_zone_live_add/sub) */
	_Atomic uint64_t live_total;
	/* space admission (space.c): costs of the live slots, and what callers
	 * reserved for changes not put yet */
	_Atomic uint64_t committed, reserved;

	/* Slab pages written since the last flush (slab_zone_write_page sets
	 * it, journal_write clears it): the journal must not reach the device
	 * before the pages its records follow, or a power cut can keep a
	 * journaled delete and lose the page holding what replaced the
	 * deleted record (tests/crash/regress.py "unlink-link"). */
	atomic_bool pages_unflushed;
	/* Device flushes: how many were started, and the highest number of one
	 * that completed (slab_dev_flush). A write that completed before flush
	 * number N started is durable once flush_done >= N. */
	_Atomic uint64_t flush_started, flush_done;

	/* counters */
	_Atomic uint64_t c_objects, c_pages, c_jwrites, c_resets, c_gc_runs, c_gc_moved;
	_Atomic uint64_t c_user, c_dev, c_slow, c_torn;
	/* empty zones opened for user writes (not GC): GC's progress measure */
	_Atomic uint64_t c_user_opens;

	/* Checkpoint referenced by the superblock (NULL: none). Its zones are
	 * ZS_META. Used by mount and unmount only. */
	struct slab_ckpt_ref *ck;
	bool ck_loaded;       /* this mount started from that checkpoint */
	int ck_error;         /* why it could not (0: none referenced or not asked) */
	uint64_t ck_replayed; /* bytes of zone tails the mount rolled forward */
	uint64_t ck_dev_mark; /* c_dev at the last checkpoint attempt (bg thread) */
	uint64_t ck_last;     /* highest checkpoint number referenced so far */

	/* damage (damage.c): dmglock protects the list and the flags; sblock
	 * serialises superblock copies (checkpoint writer, error mark). Lock
	 * order: dmglock -> sblock -> iolock. */
	pthread_mutex_t dmglock, sblock;
	struct slab_damage *dmg;
	size_t ndmg, dmg_cap;
	bool damaged;    /* damage known: no checkpoint is written from this view */
	bool check;      /* mounted by fsck (slab_mount_opts.check) */
	bool mounted_ro; /* the mount asked for read-only: nothing is written */
	/* TSLAB_CHECK_RESETS in the environment (tests): every zone reset is
	 * first checked against every record location (resetcheck.c) */
	bool check_resets;
};

/* resetcheck.c */
/* Debug check before resetting data zone Z (no lock held): true, with a
 * LOG_CRIT line, when a slot, chunk table, chunk map entry or drop entry
 * still names a record in Z, i.e. its live bytes were miscounted and the
 * reset would destroy a live record. The caller then leaves Z alone. */
bool slab_zone_still_named(struct slab_store *st, uint32_t z);

/* damage.c */
/* Zone Z's scan stopped at STOP below END: *damage tells whether that is
 * damage rather than the end of the log; *next is the next offset below END
 * where a valid page starts (END if none). FULL: END is the capacity, not
 * the data end (zeroes there are unwritten space). */
int slab_damage_classify(struct zns_dev *dev, uint32_t z, uint64_t stop, uint64_t end,
                         bool full, bool *damage, uint64_t *next);
/* Add D to the list and log it (device, zone, offset, epoch). */
int slab_damage_add(struct slab_store *st, const struct slab_damage *d);
/* Write a superblock copy carrying the error mark (if not yet set). */
int slab_error_mark_set(struct slab_store *st);
/* Highest object slot a valid record can name on this device: every slot
 * in use has a record of at least SLAB_REC_HDR bytes in a data zone. */
uint64_t slab_slot_bound(const struct slab_store *st);
/* ckpt.c: is B (SLAB_PAGE_HDR bytes at least) a valid checkpoint zone header? */
bool slab_ckpt_zone_hdr_ok(const uint8_t *b);

/* Zone live bytes change only through these, which keep st->live_total. */
static inline void slab_zone_live_add(struct slab_store *st, uint32_t z, uint64_t n)
{
	atomic_fetch_add(&st->zones[z].live, n);
	atomic_fetch_add(&st->live_total, n);
}

static inline void slab_zone_live_sub(struct slab_store *st, uint32_t z, uint64_t n)
{
	atomic_fetch_sub(&st->zones[z].live, n);
	atomic_fetch_sub(&st->live_total, n);
}

/* store.c */
struct slab_epoch *slab_epoch_lock(struct slab_store *st, uint32_t epoch);
/* Slot of a handed-out handle (ALLOC or LIVE) with its epoch locked, or NULL. */
struct slab_slot *slab_obj_lookup(struct slab_store *st, slab_handle_t h,
                                  struct slab_epoch **ep);
/* The same for a change: -EROFS (read-only store, sealed epoch), -ESTALE. */
int slab_obj_lookup_rw(struct slab_store *st, slab_handle_t h, struct slab_epoch **ep,
                       struct slab_slot **out);
struct slab_slot *slab_slot_get(struct slab_epoch *e, uint32_t slot);
int slab_slot_grow(struct slab_epoch *e, uint32_t nslots);
int slab_epoch_init_slot(struct slab_store *st, uint32_t eslot);
void slab_epoch_free_contents(struct slab_epoch *e);
void slab_grave_free(struct slab_grave *g);
void slab_dirty_add(struct slab_store *st, struct slab_epoch *e);
int slab_ezone_add(struct slab_epoch *e, uint32_t zone, uint32_t zgen, int64_t delta);
void slab_loc_kill(struct slab_store *st, struct slab_epoch *e, struct slab_loc loc,
                   uint32_t len);
int slab_store_alloc(struct zns_dev *dev, struct slab_store **out);
void slab_store_free(struct slab_store *st);

/* page.c: open pages and their writes (epoch lock held) */
int slab_page_init(struct slab_dpage *pg);
void slab_page_reset(struct slab_dpage *pg);
/* Room for LEN more bytes, writing the page out first when needed. */
int slab_page_reserve(struct slab_store *st, struct slab_epoch *e, uint32_t len, bool gc);
int slab_page_write(struct slab_store *st, struct slab_epoch *e, bool gc);
/* Append a raw record (with its source page defaults); sets *loc. */
int slab_page_append_raw(struct slab_store *st, struct slab_epoch *e, const uint8_t *rec,
                         uint32_t len, uint32_t suid, uint32_t sgid, bool gc,
                         struct slab_loc *loc, uint32_t *newlen);
int slab_page_append(struct slab_store *st, struct slab_epoch *e, struct slab_rec *r,
                     bool gc, struct slab_loc *loc);
/* Whether a version whose single record does not fit E's open page is
 * better put as a head plus a chunk of CHUNK_LEN bytes: the chunk alone in
 * a page written at once (it may go ahead, page.c), the head in the open
 * page, instead of closing the open page early. */
bool slab_page_spills(struct slab_epoch *e, uint32_t chunk_len);

/* zone.c */
/* Write a page of LEN bytes for epoch E to its zone (choosing one when
 * needed); returns where it landed. LIVE bytes of it are live records: they
 * count in the zone's live bytes from the moment its space is taken, before
 * the write can close the zone, so that no sync sees the zone FULL with
 * zero live bytes and resets it under the page. Epoch lock held. */
int slab_zone_write_page(struct slab_store *st, struct slab_epoch *e, const uint8_t *buf,
                         uint32_t len, uint64_t live, bool gc, uint32_t *zone,
                         uint32_t *zoff, uint32_t *zgen);
/* Epoch E stops writing to its current zone (epoch lock held). */
void slab_zone_detach(struct slab_store *st, struct slab_epoch *e);
void slab_zone_release(struct slab_store *st, struct slab_epoch *e);
/* Reset a data zone whose live bytes are 0 and that is not open (st->zlock
 * not held). Returns 0, -EBUSY when it became live/open meanwhile, or -errno. */
int slab_zone_reset(struct slab_store *st, uint32_t zone);
/* Device calls through the I/O fence. */
ssize_t slab_dev_write(struct slab_store *st, uint32_t z, uint64_t off, const void *buf,
                       size_t len);
ssize_t slab_dev_read(struct slab_store *st, uint32_t z, uint64_t off, void *buf,
                      size_t len);
int slab_dev_reset(struct slab_store *st, uint32_t z);
int slab_dev_finish(struct slab_store *st, uint32_t z);
int slab_dev_flush(struct slab_store *st);
int slab_dev_report(struct slab_store *st, uint32_t z, uint32_t n, struct zns_zone *out);
/* Wait for device calls in flight, then fail every later one with -EIO and
 * make the store read-only: nothing reaches the device after this returns.
 * Used when the store must stop writing, and by tests to model the instant
 * a process dies. */
void slab_fence(struct slab_store *st);
/* Read LEN bytes of the record at LOC into OUT. */
int slab_read_rec(struct slab_store *st, struct slab_loc loc, uint32_t len, uint8_t *out);
static inline bool slab_zone_is_journal(const struct slab_store *st, uint32_t zone)
{
	return zone >= SLAB_JOURNAL_FIRST && zone < st->first_data;
}

/* Sequential page scanner over one zone [0, end). */
struct slab_zscan {
	struct slab_store *st; /* reads through its fence when set */
	struct zns_dev *dev;
	uint32_t zone, lba;
	uint64_t end;     /* scan limit (write pointer) */
	uint64_t pos;     /* offset of the next page */
	uint8_t *buf;     /* SLAB_SCAN_BUF bytes */
	uint64_t buf_off; /* zone offset of buf[0] */
	uint64_t buf_len;
	bool torn; /* stopped on a bad page before end */
};
#define SLAB_SCAN_BUF (1024u * 1024u)
int slab_zscan_init(struct slab_zscan *zs, struct zns_dev *dev, uint32_t zone,
                    uint64_t end);
void slab_zscan_fini(struct slab_zscan *zs);
/* Next valid page: 1 with *page (in the scan buffer), *hdr, *off set; 0 at the
 * end (zs->torn tells if the end was a bad page); -errno on I/O error. */
int slab_zscan_next(struct slab_zscan *zs, const uint8_t **page,
                    struct slab_page_hdr *hdr, uint64_t *off);

/* sync.c */
int slab_sync_all(struct slab_store *st, bool flush_pages);
int slab_journal_cycle(struct slab_store *st, bool all_pages);
int slab_do_sync(struct slab_store *st, bool flush_pages);
void slab_drops_retire(struct slab_store *st);
int slab_bg_start(struct slab_store *st);
void slab_bg_stop(struct slab_store *st);
void slab_throttle(struct slab_store *st);
void slab_gc_kick(struct slab_store *st);

/* Location field (and length field, if any) that names record R of epoch E,
 * whether or not it currently points at R; NULL if none. */
struct slab_loc *slab_rec_owner(struct slab_store *st, struct slab_epoch *e,
                                const struct slab_rec *r, uint16_t **lenp);

/* ckpt.c: checkpoint images (see docs/format.md, "Checkpoint") */
#define SLAB_CKPT_INLINE SLAB_DATA_INLINE /* payloads kept in the image */
#define SLAB_CKPT_XHEAD  0xffu /* entry byte 3 of an extents head; aux = data base */
struct slab_ckpt_zone {
	uint64_t wp;         /* write pointer when the checkpoint was taken */
	uint64_t first_pseq; /* page sequence number of its page at offset 0 */
};
/* A loaded, verified image; entries are decoded on demand. */
struct slab_ckpt_img {
	uint8_t *buf;
	size_t len;
	uint64_t seq, page_seq, nent;
	uint32_t nzones, first_data, neslots;
	const uint8_t *zt;   /* zone table: 16 bytes per data zone */
	const uint8_t *egen; /* per epoch slot: 0 none, else highest generation + 1 */
	size_t ent_off;      /* first entry */
};
/* One entry: a live record (or a pending drop with its zones). */
struct slab_ckpt_ent {
	uint8_t rtype, kind, name_len, inl;
	uint16_t mode, len;
	uint32_t zone, off;
	uint64_t handle, seq,
	    aux;        /* aux: OBJ chunked total, CHUNK/FDATA index, DROP epoch */
	uint64_t xbase; /* OBJ extents head: data base (entry byte 3 = 0xff) */
	/* OBJ only */
	uint64_t parent, size, data_len;
	uint32_t uid, gid, nlink, rdev;
	int64_t atime_ns, mtime_ns, ctime_ns;
	const char *name;
	const uint8_t *data; /* inline payload (inl bytes) */
	/* DROP only: zones holding records of the dropped epoch */
	uint32_t nz;
	const uint8_t *zl; /* nz little-endian u32 */
};
void slab_ckpt_zone_get(const struct slab_ckpt_img *img, uint32_t z,
                        struct slab_ckpt_zone *out);
/* Read and verify the image REF names. 0, -EUCLEAN (bad or not matching the
 * device), -ENOMEM or -EIO. */
int slab_ckpt_load(struct slab_store *st, const struct slab_ckpt_ref *ref,
                   struct slab_ckpt_img *img);
void slab_ckpt_img_free(struct slab_ckpt_img *img);
/* Decode the entry at *POS (image offset) and advance: 1, 0 at the end, -EUCLEAN. */
int slab_ckpt_next(const struct slab_ckpt_img *img, size_t *pos, struct slab_ckpt_ent *e);
/* Page sequence number of the page at offset 0 of zone Z (0: none valid). */
int slab_ckpt_first_pseq(struct zns_dev *dev, uint32_t z, uint64_t *pseq);
/*
 * Write a checkpoint (fuzzy while RUNNING: zone write pointers are taken
 * first, then each epoch's open page is written and its slots copied under
 * its lock, root epoch lock held throughout; records are read back without
 * locks, zones reset meanwhile are described as unknown), reference it from
 * a new superblock copy, then reset the zones of the previous one. 0,
 * -ENOSPC (not enough empty zones), -EAGAIN (a drop in progress), -EBUSY
 * (no active zone free), -errno; nothing changes on failure.
 */
int slab_ckpt_write(struct slab_store *st, bool running);
/* Background thread: a checkpoint when due (device bytes written since the
 * last one >= max(SLAB_CKPT_EVERY zones, live bytes)). */
#define SLAB_CKPT_EVERY 8u
void slab_ckpt_tick(struct slab_store *st);
/* Whether GC keeps its room with NZ zones held by checkpoints (live data at
 * most 2/3 of the data zones beyond the reserve and NZ). */
bool slab_ckpt_room(struct slab_store *st, uint32_t nz);
/* Drop the superblock's reference and reset the checkpoint's zones. */
int slab_ckpt_release(struct slab_store *st);

/* space.c: admission (see there) */
uint64_t slab_rec_cost(uint32_t len);
uint64_t slab_slot_cost(const struct slab_slot *s);
uint32_t slab_cost32(uint64_t cost); /* saturated for slab_slot.cost */
/* What the FDATA record a chunk-map entry names costs (0: none). */
uint64_t slab_fent_cost(const struct slab_fent *fe);
/* Epoch lock held. */
void slab_cost_add(struct slab_store *st, struct slab_epoch *e, int64_t delta);
uint64_t slab_space_limit(const struct slab_store *st);
/* Recompute the costs after recovery (mount, single-threaded). */
void slab_space_recount(struct slab_store *st);

/* fdata.c: chunk maps (epoch lock held) */
struct slab_fmap *slab_fmap_new(struct slab_epoch *e);
/* Entry of IDX; CREATE allocates the path (entry then has zone NONE).
 * NULL: absent (or out of memory when CREATE). */
struct slab_fent *slab_fmap_get(struct slab_epoch *e, struct slab_fmap *fm, uint64_t idx,
                                bool create);
/* First used entry at index >= *IDX (data only when DATA), or NULL. */
struct slab_fent *slab_fmap_next(struct slab_fmap *fm, uint64_t *idx, bool data);
/* Kill every record the map names (and its legacy chunks), free its nodes
 * and the map itself. */
void slab_fmap_destroy(struct slab_store *st, struct slab_epoch *e, struct slab_fmap *fm);
/* Kill the legacy chunk table of FM and forget it. */
void slab_fmap_drop_legacy(struct slab_store *st, struct slab_epoch *e,
                           struct slab_fmap *fm);
/* Bytes [OFF, OFF+LEN) of extents object H of SIZE bytes (holes as zeros). */
ssize_t slab_fdata_read_range(struct slab_store *st, slab_handle_t h, uint64_t size,
                              uint64_t off, void *buf, size_t len);
/* Kill the records of a chunk table and free it. */
void slab_chunks_kill(struct slab_store *st, struct slab_epoch *e,
                      struct slab_chunks *ch);

/* gc.c */
int slab_gc_pass(struct slab_store *st);
/* Bytes in FULL data zones not holding live records. */
uint64_t slab_dead_bytes(struct slab_store *st);

#endif /* TSLAB_SLAB_INT_H */
