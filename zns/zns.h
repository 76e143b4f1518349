/* SPDX-License-Identifier: MIT */
/*
 * zns: the zoned device layer of tslabfs.
 *
 * One API over several backends, chosen at open time by what the path is:
 *   - native:  a host-managed zoned block device (libzbd + io_uring, O_DIRECT)
 *   - emulated: a regular file or a conventional block device carrying an
 *              emulation header, presented as zones with the same rules
 *
 * Rules every backend enforces (and a real device enforces too):
 *   - a write starts exactly at its zone's write pointer, is a multiple of
 *     the logical block size, and does not cross the zone capacity;
 *   - a write that would open a zone beyond max_open / max_active fails;
 *   - writes to FULL / READ_ONLY / OFFLINE zones fail, reads of OFFLINE fail;
 *   - space comes back only by resetting a whole zone.
 *
 * All offsets and lengths are in bytes. All functions return 0 (or a byte
 * count) on success and a negative errno on failure.
 *
 * Thread safety: every call may be made from any thread. Writes to one zone
 * are serialised by the layer (one in flight per zone); writes to different
 * zones proceed in parallel.
 */
#ifndef TSLAB_ZNS_H
#define TSLAB_ZNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct zns_dev;

enum zns_backend {
	ZNS_BACKEND_NATIVE = 1, /* host-managed zoned block device */
	ZNS_BACKEND_EMUL_FILE,  /* emulated zones in a regular file */
	ZNS_BACKEND_EMUL_BLKDEV /* emulated zones on a conventional block device */
};

/* Zone conditions, as reported by ZNS / ZBC. */
enum zns_cond {
	ZNS_COND_NOT_WP = 0, /* conventional zone (never used for data here) */
	ZNS_COND_EMPTY,
	ZNS_COND_IMP_OPEN,
	ZNS_COND_EXP_OPEN,
	ZNS_COND_CLOSED,
	ZNS_COND_FULL,
	ZNS_COND_READ_ONLY,
	ZNS_COND_OFFLINE,
};

struct zns_geometry {
	enum zns_backend backend;
	uint32_t lba_size;       /* logical block size: 512 or 4096 */
	uint32_t nr_zones;       /* sequential-write-required zones exposed */
	uint64_t zone_size;      /* bytes between zone starts */
	uint64_t zone_capacity;  /* writable bytes per zone, <= zone_size */
	uint32_t max_open;       /* 0 = no limit */
	uint32_t max_active;     /* 0 = no limit */
	uint64_t first_zone_off; /* byte offset of zone 0 on the backing store */
};

struct zns_zone {
	uint64_t start; /* byte offset of the zone (device address space) */
	uint64_t wp;    /* write pointer, byte offset relative to start */
	uint64_t capacity;
	enum zns_cond cond;
};

/* Parameters for creating an emulated device. */
struct zns_emul_params {
	uint32_t lba_size;      /* 512 or 4096; default 4096 */
	uint64_t zone_size;     /* default 64 MiB */
	uint64_t zone_capacity; /* default = zone_size */
	uint32_t nr_zones;      /* 0 = as many as fit in size */
	uint64_t size;          /* total bytes for an image file (ignored on blkdev) */
	uint32_t max_open;      /* default 14 */
	uint32_t max_active;    /* default 14 */
};

/* zns_open() flags. */
#define ZNS_OPEN_RDONLY 0x1u
/* Take an exclusive advisory lock (flock) on the backing file / device;
 * fails with -EBUSY when another process holds it. */
#define ZNS_OPEN_EXCL 0x2u

/*
 * Open PATH: a zoned block device (native backend), or a regular file /
 * conventional block device that carries a zone-emulation header (emulated
 * backend). A path that is neither fails with -EMEDIUMTYPE.
 */
int zns_open(const char *path, unsigned flags, struct zns_dev **out);
void zns_close(struct zns_dev *dev);

/*
 * Initialise zone emulation on PATH: a regular file (created or truncated
 * to p->size) or a conventional block device (size taken from the device).
 * All zones start EMPTY. Destroys whatever PATH held.
 */
int zns_emul_create(const char *path, const struct zns_emul_params *p);
/* Zones zns_emul_create() would lay out in SIZE bytes with P's geometry
 * (the emulation header and zone table come first), without touching
 * anything: 0 and *nr_zones, -ENOSPC when not even one zone fits, -EINVAL
 * for bad parameters. */
int zns_emul_layout(const struct zns_emul_params *p, uint64_t size, uint32_t *nr_zones);

/* What kind of target PATH is, without opening it as a device:
 * returns a ZNS_BACKEND_* value, or -errno (-ENOENT when missing). A regular
 * file or block device without an emulation header reports the emulated
 * backend it would get after zns_emul_create(). */
int zns_probe(const char *path);

const struct zns_geometry *zns_geometry(const struct zns_dev *dev);
const char *zns_backend_name(enum zns_backend b);
const char *zns_cond_name(enum zns_cond c);

/* Report zones [first, first + n): fills out[0..n). Returns the count. */
int zns_zone_report(struct zns_dev *dev, uint32_t first, uint32_t n,
                    struct zns_zone *out);

/* Zone management. */
int zns_zone_reset(struct zns_dev *dev, uint32_t zone);
int zns_zone_finish(struct zns_dev *dev, uint32_t zone);
int zns_zone_open(struct zns_dev *dev, uint32_t zone);
int zns_zone_close(struct zns_dev *dev, uint32_t zone);

/*
 * Write LEN bytes at byte offset OFF within ZONE. OFF must equal the zone's
 * write pointer; BUF must be aligned to the logical block size (use
 * zns_buf_alloc()). On success the write pointer advances by LEN and the
 * call returns LEN. On failure the layer re-reads the zone so that later
 * calls see the true write pointer, and returns -errno.
 */
ssize_t zns_zone_write(struct zns_dev *dev, uint32_t zone, uint64_t off, const void *buf,
                       size_t len);

/*
 * Read LEN bytes at byte offset OFF within ZONE. OFF and LEN must be
 * multiples of the logical block size; BUF aligned likewise. Reading beyond
 * the write pointer returns whatever the device returns (zeroes on a real
 * device after reset); callers never trust unwritten space.
 */
ssize_t zns_zone_read(struct zns_dev *dev, uint32_t zone, uint64_t off, void *buf,
                      size_t len);

/* Make every completed write durable (fdatasync / NVMe flush). */
int zns_flush(struct zns_dev *dev);

/* Aligned I/O buffers (aligned to 4096, suitable for O_DIRECT). */
void *zns_buf_alloc(size_t len);
void zns_buf_free(void *buf);

/* Counters since open. */
struct zns_stats {
	uint64_t writes, bytes_written;
	uint64_t reads, bytes_read;
	uint64_t resets, finishes, flushes;
	uint64_t write_errors;
};
void zns_stats_get(const struct zns_dev *dev, struct zns_stats *st);

/*
 * Fault injection (emulated backends only; -EOPNOTSUPP on native).
 * Counts start from the call that arms them: fail_write(dev, 1) makes the
 * very next write fail with -EIO.
 */
int zns_fault_fail_write(struct zns_dev *dev, uint64_t nth);
int zns_fault_fail_reset(struct zns_dev *dev, uint64_t nth);
/* Put a zone in READ_ONLY or OFFLINE condition (persisted). */
int zns_fault_set_cond(struct zns_dev *dev, uint32_t zone, enum zns_cond cond);
/*
 * Simulate a power cut: every write completed since the last zns_flush() is
 * lost, except that of each zone's unflushed bytes a prefix of KEEP_LBAS
 * logical blocks (or a random prefix when KEEP_LBAS < 0, from SEED) may
 * survive. Write pointers are rolled back to match, and the device then
 * behaves as freshly opened after the cut. Persisted, so zns_close() +
 * zns_open() show the same state.
 */
int zns_fault_power_cut(struct zns_dev *dev, long keep_lbas, unsigned seed);

/*
 * Write log (zns/wlog.c, format in docs/format.md "Write log"). From this
 * call on, every successful zone write (with its bytes), zone reset,
 * finish, open and close, and every flush of DEV is appended to the log
 * file PATH (created or truncated) in the order the device saw them: a
 * write, reset or finish is logged after it completed and while its zone
 * is still locked (so one zone's records are in device order); a flush is
 * logged before it is issued (it covers every write logged before it).
 * Works over any backend. Another process may append MARK records to the
 * same file (O_APPEND, one write() per record) to tell what it saw return.
 * The log is closed by zns_close().
 */
int zns_wlog_start(struct zns_dev *dev, const char *path);

enum zns_wlog_type {
	ZNS_WLOG_WRITE = 1, /* zone, off, payload = the bytes written */
	ZNS_WLOG_FLUSH = 2,
	ZNS_WLOG_RESET = 3, /* zone */
	ZNS_WLOG_FINISH = 4,
	ZNS_WLOG_OPEN = 5,
	ZNS_WLOG_CLOSE = 6,
	ZNS_WLOG_MARK = 7, /* payload = text written by the workload */
};

/* Log file header and record header sizes (bytes). */
#define ZNS_WLOG_HDR 32u
#define ZNS_WLOG_REC 24u

/* A log opened for reading: records indexed in file order (0-based). */
struct zns_wlog_reader;

struct zns_wlog_rec {
	enum zns_wlog_type type;
	uint32_t zone;
	uint64_t off;
	uint32_t len;        /* payload bytes */
	const void *payload; /* valid until zns_wlog_reader_close() */
};

/* Open PATH; a truncated last record (the writer was killed) is ignored.
 * -EUCLEAN on a bad header or record. */
int zns_wlog_reader_open(const char *path, struct zns_wlog_reader **out);
void zns_wlog_reader_close(struct zns_wlog_reader *r);
size_t zns_wlog_count(const struct zns_wlog_reader *r);
uint32_t zns_wlog_lba_size(const struct zns_wlog_reader *r);
int zns_wlog_get(const struct zns_wlog_reader *r, size_t i, struct zns_wlog_rec *out);
/*
 * Replay record I on DEV: a write (only its first BLOCKS logical blocks
 * when BLOCKS > 0: a torn write), a reset or a finish. Flushes, opens,
 * closes and marks change nothing a power cut keeps and are skipped.
 */
int zns_wlog_apply(struct zns_dev *dev, struct zns_wlog_reader *r, size_t i,
                   uint32_t blocks);

#ifdef __cplusplus
}
#endif

#endif /* TSLAB_ZNS_H */
