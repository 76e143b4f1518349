// SPDX-License-Identifier: MIT
/*
 * zns common layer: backend dispatch, argument validation, per-zone write
 * serialisation, statistics, the io_uring pool and aligned buffers.
 *
 * Validation done here, identically for every backend (so that an illegal
 * call fails the same way whatever the device):
 *   - zone index out of range                      -> -EINVAL
 *   - offset / length not a multiple of lba_size,
 *     zero length, buffer not lba_size-aligned     -> -EINVAL
 *   - read/write extending past zone_size          -> -EINVAL
 *     (within zone_size but past the capacity the backend / device
 *      answers, -EIO, as a real zoned device does)
 *   - write / zone management on a ZNS_OPEN_RDONLY device -> -EROFS
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "zns/zns_int.h"

const char *zns_backend_name(enum zns_backend b)
{
	switch (b) {
	case ZNS_BACKEND_NATIVE:
		return "native";
	case ZNS_BACKEND_EMUL_FILE:
		return "emulated-file";
	case ZNS_BACKEND_EMUL_BLKDEV:
		return "emulated-blkdev";
	}
	return "unknown";
}

const char *zns_cond_name(enum zns_cond c)
{
	static const char *const names[] = {
	    [ZNS_COND_NOT_WP] = "not-wp",       [ZNS_COND_EMPTY] = "empty",
	    [ZNS_COND_IMP_OPEN] = "imp-open",   [ZNS_COND_EXP_OPEN] = "exp-open",
	    [ZNS_COND_CLOSED] = "closed",       [ZNS_COND_FULL] = "full",
	    [ZNS_COND_READ_ONLY] = "read-only", [ZNS_COND_OFFLINE] = "offline",
	};
	if ((unsigned)c < sizeof(names) / sizeof(names[0]))
		return names[c];
	return "unknown";
}

void *zns_buf_alloc(size_t len)
{
	size_t n = (len + 4095) & ~(size_t)4095;

	return aligned_alloc(4096, n ? n : 4096);
}

void zns_buf_free(void *buf)
{
	free(buf);
}

/* ---- device object ---------------------------------------------------- */

struct zns_dev *zns_dev_alloc(const char *path, unsigned flags)
{
	struct zns_dev *dev = calloc(1, sizeof(*dev));

	if (!dev)
		return NULL;
	dev->path = strdup(path);
	if (!dev->path) {
		free(dev);
		return NULL;
	}
	dev->flags = flags;
	dev->fd = -1;
	for (int i = 0; i < ZNS_NR_RINGS; i++)
		pthread_mutex_init(&dev->rings[i].lock, NULL);
	return dev;
}

/* Allocates the per-zone locks and the rings once geo and fd are known. */
int zns_dev_setup(struct zns_dev *dev)
{
	int ret;

	dev->zone_lock =
	    calloc(dev->geo.nr_zones ? dev->geo.nr_zones : 1, sizeof(*dev->zone_lock));
	if (!dev->zone_lock)
		return -ENOMEM;
	for (uint32_t z = 0; z < dev->geo.nr_zones; z++)
		pthread_mutex_init(&dev->zone_lock[z], NULL);

	for (int i = 0; i < ZNS_NR_RINGS; i++) {
		struct zns_ring *r = &dev->rings[i];

		ret = io_uring_queue_init(4, &r->ring, 0);
		if (ret < 0)
			return ret;
		/*
		 * The file is deliberately not registered with the ring: a
		 * registered file outlives a killed process until the kernel's
		 * deferred ring teardown, and with it the exclusive flock, so
		 * a remount right after a crash would find the device busy.
		 */
		r->ready = true;
	}
	return 0;
}

void zns_dev_free(struct zns_dev *dev)
{
	if (!dev)
		return;
	/*
	 * The rings hold registered references to the file, and the kernel
	 * drops those asynchronously after io_uring_queue_exit(): release the
	 * exclusive lock explicitly so that the next opener never sees it.
	 */
	if (dev->fd >= 0 && (dev->flags & ZNS_OPEN_EXCL))
		flock(dev->fd, LOCK_UN);
	for (int i = 0; i < ZNS_NR_RINGS; i++) {
		if (dev->rings[i].ready)
			io_uring_queue_exit(&dev->rings[i].ring);
		pthread_mutex_destroy(&dev->rings[i].lock);
	}
	if (dev->zone_lock) {
		for (uint32_t z = 0; z < dev->geo.nr_zones; z++)
			pthread_mutex_destroy(&dev->zone_lock[z]);
		free(dev->zone_lock);
	}
	if (dev->fd >= 0)
		close(dev->fd);
	free(dev->path);
	free(dev);
}

int zns_lock_excl(int fd, unsigned flags)
{
	if (!(flags & ZNS_OPEN_EXCL))
		return 0;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	return 0;
}

/* ---- io_uring pool ----------------------------------------------------- */

static struct zns_ring *ring_get(struct zns_dev *dev)
{
	unsigned start =
	    atomic_fetch_add_explicit(&dev->ring_next, 1, memory_order_relaxed);

	for (unsigned i = 0; i < ZNS_NR_RINGS; i++) {
		struct zns_ring *r = &dev->rings[(start + i) % ZNS_NR_RINGS];

		if (pthread_mutex_trylock(&r->lock) == 0)
			return r;
	}
	struct zns_ring *r = &dev->rings[start % ZNS_NR_RINGS];

	pthread_mutex_lock(&r->lock);
	return r;
}

/* One synchronous read or write through a ring of the pool. */
static ssize_t ring_rw(struct zns_dev *dev, bool write, void *buf, size_t len,
                       uint64_t pos)
{
	struct zns_ring *r = ring_get(dev);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	struct io_uring_cqe *cqe;
	ssize_t ret;

	if (!sqe) {
		ret = -EBUSY;
		goto out_unlock;
	}
	if (write)
		io_uring_prep_write(sqe, dev->fd, buf, (unsigned)len, pos);
	else
		io_uring_prep_read(sqe, dev->fd, buf, (unsigned)len, pos);
	ret = io_uring_submit_and_wait(&r->ring, 1);
	if (ret < 0)
		goto out_unlock;
	ret = io_uring_wait_cqe(&r->ring, &cqe);
	if (ret < 0)
		goto out_unlock;
	ret = cqe->res;
	io_uring_cqe_seen(&r->ring, cqe);
out_unlock:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/* Largest single transfer submitted; keeps the length in an unsigned. */
#define ZNS_IO_CHUNK (1u << 30)

static ssize_t io_loop(struct zns_dev *dev, bool write, void *buf, size_t len,
                       uint64_t pos)
{
	size_t done = 0;

	while (done < len) {
		size_t n = len - done;
		ssize_t r;

		if (n > ZNS_IO_CHUNK)
			n = ZNS_IO_CHUNK;
		r = ring_rw(dev, write, (char *)buf + done, n, pos + done);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r < 0)
			return r;
		if (r == 0)
			return write ? -EIO : (ssize_t)done;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

ssize_t zns_io_pwrite(struct zns_dev *dev, const void *buf, size_t len, uint64_t pos)
{
	return io_loop(dev, true, (void *)buf, len, pos);
}

ssize_t zns_io_pread(struct zns_dev *dev, void *buf, size_t len, uint64_t pos)
{
	ssize_t r = io_loop(dev, false, buf, len, pos);

	/* Past the end of a backing file reads as zeroes, as unwritten LBAs. */
	if (r >= 0 && (size_t)r < len) {
		memset((char *)buf + r, 0, len - (size_t)r);
		r = (ssize_t)len;
	}
	return r;
}

/* ---- open / probe ------------------------------------------------------ */

/* Reads /sys/dev/block/MAJ:MIN/queue/zoned (the whole disk's for a
 * partition). Returns 1 for host-managed, 0 otherwise. */
static int blkdev_is_host_managed(dev_t rdev)
{
	char p[128], buf[32] = "";
	FILE *f;

	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/queue/zoned", major(rdev),
	         minor(rdev));
	f = fopen(p, "r");
	if (!f) {
		snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/../queue/zoned", major(rdev),
		         minor(rdev));
		f = fopen(p, "r");
	}
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strncmp(buf, "host-managed", 12) == 0;
}

int zns_probe(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode))
		return ZNS_BACKEND_EMUL_FILE;
	if (S_ISBLK(st.st_mode))
		return blkdev_is_host_managed(st.st_rdev) ? ZNS_BACKEND_NATIVE
		                                          : ZNS_BACKEND_EMUL_BLKDEV;
	return -EMEDIUMTYPE;
}

int zns_open(const char *path, unsigned flags, struct zns_dev **out)
{
	int b = zns_probe(path);

	*out = NULL;
	if (b < 0)
		return b;
	if (b == ZNS_BACKEND_NATIVE)
		return zns_native_open_dev(path, flags, out);
	return zns_emul_open_dev(path, flags, b, out);
}

void zns_close(struct zns_dev *dev)
{
	if (!dev)
		return;
	if (dev->ops && dev->ops->close)
		dev->ops->close(dev);
	zns_dev_free(dev);
}

const struct zns_geometry *zns_geometry(const struct zns_dev *dev)
{
	return &dev->geo;
}

/* ---- zones and I/O ----------------------------------------------------- */

int zns_zone_report(struct zns_dev *dev, uint32_t first, uint32_t n, struct zns_zone *out)
{
	if (first >= dev->geo.nr_zones || n > dev->geo.nr_zones - first)
		return -EINVAL;
	if (n == 0)
		return 0;
	return dev->ops->report(dev, first, n, out);
}

static int zone_mgmt(struct zns_dev *dev, uint32_t zone, enum zns_mgmt_op op)
{
	int ret;

	if (zone >= dev->geo.nr_zones)
		return -EINVAL;
	if (dev->flags & ZNS_OPEN_RDONLY)
		return -EROFS;
	pthread_mutex_lock(&dev->zone_lock[zone]);
	ret = dev->ops->mgmt(dev, zone, op);
	pthread_mutex_unlock(&dev->zone_lock[zone]);
	if (ret == 0 && op == ZNS_MGMT_RESET)
		atomic_fetch_add(&dev->st.resets, 1);
	if (ret == 0 && op == ZNS_MGMT_FINISH)
		atomic_fetch_add(&dev->st.finishes, 1);
	return ret;
}

int zns_zone_reset(struct zns_dev *dev, uint32_t zone)
{
	return zone_mgmt(dev, zone, ZNS_MGMT_RESET);
}

int zns_zone_finish(struct zns_dev *dev, uint32_t zone)
{
	return zone_mgmt(dev, zone, ZNS_MGMT_FINISH);
}

int zns_zone_open(struct zns_dev *dev, uint32_t zone)
{
	return zone_mgmt(dev, zone, ZNS_MGMT_OPEN);
}

int zns_zone_close(struct zns_dev *dev, uint32_t zone)
{
	return zone_mgmt(dev, zone, ZNS_MGMT_CLOSE);
}

static int check_io(const struct zns_dev *dev, uint32_t zone, uint64_t off,
                    const void *buf, size_t len)
{
	uint64_t lba = dev->geo.lba_size;

	if (zone >= dev->geo.nr_zones || len == 0)
		return -EINVAL;
	if (off % lba || len % lba || (uintptr_t)buf % lba)
		return -EINVAL;
	if (off > dev->geo.zone_size || len > dev->geo.zone_size - off)
		return -EINVAL;
	return 0;
}

ssize_t zns_zone_write(struct zns_dev *dev, uint32_t zone, uint64_t off, const void *buf,
                       size_t len)
{
	ssize_t ret = check_io(dev, zone, off, buf, len);

	if (ret == 0 && (dev->flags & ZNS_OPEN_RDONLY))
		ret = -EROFS;
	if (ret < 0)
		goto out_err;
	pthread_mutex_lock(&dev->zone_lock[zone]);
	ret = dev->ops->write(dev, zone, off, buf, len);
	pthread_mutex_unlock(&dev->zone_lock[zone]);
	if (ret < 0)
		goto out_err;
	atomic_fetch_add_explicit(&dev->st.writes, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&dev->st.bytes_written, len, memory_order_relaxed);
	return ret;
out_err:
	atomic_fetch_add_explicit(&dev->st.write_errors, 1, memory_order_relaxed);
	return ret;
}

ssize_t zns_zone_read(struct zns_dev *dev, uint32_t zone, uint64_t off, void *buf,
                      size_t len)
{
	ssize_t ret = check_io(dev, zone, off, buf, len);

	if (ret < 0)
		return ret;
	ret = dev->ops->read(dev, zone, off, buf, len);
	if (ret >= 0) {
		atomic_fetch_add_explicit(&dev->st.reads, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&dev->st.bytes_read, len, memory_order_relaxed);
	}
	return ret;
}

int zns_flush(struct zns_dev *dev)
{
	int ret;

	if (dev->flags & ZNS_OPEN_RDONLY)
		return 0;
	ret = dev->ops->flush(dev);
	if (ret == 0)
		atomic_fetch_add(&dev->st.flushes, 1);
	return ret;
}

void zns_stats_get(const struct zns_dev *dev, struct zns_stats *st)
{
	struct zns_dev *d = (struct zns_dev *)dev;

	st->writes = atomic_load(&d->st.writes);
	st->bytes_written = atomic_load(&d->st.bytes_written);
	st->reads = atomic_load(&d->st.reads);
	st->bytes_read = atomic_load(&d->st.bytes_read);
	st->resets = atomic_load(&d->st.resets);
	st->finishes = atomic_load(&d->st.finishes);
	st->flushes = atomic_load(&d->st.flushes);
	st->write_errors = atomic_load(&d->st.write_errors);
}

/* ---- fault injection (dispatch; the emulator implements it) ------------ */

int zns_fault_fail_write(struct zns_dev *dev, uint64_t nth)
{
	if (!dev->ops->fault_fail_write)
		return -EOPNOTSUPP;
	return dev->ops->fault_fail_write(dev, nth);
}

int zns_fault_fail_reset(struct zns_dev *dev, uint64_t nth)
{
	if (!dev->ops->fault_fail_reset)
		return -EOPNOTSUPP;
	return dev->ops->fault_fail_reset(dev, nth);
}

int zns_fault_set_cond(struct zns_dev *dev, uint32_t zone, enum zns_cond cond)
{
	if (!dev->ops->fault_set_cond)
		return -EOPNOTSUPP;
	if (zone >= dev->geo.nr_zones)
		return -EINVAL;
	if (cond != ZNS_COND_READ_ONLY && cond != ZNS_COND_OFFLINE)
		return -EINVAL;
	if (dev->flags & ZNS_OPEN_RDONLY)
		return -EROFS;
	pthread_mutex_lock(&dev->zone_lock[zone]);
	int ret = dev->ops->fault_set_cond(dev, zone, cond);
	pthread_mutex_unlock(&dev->zone_lock[zone]);
	return ret;
}

int zns_fault_power_cut(struct zns_dev *dev, long keep_lbas, unsigned seed)
{
	if (!dev->ops->fault_power_cut)
		return -EOPNOTSUPP;
	if (dev->flags & ZNS_OPEN_RDONLY)
		return -EROFS;
	return dev->ops->fault_power_cut(dev, keep_lbas, seed);
}
