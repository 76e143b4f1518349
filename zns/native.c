// SPDX-License-Identifier: MIT
/*
 * Native backend: a host-managed zoned block device. Zone management and
 * reports go through libzbd; data I/O through the io_uring pool on the
 * O_DIRECT descriptor libzbd opened. The device itself enforces the zone
 * rules; this backend keeps no zone state of its own, so a report after a
 * failed write always shows the device's true write pointer.
 *
 * Zones exposed: the sequential-write-required zones of the device, in
 * order, starting with the first one (conventional zones before it are
 * skipped; geometry.first_zone_off is its byte offset). zone_capacity is
 * the smallest capacity reported. A FULL zone reports wp = capacity.
 *
 * Write ordering: the common layer keeps one write in flight per zone.
 * Kernels >= 6.10 order zoned writes themselves (zone write plugging);
 * older kernels need the mq-deadline scheduler, which open selects or
 * refuses to run without (-EINVAL with an explanation on stderr).
 */
#include <errno.h>
#include <fcntl.h>
#include <libzbd/zbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "zns/zns_int.h"

struct native {
	struct zbd_info info;
	struct zbd_zone *rep; /* report buffer, nr_zones entries, under rep_lock */
	pthread_mutex_t rep_lock;
};

static int neg_errno(int ret)
{
	if (ret == -1 && errno)
		return -errno;
	return ret < 0 ? ret : -EIO;
}

static enum zns_cond map_cond(unsigned c)
{
	switch (c) {
	case ZBD_ZONE_COND_EMPTY:
		return ZNS_COND_EMPTY;
	case ZBD_ZONE_COND_IMP_OPEN:
		return ZNS_COND_IMP_OPEN;
	case ZBD_ZONE_COND_EXP_OPEN:
		return ZNS_COND_EXP_OPEN;
	case ZBD_ZONE_COND_CLOSED:
		return ZNS_COND_CLOSED;
	case ZBD_ZONE_COND_FULL:
		return ZNS_COND_FULL;
	case ZBD_ZONE_COND_READONLY:
		return ZNS_COND_READ_ONLY;
	case ZBD_ZONE_COND_OFFLINE:
		return ZNS_COND_OFFLINE;
	default:
		return ZNS_COND_NOT_WP;
	}
}

static uint64_t zone_start(const struct zns_dev *dev, uint32_t z)
{
	return dev->geo.first_zone_off + (uint64_t)z * dev->geo.zone_size;
}

static int native_report(struct zns_dev *dev, uint32_t first, uint32_t n,
                         struct zns_zone *out)
{
	struct native *nd = dev->priv;
	unsigned int nr = n;
	int ret;

	pthread_mutex_lock(&nd->rep_lock);
	ret = zbd_report_zones(dev->fd, (off_t)zone_start(dev, first),
	                       (off_t)((uint64_t)n * dev->geo.zone_size), ZBD_RO_ALL,
	                       nd->rep, &nr);
	if (ret != 0) {
		ret = neg_errno(ret);
		goto out_unlock;
	}
	for (unsigned i = 0; i < nr && i < n; i++) {
		const struct zbd_zone *zz = &nd->rep[i];

		out[i].start = zz->start;
		out[i].capacity = zz->capacity;
		out[i].cond = map_cond(zz->cond);
		out[i].wp =
		    out[i].cond == ZNS_COND_FULL ? zz->capacity : zz->wp - zz->start;
	}
	ret = nr < n ? -EIO : (int)n;
out_unlock:
	pthread_mutex_unlock(&nd->rep_lock);
	return ret;
}

static int native_mgmt(struct zns_dev *dev, uint32_t z, enum zns_mgmt_op op)
{
	static const enum zbd_zone_op map[] = {
	    [ZNS_MGMT_RESET] = ZBD_OP_RESET,
	    [ZNS_MGMT_FINISH] = ZBD_OP_FINISH,
	    [ZNS_MGMT_OPEN] = ZBD_OP_OPEN,
	    [ZNS_MGMT_CLOSE] = ZBD_OP_CLOSE,
	};
	int ret;

	errno = 0;
	ret = zbd_zones_operation(dev->fd, map[op], (off_t)zone_start(dev, z),
	                          (off_t)dev->geo.zone_size);
	return ret == 0 ? 0 : neg_errno(ret);
}

static ssize_t native_write(struct zns_dev *dev, uint32_t z, uint64_t off,
                            const void *buf, size_t len)
{
	return zns_io_pwrite(dev, buf, len, zone_start(dev, z) + off);
}

static ssize_t native_read(struct zns_dev *dev, uint32_t z, uint64_t off, void *buf,
                           size_t len)
{
	return zns_io_pread(dev, buf, len, zone_start(dev, z) + off);
}

static int native_flush(struct zns_dev *dev)
{
	return fdatasync(dev->fd) < 0 ? -errno : 0;
}

static void native_close(struct zns_dev *dev)
{
	struct native *nd = dev->priv;

	if (dev->fd >= 0)
		zbd_close(dev->fd);
	dev->fd = -1;
	if (nd) {
		pthread_mutex_destroy(&nd->rep_lock);
		free(nd->rep);
		free(nd);
	}
	dev->priv = NULL;
}

static const struct zns_ops native_ops = {
    .name = "native",
    .report = native_report,
    .mgmt = native_mgmt,
    .write = native_write,
    .read = native_read,
    .flush = native_flush,
    .close = native_close,
};

/* True when the running kernel has zone write plugging (6.10+). */
static bool kernel_plugs_zone_writes(void)
{
	struct utsname u;
	unsigned maj = 0, min = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%u.%u", &maj, &min) != 2)
		return false;
	return maj > 6 || (maj == 6 && min >= 10);
}

/* Before 6.10, writes to one zone stay ordered only under mq-deadline. */
static int check_scheduler(const char *path, int fd)
{
	char p[128], buf[256] = "";
	struct stat st;
	FILE *f;

	if (kernel_plugs_zone_writes())
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/queue/scheduler", major(st.st_rdev),
	         minor(st.st_rdev));
	f = fopen(p, "r");
	if (f) {
		if (!fgets(buf, sizeof(buf), f))
			buf[0] = 0;
		fclose(f);
	}
	if (strstr(buf, "[mq-deadline]"))
		return 0;
	f = fopen(p, "w");
	if (f) {
		bool ok = fputs("mq-deadline", f) >= 0;

		ok = (fclose(f) == 0) && ok;
		if (ok)
			return 0;
	}
	fprintf(stderr,
	        "zns: %s: this kernel (< 6.10) keeps zoned writes ordered only with the "
	        "mq-deadline I/O scheduler, and it could not be selected; run\n"
	        "  echo mq-deadline > %s\nas root, then retry\n",
	        path, p);
	return -EINVAL;
}

/* Finds the run of sequential zones and fills dev->geo from it. */
static int native_geometry(struct zns_dev *dev, struct native *nd)
{
	struct zbd_zone *zones = NULL;
	unsigned int nr = 0, first = 0, n = 0;
	uint64_t cap = UINT64_MAX;
	int ret = zbd_list_zones(dev->fd, 0, 0, ZBD_RO_ALL, &zones, &nr);

	if (ret != 0)
		return neg_errno(ret);
	while (first < nr && !zbd_zone_swr(&zones[first]))
		first++;
	while (first + n < nr && zbd_zone_swr(&zones[first + n])) {
		if (zones[first + n].capacity < cap)
			cap = zones[first + n].capacity;
		n++;
	}
	if (n == 0) {
		free(zones);
		return -EMEDIUMTYPE;
	}
	dev->geo = (struct zns_geometry){
	    .backend = ZNS_BACKEND_NATIVE,
	    .lba_size = nd->info.lblock_size,
	    .nr_zones = n,
	    .zone_size = nd->info.zone_size,
	    .zone_capacity = cap,
	    .max_open =
	        nd->info.max_nr_open_zones == UINT32_MAX ? 0 : nd->info.max_nr_open_zones,
	    .max_active = nd->info.max_nr_active_zones == UINT32_MAX
	                      ? 0
	                      : nd->info.max_nr_active_zones,
	    .first_zone_off = zones[first].start,
	};
	free(zones);
	nd->rep = calloc(n, sizeof(*nd->rep));
	return nd->rep ? 0 : -ENOMEM;
}

int zns_native_open_dev(const char *path, unsigned flags, struct zns_dev **out)
{
	struct zns_dev *dev = zns_dev_alloc(path, flags);
	struct native *nd = calloc(1, sizeof(*nd));
	int mode = (flags & ZNS_OPEN_RDONLY) ? O_RDONLY : O_RDWR;
	int ret = -ENOMEM;

	if (!dev || !nd) {
		free(nd);
		zns_dev_free(dev);
		return -ENOMEM;
	}
	pthread_mutex_init(&nd->rep_lock, NULL);
	dev->priv = nd;
	dev->ops = &native_ops;
	errno = 0;
	dev->fd = zbd_open(path, mode | O_DIRECT | O_CLOEXEC, &nd->info);
	if (dev->fd < 0) {
		ret = dev->fd == -1 && errno ? -errno : dev->fd;
		dev->fd = -1;
		goto out_free;
	}
	dev->direct = true;
	ret = zns_lock_excl(dev->fd, flags);
	if (ret == 0 && !(flags & ZNS_OPEN_RDONLY))
		ret = check_scheduler(path, dev->fd);
	if (ret == 0)
		ret = native_geometry(dev, nd);
	if (ret == 0)
		ret = zns_dev_setup(dev);
	if (ret < 0)
		goto out_free;
	*out = dev;
	return 0;
out_free:
	zns_close(dev);
	return ret;
}
