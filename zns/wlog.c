// SPDX-License-Identifier: MIT
/*
 * Write log: a wrapper ops table over any backend that appends every
 * device operation a power cut can keep or lose to a log file, in the order
 * the device saw them. tests/crash replays prefixes and per-zone subsets
 * of it to build the device as of any crash point (docs/format.md "Write
 * log", docs/design.md "Crash-state exploration").
 *
 * Ordering. zns.c holds zone_lock[z] across a write or a zone management
 * call, and the record is appended before the wrapper returns: records of
 * one zone are in device order, and a record is in the log before the
 * caller learns that its operation completed. A flush record is appended
 * before the flush is issued: it covers every write logged before it (they
 * completed before it started), and a write logged after it may or may not
 * be covered, which is what a device promises.
 *
 * Appends are single write() calls on an O_APPEND descriptor, under
 * wlog->lock, so records from the daemon and MARK records appended by a
 * workload process to the same file never interleave.
 *
 * Lock order: zone_lock[z] -> wlog->lock (a leaf; held only for the
 * append). A failed append makes the log unusable; it is reported once
 * and the device I/O itself is not failed (the log is a test tool).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/tslab_le.h"
#include "zns/zns_int.h"

struct zns_wlog {
	const struct zns_ops *inner; /* the backend's own table */
	pthread_mutex_t lock;        /* leaf: serialises appends */
	int fd;
	bool broken; /* an append failed: stop logging */
};

/* Record header: "WREC", le32 type, le32 zone, le32 len, le64 off. */
static void rec_encode(uint8_t *h, enum zns_wlog_type t, uint32_t zone, uint64_t off,
                       uint32_t len)
{
	memcpy(h, "WREC", 4);
	tslab_put32(h + 4, (uint32_t)t);
	tslab_put32(h + 8, zone);
	tslab_put32(h + 12, len);
	tslab_put64(h + 16, off);
}

static void wlog_append(struct zns_dev *dev, enum zns_wlog_type t, uint32_t zone,
                        uint64_t off, const void *buf, size_t len)
{
	struct zns_wlog *w = dev->wlog;
	uint8_t h[ZNS_WLOG_REC];
	struct iovec iov[2] = {{h, sizeof(h)}, {(void *)buf, len}};
	size_t want = sizeof(h) + len;
	ssize_t n;

	rec_encode(h, t, zone, off, (uint32_t)len);
	pthread_mutex_lock(&w->lock);
	if (!w->broken) {
		n = writev(w->fd, iov, len ? 2 : 1);
		if (n != (ssize_t)want) {
			w->broken = true;
			fprintf(stderr,
			        "zns: write log append failed (%s); logging stopped\n",
			        n < 0 ? strerror(errno) : "short write");
		}
	}
	pthread_mutex_unlock(&w->lock);
}

static int wlog_report(struct zns_dev *dev, uint32_t first, uint32_t n,
                       struct zns_zone *out)
{
	return dev->wlog->inner->report(dev, first, n, out);
}

static enum zns_wlog_type mgmt_type(enum zns_mgmt_op op)
{
	switch (op) {
	case ZNS_MGMT_RESET:
		return ZNS_WLOG_RESET;
	case ZNS_MGMT_FINISH:
		return ZNS_WLOG_FINISH;
	case ZNS_MGMT_OPEN:
		return ZNS_WLOG_OPEN;
	case ZNS_MGMT_CLOSE:
		break;
	}
	return ZNS_WLOG_CLOSE;
}

static int wlog_mgmt(struct zns_dev *dev, uint32_t zone, enum zns_mgmt_op op)
{
	int ret = dev->wlog->inner->mgmt(dev, zone, op);

	if (ret == 0)
		wlog_append(dev, mgmt_type(op), zone, 0, NULL, 0);
	return ret;
}

static ssize_t wlog_write(struct zns_dev *dev, uint32_t zone, uint64_t off,
                          const void *buf, size_t len)
{
	ssize_t ret = dev->wlog->inner->write(dev, zone, off, buf, len);

	if (ret == (ssize_t)len)
		wlog_append(dev, ZNS_WLOG_WRITE, zone, off, buf, len);
	return ret;
}

static ssize_t wlog_read(struct zns_dev *dev, uint32_t zone, uint64_t off, void *buf,
                         size_t len)
{
	return dev->wlog->inner->read(dev, zone, off, buf, len);
}

static int wlog_flush(struct zns_dev *dev)
{
	wlog_append(dev, ZNS_WLOG_FLUSH, 0, 0, NULL, 0);
	return dev->wlog->inner->flush(dev);
}

static void wlog_close(struct zns_dev *dev)
{
	struct zns_wlog *w = dev->wlog;

	if (w->inner->close)
		w->inner->close(dev);
	close(w->fd);
	pthread_mutex_destroy(&w->lock);
	dev->ops = w->inner;
	dev->wlog = NULL;
	free(w);
}

/* Fault injection passes through: the log shows what the device did. */
static int wlog_fail_write(struct zns_dev *dev, uint64_t nth)
{
	const struct zns_ops *in = dev->wlog->inner;

	return in->fault_fail_write ? in->fault_fail_write(dev, nth) : -EOPNOTSUPP;
}

static int wlog_fail_reset(struct zns_dev *dev, uint64_t nth)
{
	const struct zns_ops *in = dev->wlog->inner;

	return in->fault_fail_reset ? in->fault_fail_reset(dev, nth) : -EOPNOTSUPP;
}

static int wlog_set_cond(struct zns_dev *dev, uint32_t zone, enum zns_cond cond)
{
	const struct zns_ops *in = dev->wlog->inner;

	return in->fault_set_cond ? in->fault_set_cond(dev, zone, cond) : -EOPNOTSUPP;
}

static int wlog_power_cut(struct zns_dev *dev, long keep_lbas, unsigned seed)
{
	const struct zns_ops *in = dev->wlog->inner;

	return in->fault_power_cut ? in->fault_power_cut(dev, keep_lbas, seed)
	                           : -EOPNOTSUPP;
}

static const struct zns_ops wlog_ops = {
    .name = "wlog",
    .report = wlog_report,
    .mgmt = wlog_mgmt,
    .write = wlog_write,
    .read = wlog_read,
    .flush = wlog_flush,
    .close = wlog_close,
    .fault_fail_write = wlog_fail_write,
    .fault_fail_reset = wlog_fail_reset,
    .fault_set_cond = wlog_set_cond,
    .fault_power_cut = wlog_power_cut,
};

/* File header: "TSLABWLG", le32 version (1), le32 lba_size, le32 nr_zones,
 * le32 zero, le64 zone_size. */
static int write_header(int fd, const struct zns_geometry *g)
{
	uint8_t h[ZNS_WLOG_HDR] = {0};

	memcpy(h, "TSLABWLG", 8);
	tslab_put32(h + 8, 1);
	tslab_put32(h + 12, g->lba_size);
	tslab_put32(h + 16, g->nr_zones);
	tslab_put64(h + 24, g->zone_size);
	return write(fd, h, sizeof(h)) == (ssize_t)sizeof(h) ? 0 : -EIO;
}

int zns_wlog_start(struct zns_dev *dev, const char *path)
{
	struct zns_wlog *w;
	int ret;

	if (dev->wlog)
		return -EBUSY;
	if (dev->flags & ZNS_OPEN_RDONLY)
		return -EROFS;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		ret = -errno;
		goto free_w;
	}
	ret = write_header(w->fd, &dev->geo);
	if (ret)
		goto close_fd;
	pthread_mutex_init(&w->lock, NULL);
	w->inner = dev->ops;
	dev->wlog = w;
	dev->ops = &wlog_ops;
	return 0;

close_fd:
	close(w->fd);
free_w:
	free(w);
	return ret;
}
