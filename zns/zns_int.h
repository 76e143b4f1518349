/* SPDX-License-Identifier: MIT */
/*
 * zns private interface: the device object shared by zns.c and the
 * backends (emul.c, native.c), the backend ops table, the io_uring pool.
 * Never included outside zns/.
 */
#ifndef TSLAB_ZNS_INT_H
#define TSLAB_ZNS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <liburing.h>

#include "zns/zns.h"

enum zns_mgmt_op {
	ZNS_MGMT_RESET = 1,
	ZNS_MGMT_FINISH,
	ZNS_MGMT_OPEN,
	ZNS_MGMT_CLOSE,
};

/*
 * Backend operations. The common layer (zns.c) has already validated the
 * zone index, alignment, bounds and the read-only open mode; for write and
 * zone management it holds dev->zone_lock[zone] across the call, so a
 * backend sees at most one write or management command per zone at a time.
 * Optional entries (NULL) make the public call fail with -EOPNOTSUPP.
 */
struct zns_ops {
	const char *name;
	int (*report)(struct zns_dev *dev, uint32_t first, uint32_t n,
	              struct zns_zone *out);
	int (*mgmt)(struct zns_dev *dev, uint32_t zone, enum zns_mgmt_op op);
	ssize_t (*write)(struct zns_dev *dev, uint32_t zone, uint64_t off,
	                 const void *buf, size_t len);
	ssize_t (*read)(struct zns_dev *dev, uint32_t zone, uint64_t off, void *buf,
	                size_t len);
	int (*flush)(struct zns_dev *dev);
	/* Releases backend state (dev->priv); the common layer closes dev->fd. */
	void (*close)(struct zns_dev *dev);

	int (*fault_fail_write)(struct zns_dev *dev, uint64_t nth);
	int (*fault_fail_reset)(struct zns_dev *dev, uint64_t nth);
	int (*fault_set_cond)(struct zns_dev *dev, uint32_t zone, enum zns_cond cond);
	int (*fault_power_cut)(struct zns_dev *dev, long keep_lbas, unsigned seed);
};

/* One io_uring plus the lock that gives a thread exclusive use of it. */
struct zns_ring {
	pthread_mutex_t lock;
	struct io_uring ring;
	bool ready;
};

#define ZNS_NR_RINGS 4

struct zns_dev {
	const struct zns_ops *ops;
	struct zns_geometry geo;
	unsigned flags; /* ZNS_OPEN_* */
	int fd;         /* data fd (O_DIRECT unless dev->direct is false) */
	bool direct;    /* data I/O uses O_DIRECT */
	char *path;

	/* Lock order: zone_lock[z] before any backend-internal lock. A thread
	 * never holds two zone locks. */
	pthread_mutex_t *zone_lock;

	/* Rings are independent of zones: any thread takes any free ring. */
	struct zns_ring rings[ZNS_NR_RINGS];
	atomic_uint ring_next;

	struct {
		atomic_uint_least64_t writes, bytes_written, reads, bytes_read;
		atomic_uint_least64_t resets, finishes, flushes, write_errors;
	} st;

	void *priv; /* backend state, owned by the backend */

	/* Write log (wlog.c): when set, ops is the logging table and
	 * wlog->inner the backend's own; priv stays the backend's. */
	struct zns_wlog *wlog;
};

/* zns.c: device object lifetime shared by the backends' open paths. */
struct zns_dev *zns_dev_alloc(const char *path, unsigned flags);
int zns_dev_setup(struct zns_dev *dev); /* after geo and fd are set */
void zns_dev_free(struct zns_dev *dev);

/* Synchronous positioned I/O on dev->fd through the ring pool; loops over
 * short transfers. Returns LEN or -errno. */
ssize_t zns_io_pwrite(struct zns_dev *dev, const void *buf, size_t len, uint64_t pos);
ssize_t zns_io_pread(struct zns_dev *dev, void *buf, size_t len, uint64_t pos);

/* Take an exclusive flock on FD if FLAGS ask for it (-EBUSY if held). */
int zns_lock_excl(int fd, unsigned flags);

/* Backend entry points used by zns_open(). */
int zns_emul_open_dev(const char *path, unsigned flags, int backend,
                      struct zns_dev **out);
int zns_native_open_dev(const char *path, unsigned flags, struct zns_dev **out);

#endif /* TSLAB_ZNS_INT_H */
