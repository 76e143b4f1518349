// SPDX-License-Identifier: MIT
/*
 * Emulated zones on a regular file or a conventional block device.
 *
 * ON-DISK LAYOUT (emulation format version 1, all integers little-endian)
 *
 *   [0, 4096)            header region: the 128-byte header below, then zeroes
 *   [4096, 4096+T)       zone-state table, T = round_up(nr_zones * 8, 4096)
 *   [first_zone_off, ..) zone data: zone z occupies
 *                        [first_zone_off + z * zone_size, + zone_size);
 *                        first_zone_off = round_up(4096 + T, 1 MiB)
 *
 * Header (128 bytes at offset 0):
 *     0  u8[8]  magic "TSLABZNS"
 *     8  le32   format version (1)
 *    12  le32   header bytes (128)
 *    16  le32   lba_size (512 or 4096)
 *    20  le32   nr_zones
 *    24  le64   zone_size      (bytes, multiple of lba_size)
 *    32  le64   zone_capacity  (bytes, multiple of lba_size, <= zone_size)
 *    40  le32   max_open       (0 = no limit)
 *    44  le32   max_active     (0 = no limit)
 *    48  le64   table_off      (4096)
 *    56  le64   table_len      (T)
 *    64  le64   first_zone_off
 *    72  le64   total bytes the layout occupies (first_zone_off + nr*zone_size)
 *    80  u8[40] reserved, zero
 *   120  le64   XXH3-64 of bytes [0, 120)
 *
 * Zone-state entry (8 bytes, entry z at table_off + 8 * z), one le64:
 *   bits  0..39  write pointer in logical blocks, relative to the zone start;
 *                for a FULL zone (reported wp = capacity): the data end,
 *                i.e. where the written data stops (< capacity after finish)
 *   bits 40..47  condition, enum zns_cond value (EMPTY=1 ... OFFLINE=7)
 *   bits 48..63  check: low 16 bits of XXH3-64 (seed = z) over the le64 of
 *                bits 0..47
 * An entry is one aligned 8-byte store, so it is never torn, neither by a
 * process kill nor inside a sector. A mismatching check makes open fail
 * with -EUCLEAN.
 *
 * PERSISTENCE. The table is mapped MAP_SHARED. A write's data I/O completes
 * before its entry is updated, so a process killed mid-write leaves the
 * zone's wp before that write (page cache survives a process crash; the
 * wp is where a device would have it). zns_flush() = fdatasync, which also
 * writes back the mapped table's dirty pages (one device flush).
 * Zone management (reset/finish/open/close) is persisted on completion.
 *
 * UNWRITTEN SPACE reads as zeroes, as on a device: the emulator returns
 * zeroes for any part of a read at or beyond the zone's data end (the wp,
 * or for a FULL zone the end of what was written before a finish). Reset
 * therefore leaves the old bytes in the backing store: the blocks stay
 * allocated, so rewriting a reset zone overwrites in place (no block
 * allocation in the filesystem under an image file).
 *
 * RULES enforced, with the errno Linux returns for a real zoned device:
 *   write not at wp, past capacity, to FULL / READ_ONLY / OFFLINE zone  -EIO
 *   read of OFFLINE zone                                                 -EIO
 *   opening (implicitly by a write or explicitly) a zone beyond max_active
 *       -EOVERFLOW (BLK_STS_ZONE_ACTIVE_RESOURCE, NVMe Too Many Active Zones)
 *   beyond max_open when no implicitly open zone can be closed
 *       -ETOOMANYREFS (BLK_STS_ZONE_OPEN_RESOURCE, NVMe Too Many Open Zones)
 *   When max_open is reached and an implicitly open zone exists, the one
 *   opened longest ago is closed first (ZNS zone resource management, as
 *   QEMU and null_blk do). Close of an EMPTY or FULL zone, open/finish/
 *   reset of READ_ONLY or OFFLINE, open of FULL: -EIO.
 *   Close of an open zone gives CLOSED even at wp 0 (NVMe ZNS and QEMU;
 *   unlike ZBC / null_blk, which return it to EMPTY): it stays active.
 *   Active = IMP_OPEN + EXP_OPEN + CLOSED. A FULL zone reports wp = capacity.
 *
 * FAULT INJECTION. fail_write/fail_reset: the Nth call fails with -EIO and
 * changes nothing (no byte written, wp unchanged). set_cond: persisted.
 * power_cut: per zone, bytes written since the last zns_flush() beyond a
 * kept prefix are overwritten with zeroes and the wp rolls back to the end
 * of the prefix; open zones become CLOSED like a device after power-on,
 * except that a zone rolled back to wp 0 is EMPTY (nothing of it survived);
 * zone management already completed stays done.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/tslab_le.h"
#include "zns/zns_int.h"

#define EMUL_MAGIC         "TSLABZNS"
#define EMUL_VERSION       1u
#define EMUL_HDR_REGION    4096u
#define EMUL_HDR_BYTES     128u
#define EMUL_HDR_CSUM_OFF  120u
#define EMUL_TABLE_OFF     4096u
#define EMUL_ENTRY_BYTES   8u
#define EMUL_DATA_ALIGN    (1u << 20)
#define EMUL_WP_BITS       40
#define EMUL_DEF_ZONE_SIZE (64ull << 20)
#define EMUL_DEF_MAX_OPEN  14u

/* On-disk header (little-endian; the layout comment above). hdr_encode()
 * and hdr_decode() access the bytes at these offsets. */
struct emul_hdr_disk {
	uint8_t magic[8];        /*   0 EMUL_MAGIC */
	uint32_t version;        /*   8 EMUL_VERSION */
	uint32_t hdr_bytes;      /*  12 EMUL_HDR_BYTES */
	uint32_t lba_size;       /*  16 */
	uint32_t nr_zones;       /*  20 */
	uint64_t zone_size;      /*  24 */
	uint64_t zone_capacity;  /*  32 */
	uint32_t max_open;       /*  40 */
	uint32_t max_active;     /*  44 */
	uint64_t table_off;      /*  48 */
	uint64_t table_len;      /*  56 */
	uint64_t first_zone_off; /*  64 */
	uint64_t total;          /*  72 */
	uint8_t reserved[40];    /*  80 zero */
	uint64_t csum;           /* 120 XXH3-64 of bytes [0, 120) */
};
#define EH(f) offsetof(struct emul_hdr_disk, f)
_Static_assert(sizeof(struct emul_hdr_disk) == EMUL_HDR_BYTES, "emulation header");
_Static_assert(EH(version) == 8 && EH(hdr_bytes) == 12 && EH(lba_size) == 16 &&
                   EH(nr_zones) == 20 && EH(zone_size) == 24 && EH(zone_capacity) == 32,
               "emulation header geometry");
_Static_assert(EH(max_open) == 40 && EH(max_active) == 44 && EH(table_off) == 48 &&
                   EH(table_len) == 56 && EH(first_zone_off) == 64 && EH(total) == 72,
               "emulation header layout fields");
_Static_assert(EH(reserved) == 80 && EH(csum) == EMUL_HDR_CSUM_OFF,
               "emulation header tail");
_Static_assert(EMUL_HDR_CSUM_OFF + 8 == EMUL_HDR_BYTES,
               "header checksum is its last field");
_Static_assert(EMUL_HDR_BYTES <= EMUL_HDR_REGION, "header fits its region");
_Static_assert(EMUL_TABLE_OFF % 4096 == 0, "table is page aligned");
_Static_assert(sizeof(uint64_t) == EMUL_ENTRY_BYTES, "zone entry is one le64");

/* Decoded header. */
struct emul_hdr {
	uint32_t version, lba_size, nr_zones, max_open, max_active;
	uint64_t zone_size, zone_capacity, table_off, table_len, first_zone_off, total;
};

/* In-memory zone state; all fields protected by emul.lock. */
struct emul_zone {
	uint64_t wp;       /* bytes; == capacity when FULL */
	uint64_t data_end; /* end of bytes actually written (<= wp after finish) */
	uint64_t flushed;  /* data_end at the last zns_flush() */
	uint64_t open_seq; /* when it was last opened (implicit-close order) */
	uint64_t gen;      /* bumped by every reset */
	enum zns_cond cond;
	bool busy; /* a write is in flight (zone lock held) */
};

struct emul {
	/* Lock order: dev->zone_lock[z] -> lock. Protects zones[], counters,
	 * fault counters and the mapped table. */
	pthread_mutex_t lock;
	struct emul_zone *zones;
	uint64_t *snap, *snap_gen; /* flush snapshot (data_end, gen), flush_lock */
	pthread_mutex_t flush_lock;
	uint32_t nr_open, nr_active;
	uint64_t seq;
	uint64_t fail_write_in, fail_reset_in; /* 0 = disarmed */
	uint8_t *map; /* [0, table_off + table_len) of the backing store */
	size_t map_len;
	struct emul_hdr h;
	bool is_blk;
};

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* ---- header ------------------------------------------------------------ */

static void hdr_encode(const struct emul_hdr *h, uint8_t *b)
{
	memset(b, 0, EMUL_HDR_REGION);
	memcpy(b + EH(magic), EMUL_MAGIC, 8);
	tslab_put32(b + EH(version), h->version);
	tslab_put32(b + EH(hdr_bytes), EMUL_HDR_BYTES);
	tslab_put32(b + EH(lba_size), h->lba_size);
	tslab_put32(b + EH(nr_zones), h->nr_zones);
	tslab_put64(b + EH(zone_size), h->zone_size);
	tslab_put64(b + EH(zone_capacity), h->zone_capacity);
	tslab_put32(b + EH(max_open), h->max_open);
	tslab_put32(b + EH(max_active), h->max_active);
	tslab_put64(b + EH(table_off), h->table_off);
	tslab_put64(b + EH(table_len), h->table_len);
	tslab_put64(b + EH(first_zone_off), h->first_zone_off);
	tslab_put64(b + EH(total), h->total);
	tslab_put64(b + EH(csum), XXH3_64bits(b, EH(csum)));
}

/* B holds the first LEN bytes of the header region (EMUL_HDR_BYTES <= LEN <=
 * EMUL_HDR_REGION). -EMEDIUMTYPE without the magic; -EUCLEAN when the magic
 * is there but the header is damaged or inconsistent, or a reserved byte is
 * not zero. */
static int hdr_decode(const uint8_t *b, size_t len, struct emul_hdr *h)
{
	if (memcmp(b + EH(magic), EMUL_MAGIC, 8) != 0)
		return -EMEDIUMTYPE;
	if (tslab_get64(b + EH(csum)) != XXH3_64bits(b, EH(csum)))
		return -EUCLEAN;
	h->version = tslab_get32(b + EH(version));
	if (h->version != EMUL_VERSION ||
	    tslab_get32(b + EH(hdr_bytes)) != EMUL_HDR_BYTES)
		return -EUCLEAN;
	h->lba_size = tslab_get32(b + EH(lba_size));
	h->nr_zones = tslab_get32(b + EH(nr_zones));
	h->zone_size = tslab_get64(b + EH(zone_size));
	h->zone_capacity = tslab_get64(b + EH(zone_capacity));
	h->max_open = tslab_get32(b + EH(max_open));
	h->max_active = tslab_get32(b + EH(max_active));
	h->table_off = tslab_get64(b + EH(table_off));
	h->table_len = tslab_get64(b + EH(table_len));
	h->first_zone_off = tslab_get64(b + EH(first_zone_off));
	h->total = tslab_get64(b + EH(total));
	if ((h->lba_size != 512 && h->lba_size != 4096) || h->nr_zones == 0 ||
	    h->zone_size == 0 || h->zone_size % h->lba_size || h->zone_capacity == 0 ||
	    h->zone_capacity > h->zone_size || h->zone_capacity % h->lba_size ||
	    h->zone_capacity / h->lba_size >= (1ull << EMUL_WP_BITS) ||
	    h->table_off != EMUL_TABLE_OFF ||
	    h->table_len != round_up((uint64_t)h->nr_zones * EMUL_ENTRY_BYTES, 4096) ||
	    h->first_zone_off != round_up(h->table_off + h->table_len, EMUL_DATA_ALIGN) ||
	    h->total != h->first_zone_off + (uint64_t)h->nr_zones * h->zone_size ||
	    (h->max_active && h->max_open > h->max_active))
		return -EUCLEAN;
	for (size_t i = EH(reserved); i < EH(csum); i++)
		if (b[i]) /* reserved, zero */
			return -EUCLEAN;
	for (size_t i = EMUL_HDR_BYTES; i < len; i++)
		if (b[i]) /* the rest of the header region is zero */
			return -EUCLEAN;
	return 0;
}

/* ---- zone table entries -------------------------------------------------- */

static uint64_t entry_encode(uint32_t z, uint64_t wp_lbas, enum zns_cond cond)
{
	uint64_t v = (wp_lbas & ((1ull << EMUL_WP_BITS) - 1)) |
	             ((uint64_t)(cond & 0xff) << EMUL_WP_BITS);
	uint8_t le[8];

	tslab_put64(le, v);
	return v | ((XXH3_64bits_withSeed(le, 8, z) & 0xffff) << 48);
}

static int entry_decode(uint32_t z, uint64_t v, uint64_t *wp_lbas, enum zns_cond *cond)
{
	uint64_t low = v & ((1ull << 48) - 1);

	if (entry_encode(z, low & ((1ull << EMUL_WP_BITS) - 1),
	                 (enum zns_cond)(low >> EMUL_WP_BITS)) != v)
		return -EUCLEAN;
	*wp_lbas = low & ((1ull << EMUL_WP_BITS) - 1);
	*cond = (enum zns_cond)(low >> EMUL_WP_BITS);
	if (*cond < ZNS_COND_EMPTY || *cond > ZNS_COND_OFFLINE)
		return -EUCLEAN;
	return 0;
}

static uint64_t *entry_ptr(struct emul *e, uint32_t z)
{
	return (uint64_t *)(e->map + e->h.table_off + (uint64_t)z * EMUL_ENTRY_BYTES);
}

/* Called with e->lock held. One atomic aligned store: never torn. */
static void zone_persist(struct emul *e, uint32_t z)
{
	const struct emul_zone *ez = &e->zones[z];
	uint64_t pos = ez->cond == ZNS_COND_FULL ? ez->data_end : ez->wp;
	uint64_t v = entry_encode(z, pos / e->h.lba_size, ez->cond);
	uint8_t le[8];

	tslab_put64(le, v);
	memcpy(&v, le, 8);
	__atomic_store_n(entry_ptr(e, z), v, __ATOMIC_RELEASE);
}

/* ---- zone state machine (all called with e->lock held) ------------------ */

static bool cond_is_open(enum zns_cond c)
{
	return c == ZNS_COND_IMP_OPEN || c == ZNS_COND_EXP_OPEN;
}

static bool cond_is_active(enum zns_cond c)
{
	return cond_is_open(c) || c == ZNS_COND_CLOSED;
}

/* The only place a condition changes: keeps nr_open / nr_active exact and
 * persists the entry. */
static void zone_set(struct emul *e, uint32_t z, enum zns_cond c, uint64_t wp)
{
	struct emul_zone *ez = &e->zones[z];

	e->nr_open -= cond_is_open(ez->cond);
	e->nr_active -= cond_is_active(ez->cond);
	e->nr_open += cond_is_open(c);
	e->nr_active += cond_is_active(c);
	if (cond_is_open(c) && !cond_is_open(ez->cond))
		ez->open_seq = ++e->seq;
	ez->cond = c;
	ez->wp = wp;
	zone_persist(e, z);
}

/* Frees an open resource by closing the implicitly open zone opened longest
 * ago that has no write in flight. */
static int close_implicit_victim(struct emul *e, uint32_t except)
{
	uint32_t victim = UINT32_MAX;

	for (uint32_t z = 0; z < e->h.nr_zones; z++) {
		const struct emul_zone *ez = &e->zones[z];

		if (z == except || ez->cond != ZNS_COND_IMP_OPEN || ez->busy)
			continue;
		if (victim == UINT32_MAX || ez->open_seq < e->zones[victim].open_seq)
			victim = z;
	}
	if (victim == UINT32_MAX)
		return -ETOOMANYREFS;
	zone_set(e, victim, ZNS_COND_CLOSED, e->zones[victim].wp);
	return 0;
}

/* Opens zone z implicitly (a write) or explicitly (zns_zone_open). */
static int zone_make_open(struct emul *e, uint32_t z, bool explicit)
{
	struct emul_zone *ez = &e->zones[z];
	enum zns_cond target = explicit ? ZNS_COND_EXP_OPEN : ZNS_COND_IMP_OPEN;
	int ret;

	switch (ez->cond) {
	case ZNS_COND_EMPTY:
		if (e->h.max_active && e->nr_active >= e->h.max_active)
			return -EOVERFLOW;
		/* fallthrough */
	case ZNS_COND_CLOSED:
		if (e->h.max_open && e->nr_open >= e->h.max_open) {
			ret = close_implicit_victim(e, z);
			if (ret < 0)
				return ret;
		}
		zone_set(e, z, target, ez->wp);
		return 0;
	case ZNS_COND_IMP_OPEN:
		if (explicit)
			zone_set(e, z, target, ez->wp);
		return 0;
	case ZNS_COND_EXP_OPEN:
		return 0;
	default: /* FULL, READ_ONLY, OFFLINE */
		return -EIO;
	}
}

/* ---- backend ops --------------------------------------------------------- */

static uint64_t zone_pos(const struct emul *e, uint32_t z, uint64_t off)
{
	return e->h.first_zone_off + (uint64_t)z * e->h.zone_size + off;
}

static int emul_report(struct zns_dev *dev, uint32_t first, uint32_t n,
                       struct zns_zone *out)
{
	struct emul *e = dev->priv;

	pthread_mutex_lock(&e->lock);
	for (uint32_t i = 0; i < n; i++) {
		const struct emul_zone *ez = &e->zones[first + i];

		out[i].start = zone_pos(e, first + i, 0);
		out[i].wp = ez->wp;
		out[i].capacity = e->h.zone_capacity;
		out[i].cond = ez->cond;
	}
	pthread_mutex_unlock(&e->lock);
	return (int)n;
}

/* Checks and opens the zone for a write of LEN at OFF; marks it busy. */
static int write_begin(struct emul *e, uint32_t z, uint64_t off, size_t len)
{
	struct emul_zone *ez = &e->zones[z];
	int ret;

	if (e->fail_write_in && --e->fail_write_in == 0)
		return -EIO;
	if (ez->cond == ZNS_COND_FULL || ez->cond == ZNS_COND_READ_ONLY ||
	    ez->cond == ZNS_COND_OFFLINE)
		return -EIO;
	if (off != ez->wp || len > e->h.zone_capacity - off)
		return -EIO;
	ret = zone_make_open(e, z, false);
	if (ret < 0)
		return ret;
	ez->busy = true;
	return 0;
}

static ssize_t emul_write(struct zns_dev *dev, uint32_t z, uint64_t off, const void *buf,
                          size_t len)
{
	struct emul *e = dev->priv;
	struct emul_zone *ez = &e->zones[z];
	ssize_t ret;

	pthread_mutex_lock(&e->lock);
	ret = write_begin(e, z, off, len);
	pthread_mutex_unlock(&e->lock);
	if (ret < 0)
		return ret;

	ret = zns_io_pwrite(dev, buf, len, zone_pos(e, z, off));

	/* The wp moves only after the data I/O completed. */
	pthread_mutex_lock(&e->lock);
	ez->busy = false;
	if (ret >= 0) {
		uint64_t wp = off + len;
		enum zns_cond c = ez->cond;

		if (wp == e->h.zone_capacity)
			c = ZNS_COND_FULL;
		ez->data_end = wp;
		zone_set(e, z, c, wp);
	}
	pthread_mutex_unlock(&e->lock);
	return ret;
}

static ssize_t emul_read(struct zns_dev *dev, uint32_t z, uint64_t off, void *buf,
                         size_t len)
{
	struct emul *e = dev->priv;
	uint64_t end, n;
	enum zns_cond c;
	ssize_t ret;

	pthread_mutex_lock(&e->lock);
	c = e->zones[z].cond;
	end = e->zones[z].data_end;
	pthread_mutex_unlock(&e->lock);
	if (c == ZNS_COND_OFFLINE)
		return -EIO;
	/* Below the data end from the backing store, zeroes beyond it. */
	n = off >= end ? 0 : (end - off < len ? end - off : len);
	if (n) {
		ret = zns_io_pread(dev, buf, (size_t)n, zone_pos(e, z, off));
		if (ret < 0)
			return ret;
	}
	memset((char *)buf + n, 0, len - (size_t)n);
	return (ssize_t)len;
}

/* Makes [pos, pos + len) of the backing store read as zeroes: punch a hole
 * where supported. Returns -EOPNOTSUPP when it is not. */
static int punch(struct zns_dev *dev, uint64_t pos, uint64_t len)
{
	if (fallocate(dev->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)pos,
	              (off_t)len) < 0)
		return -errno;
	return 0;
}

/* Overwrites [pos, pos + len) with zeroes (punch, else write zeroes). */
static int zero_range(struct zns_dev *dev, uint64_t pos, uint64_t len)
{
	const size_t chunk = 1u << 20;
	void *zero;
	int ret = 0;

	if (len == 0 || punch(dev, pos, len) == 0)
		return 0;
	zero = zns_buf_alloc(chunk);
	if (!zero)
		return -ENOMEM;
	memset(zero, 0, chunk);
	while (len && ret == 0) {
		size_t n = len < chunk ? (size_t)len : chunk;
		ssize_t w = zns_io_pwrite(dev, zero, n, pos);

		ret = w < 0 ? (int)w : 0;
		pos += n;
		len -= n;
	}
	zns_buf_free(zero);
	return ret;
}

static int mgmt_locked(struct emul *e, uint32_t z, enum zns_mgmt_op op)
{
	struct emul_zone *ez = &e->zones[z];

	if (ez->cond == ZNS_COND_READ_ONLY || ez->cond == ZNS_COND_OFFLINE)
		return -EIO;
	switch (op) {
	case ZNS_MGMT_RESET:
		if (e->fail_reset_in && --e->fail_reset_in == 0)
			return -EIO;
		zone_set(e, z, ZNS_COND_EMPTY, 0);
		ez->data_end = ez->flushed = 0;
		ez->gen++;
		return 0;
	case ZNS_MGMT_FINISH:
		if (ez->cond != ZNS_COND_FULL)
			zone_set(e, z, ZNS_COND_FULL, e->h.zone_capacity);
		return 0;
	case ZNS_MGMT_OPEN:
		return zone_make_open(e, z, true);
	case ZNS_MGMT_CLOSE:
		if (cond_is_open(ez->cond))
			zone_set(e, z, ZNS_COND_CLOSED, ez->wp);
		else if (ez->cond != ZNS_COND_CLOSED)
			return -EIO;
		return 0;
	}
	return -EINVAL;
}

static int emul_mgmt(struct zns_dev *dev, uint32_t z, enum zns_mgmt_op op)
{
	struct emul *e = dev->priv;
	int ret;

	pthread_mutex_lock(&e->lock);
	ret = mgmt_locked(e, z, op);
	pthread_mutex_unlock(&e->lock);
	return ret;
}

static int emul_flush(struct zns_dev *dev)
{
	struct emul *e = dev->priv;
	int ret = 0;

	pthread_mutex_lock(&e->flush_lock);
	/* Only writes completed before the flush started are made durable. */
	pthread_mutex_lock(&e->lock);
	for (uint32_t z = 0; z < e->h.nr_zones; z++) {
		e->snap[z] = e->zones[z].data_end;
		e->snap_gen[z] = e->zones[z].gen;
	}
	pthread_mutex_unlock(&e->lock);

	/* One device flush: fdatasync also writes back the table's pages
	 * dirtied through the MAP_SHARED mapping of the same file (on Linux
	 * msync(MS_SYNC) is that very call, vfs_fsync_range); msync before it
	 * cost a second flush per zns_flush(). */
	if (fdatasync(dev->fd) < 0)
		ret = -errno;

	if (ret == 0) {
		pthread_mutex_lock(&e->lock);
		for (uint32_t z = 0; z < e->h.nr_zones; z++) {
			struct emul_zone *ez = &e->zones[z];

			/* A zone reset since the snapshot keeps flushed = 0. */
			if (e->snap_gen[z] == ez->gen && e->snap[z] > ez->flushed)
				ez->flushed = e->snap[z];
		}
		pthread_mutex_unlock(&e->lock);
	}
	pthread_mutex_unlock(&e->flush_lock);
	return ret;
}

static void emul_free(struct emul *e)
{
	if (!e)
		return;
	if (e->map)
		munmap(e->map, e->map_len);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->flush_lock);
	free(e->zones);
	free(e->snap);
	free(e->snap_gen);
	free(e);
}

static void emul_close(struct zns_dev *dev)
{
	struct emul *e = dev->priv;

	if (e && e->map && !(dev->flags & ZNS_OPEN_RDONLY))
		msync(e->map, e->map_len, MS_SYNC);
	emul_free(e);
	dev->priv = NULL;
}

/* ---- fault injection ------------------------------------------------------ */

static int emul_fail_write(struct zns_dev *dev, uint64_t nth)
{
	struct emul *e = dev->priv;

	pthread_mutex_lock(&e->lock);
	e->fail_write_in = nth;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

static int emul_fail_reset(struct zns_dev *dev, uint64_t nth)
{
	struct emul *e = dev->priv;

	pthread_mutex_lock(&e->lock);
	e->fail_reset_in = nth;
	pthread_mutex_unlock(&e->lock);
	return 0;
}

static int emul_set_cond(struct zns_dev *dev, uint32_t z, enum zns_cond cond)
{
	struct emul *e = dev->priv;

	pthread_mutex_lock(&e->lock);
	zone_set(e, z, cond, e->zones[z].wp);
	pthread_mutex_unlock(&e->lock);
	return 0;
}

/* Rolls zone z back to its flushed data plus a kept prefix; e->lock held. */
static int cut_zone(struct zns_dev *dev, struct emul *e, uint32_t z, long keep_lbas,
                    unsigned *rs)
{
	struct emul_zone *ez = &e->zones[z];
	uint64_t lba = e->h.lba_size, end = ez->data_end;
	enum zns_cond c = ez->cond;
	uint64_t wp = ez->wp;
	int ret = 0;

	if (end > ez->flushed) {
		uint64_t lost = (end - ez->flushed) / lba;
		uint64_t keep =
		    keep_lbas < 0
		        ? (uint64_t)rand_r(rs) % (lost + 1)
		        : ((uint64_t)keep_lbas < lost ? (uint64_t)keep_lbas : lost);

		end = ez->flushed + keep * lba;
		ret = zero_range(dev, zone_pos(e, z, end), ez->data_end - end);
		ez->data_end = end;
		if (c != ZNS_COND_FULL && c != ZNS_COND_READ_ONLY &&
		    c != ZNS_COND_OFFLINE)
			wp = end;
	}
	ez->flushed = ez->data_end;
	/* After power-on no zone is open. */
	if (cond_is_active(c))
		c = wp ? ZNS_COND_CLOSED : ZNS_COND_EMPTY;
	zone_set(e, z, c, wp);
	return ret;
}

/* Takes every zone lock in ascending order (the one place more than one
 * zone lock is held), so no write is in flight during the cut. */
static int emul_power_cut(struct zns_dev *dev, long keep_lbas, unsigned seed)
{
	struct emul *e = dev->priv;
	unsigned rs = seed;
	int ret = 0;

	for (uint32_t z = 0; z < e->h.nr_zones; z++)
		pthread_mutex_lock(&dev->zone_lock[z]);
	pthread_mutex_lock(&e->lock);
	for (uint32_t z = 0; z < e->h.nr_zones; z++) {
		int r = cut_zone(dev, e, z, keep_lbas, &rs);

		if (r < 0 && ret == 0)
			ret = r;
	}
	e->fail_write_in = e->fail_reset_in = 0;
	if (msync(e->map, e->map_len, MS_SYNC) < 0 || fdatasync(dev->fd) < 0)
		ret = ret ? ret : -errno;
	pthread_mutex_unlock(&e->lock);
	for (uint32_t z = e->h.nr_zones; z-- > 0;)
		pthread_mutex_unlock(&dev->zone_lock[z]);
	return ret;
}

static const struct zns_ops emul_ops = {
    .name = "emulated",
    .report = emul_report,
    .mgmt = emul_mgmt,
    .write = emul_write,
    .read = emul_read,
    .flush = emul_flush,
    .close = emul_close,
    .fault_fail_write = emul_fail_write,
    .fault_fail_reset = emul_fail_reset,
    .fault_set_cond = emul_set_cond,
    .fault_power_cut = emul_power_cut,
};

/* ---- open ------------------------------------------------------------------ */

static int backing_size(int fd, bool is_blk, uint64_t *size)
{
	struct stat st;

	if (is_blk)
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

/* Replaces dev->fd by a buffered descriptor, saying why on stderr. */
static int reopen_buffered(struct zns_dev *dev, const char *why)
{
	int fd = open(dev->path,
	              ((dev->flags & ZNS_OPEN_RDONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	fprintf(stderr, "zns: %s: O_DIRECT unusable (%s); using buffered I/O\n",
	        dev->path, why);
	if (dev->fd >= 0)
		close(dev->fd);
	dev->fd = fd;
	dev->direct = false;
	return 0;
}

/* Opens dev->fd (O_DIRECT when the backing store accepts it) and reads and
 * checks the header into e->h. */
static int open_backing(struct zns_dev *dev, struct emul *e)
{
	int mode = ((dev->flags & ZNS_OPEN_RDONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	uint8_t *buf = zns_buf_alloc(EMUL_HDR_REGION);
	uint64_t size;
	ssize_t r;
	int ret;

	if (!buf)
		return -ENOMEM;
	dev->fd = open(dev->path, mode | O_DIRECT);
	dev->direct = dev->fd >= 0;
	if (dev->fd < 0 && errno == EINVAL)
		ret = reopen_buffered(dev, "the filesystem refuses O_DIRECT opens");
	else
		ret = dev->fd < 0 ? -errno : 0;
	if (ret < 0)
		goto out_free;
	ret = zns_lock_excl(dev->fd, dev->flags);
	if (ret < 0)
		goto out_free;
	r = pread(dev->fd, buf, EMUL_HDR_REGION, 0);
	if (r < 0 && errno == EINVAL && dev->direct) {
		ret = reopen_buffered(dev, "O_DIRECT read refused");
		if (ret < 0 || (ret = zns_lock_excl(dev->fd, dev->flags)) < 0)
			goto out_free;
		r = pread(dev->fd, buf, EMUL_HDR_REGION, 0);
	}
	if (r < 0) {
		ret = -errno;
		goto out_free;
	}
	ret = r < (ssize_t)EMUL_HDR_BYTES ? -EMEDIUMTYPE
	                                  : hdr_decode(buf, (size_t)r, &e->h);
	if (ret < 0)
		goto out_free;
	ret = backing_size(dev->fd, e->is_blk, &size);
	if (ret == 0 && size < e->h.total)
		ret = -EUCLEAN;
	/* O_DIRECT must work at the emulated LBA granularity. */
	if (ret == 0 && dev->direct &&
	    pread(dev->fd, buf, e->h.lba_size, (off_t)e->h.first_zone_off) < 0 &&
	    errno == EINVAL) {
		ret = reopen_buffered(dev,
		                      "direct I/O alignment is larger than the LBA size");
		if (ret == 0)
			ret = zns_lock_excl(dev->fd, dev->flags);
	}
out_free:
	zns_buf_free(buf);
	return ret;
}

/* Maps the table and loads every zone entry. */
static int load_table(struct zns_dev *dev, struct emul *e)
{
	int prot = PROT_READ | ((dev->flags & ZNS_OPEN_RDONLY) ? 0 : PROT_WRITE);

	e->map_len = e->h.table_off + e->h.table_len;
	e->map = mmap(NULL, e->map_len, prot, MAP_SHARED, dev->fd, 0);
	if (e->map == MAP_FAILED) {
		e->map = NULL;
		return -errno;
	}
	e->zones = calloc(e->h.nr_zones, sizeof(*e->zones));
	e->snap = calloc(e->h.nr_zones, sizeof(*e->snap));
	e->snap_gen = calloc(e->h.nr_zones, sizeof(*e->snap_gen));
	if (!e->zones || !e->snap || !e->snap_gen)
		return -ENOMEM;
	for (uint32_t z = 0; z < e->h.nr_zones; z++) {
		struct emul_zone *ez = &e->zones[z];
		uint64_t v = tslab_get64((const uint8_t *)entry_ptr(e, z)), wp;

		if (entry_decode(z, v, &wp, &ez->cond) < 0)
			return -EUCLEAN;
		ez->wp = wp * e->h.lba_size;
		if (ez->wp > e->h.zone_capacity || (ez->cond == ZNS_COND_EMPTY && ez->wp))
			return -EUCLEAN;
		ez->data_end = ez->flushed = ez->wp;
		if (ez->cond == ZNS_COND_FULL)
			ez->wp = e->h.zone_capacity;
		e->nr_open += cond_is_open(ez->cond);
		e->nr_active += cond_is_active(ez->cond);
		if (cond_is_open(ez->cond))
			ez->open_seq = ++e->seq;
	}
	return 0;
}

int zns_emul_open_dev(const char *path, unsigned flags, int backend, struct zns_dev **out)
{
	struct zns_dev *dev = zns_dev_alloc(path, flags);
	struct emul *e = calloc(1, sizeof(*e));
	int ret = -ENOMEM;

	if (!dev || !e)
		goto out_free;
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->flush_lock, NULL);
	e->is_blk = backend == ZNS_BACKEND_EMUL_BLKDEV;
	ret = open_backing(dev, e);
	if (ret < 0)
		goto out_free;
	ret = load_table(dev, e);
	if (ret < 0)
		goto out_free;
	dev->geo = (struct zns_geometry){
	    .backend = (enum zns_backend)backend,
	    .lba_size = e->h.lba_size,
	    .nr_zones = e->h.nr_zones,
	    .zone_size = e->h.zone_size,
	    .zone_capacity = e->h.zone_capacity,
	    .max_open = e->h.max_open,
	    .max_active = e->h.max_active,
	    .first_zone_off = e->h.first_zone_off,
	};
	ret = zns_dev_setup(dev);
	if (ret < 0)
		goto out_free;
	dev->priv = e;
	dev->ops = &emul_ops;
	*out = dev;
	return 0;
out_free:
	emul_free(e);
	zns_dev_free(dev);
	return ret;
}

/* ---- create ---------------------------------------------------------------- */

static int params_to_hdr(const struct zns_emul_params *p, struct emul_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->version = EMUL_VERSION;
	h->lba_size = p->lba_size ? p->lba_size : 4096;
	h->zone_size = p->zone_size ? p->zone_size : EMUL_DEF_ZONE_SIZE;
	h->zone_capacity = p->zone_capacity ? p->zone_capacity : h->zone_size;
	h->max_active = p->max_active ? p->max_active : EMUL_DEF_MAX_OPEN;
	h->max_open =
	    p->max_open
	        ? p->max_open
	        : (h->max_active < EMUL_DEF_MAX_OPEN ? h->max_active : EMUL_DEF_MAX_OPEN);
	h->table_off = EMUL_TABLE_OFF;
	if ((h->lba_size != 512 && h->lba_size != 4096) || h->zone_size % h->lba_size ||
	    h->zone_capacity > h->zone_size || h->zone_capacity % h->lba_size ||
	    h->zone_capacity / h->lba_size >= (1ull << EMUL_WP_BITS) ||
	    h->max_open > h->max_active)
		return -EINVAL;
	return 0;
}

static void layout_for(struct emul_hdr *h, uint32_t nr_zones)
{
	h->nr_zones = nr_zones;
	h->table_len = round_up((uint64_t)nr_zones * EMUL_ENTRY_BYTES, 4096);
	h->first_zone_off = round_up(h->table_off + h->table_len, EMUL_DATA_ALIGN);
	h->total = h->first_zone_off + (uint64_t)nr_zones * h->zone_size;
}

/* Fixes nr_zones and the layout for SIZE bytes of backing store. */
static int layout(struct emul_hdr *h, uint32_t want, uint64_t size)
{
	uint64_t nz = want;

	if (!want) {
		nz = size / h->zone_size;
		if (nz > UINT32_MAX)
			nz = UINT32_MAX;
		layout_for(h, (uint32_t)nz);
		while (nz && h->total > size)
			layout_for(h, (uint32_t)--nz);
	}
	if (nz == 0)
		return -ENOSPC;
	layout_for(h, (uint32_t)nz);
	return h->total > size ? -ENOSPC : 0;
}

/* Writes header and an all-EMPTY zone table, then syncs. */
static int write_meta(int fd, const struct emul_hdr *h)
{
	size_t len = h->table_off + h->table_len;
	uint8_t *b = calloc(1, len);
	int ret = 0;

	if (!b)
		return -ENOMEM;
	hdr_encode(h, b);
	for (uint32_t z = 0; z < h->nr_zones; z++)
		tslab_put64(b + h->table_off + (uint64_t)z * EMUL_ENTRY_BYTES,
		            entry_encode(z, 0, ZNS_COND_EMPTY));
	for (size_t done = 0; done < len && ret == 0;) {
		ssize_t w = pwrite(fd, b + done, len - done, (off_t)done);

		if (w < 0 && errno != EINTR)
			ret = -errno;
		else if (w > 0)
			done += (size_t)w;
	}
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	free(b);
	return ret;
}

int zns_emul_layout(const struct zns_emul_params *p, uint64_t size, uint32_t *nr_zones)
{
	struct emul_hdr h;
	int ret = params_to_hdr(p, &h);

	if (ret == 0)
		ret = layout(&h, 0, size);
	*nr_zones = ret ? 0 : h.nr_zones;
	return ret;
}

int zns_emul_create(const char *path, const struct zns_emul_params *p)
{
	struct emul_hdr h;
	struct stat st;
	bool is_blk = stat(path, &st) == 0 && S_ISBLK(st.st_mode);
	uint64_t size = p->size;
	int fd, ret, sect;

	ret = params_to_hdr(p, &h);
	if (ret < 0)
		return ret;
	if (!is_blk && stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return -EMEDIUMTYPE;
	fd = is_blk ? open(path, O_RDWR | O_EXCL | O_CLOEXEC)
	            : open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (is_blk) {
		ret = backing_size(fd, true, &size);
		if (ret == 0 && ioctl(fd, BLKSSZGET, &sect) == 0 &&
		    (uint32_t)sect > h.lba_size)
			ret = -EINVAL;
	} else if (!size && p->nr_zones) {
		layout_for(&h, p->nr_zones);
		size = h.total;
	}
	if (ret == 0)
		ret = layout(&h, p->nr_zones, size);
	if (ret == 0 && !is_blk && ftruncate(fd, (off_t)size) < 0)
		ret = -errno;
	if (ret == 0)
		ret = write_meta(fd, &h);
	close(fd);
	return ret;
}
