// SPDX-License-Identifier: MIT
/*
 * Write log reader and replay: indexes the records of a log written by
 * wlog.c (plus the MARK records a workload appended) and replays chosen
 * records on a device through the ordinary zns calls, so that the device's
 * own rules (write pointer, capacity, open/active limits) and its on-disk
 * state encoding apply unchanged to the rebuilt image.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/tslab_le.h"
#include "zns/zns_int.h"

struct zns_wlog_reader {
	uint8_t *map;
	size_t map_len;
	uint32_t lba_size, nr_zones;
	uint64_t zone_size;
	size_t n;
	uint64_t *pos; /* record header offsets in map */
	void *bounce;  /* aligned copy for apply, lba-sized blocks */
	size_t bounce_len;
};

static int index_records(struct zns_wlog_reader *r)
{
	size_t cap = 0;
	uint64_t off = ZNS_WLOG_HDR;

	while (off + ZNS_WLOG_REC <= r->map_len) {
		const uint8_t *h = r->map + off;
		uint32_t t = tslab_get32(h + 4), len = tslab_get32(h + 12);

		if (memcmp(h, "WREC", 4) || t < ZNS_WLOG_WRITE || t > ZNS_WLOG_MARK)
			return -EUCLEAN;
		if (off + ZNS_WLOG_REC + len > r->map_len)
			break; /* torn last record */
		if (r->n == cap) {
			uint64_t *p;

			cap = cap ? 2 * cap : 1024;
			p = realloc(r->pos, cap * sizeof(*p));
			if (!p)
				return -ENOMEM;
			r->pos = p;
		}
		r->pos[r->n++] = off;
		off += ZNS_WLOG_REC + len;
	}
	return 0;
}

int zns_wlog_reader_open(const char *path, struct zns_wlog_reader **out)
{
	struct zns_wlog_reader *r = calloc(1, sizeof(*r));
	struct stat sb;
	int fd, ret;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto free_r;
	}
	if (fstat(fd, &sb) < 0) {
		ret = -errno;
		goto close_fd;
	}
	ret = -EUCLEAN;
	if ((size_t)sb.st_size < ZNS_WLOG_HDR)
		goto close_fd;
	r->map_len = (size_t)sb.st_size;
	r->map = mmap(NULL, r->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (r->map == MAP_FAILED) {
		r->map = NULL;
		ret = -errno;
		goto close_fd;
	}
	close(fd);
	fd = -1;
	if (memcmp(r->map, "TSLABWLG", 8) || tslab_get32(r->map + 8) != 1)
		goto close_r;
	r->lba_size = tslab_get32(r->map + 12);
	r->nr_zones = tslab_get32(r->map + 16);
	r->zone_size = tslab_get64(r->map + 24);
	if (r->lba_size != 512 && r->lba_size != 4096)
		goto close_r;
	ret = index_records(r);
	if (ret)
		goto close_r;
	*out = r;
	return 0;

close_r:
	zns_wlog_reader_close(r);
	return ret;
close_fd:
	close(fd);
free_r:
	free(r);
	return ret;
}

void zns_wlog_reader_close(struct zns_wlog_reader *r)
{
	if (!r)
		return;
	if (r->map)
		munmap(r->map, r->map_len);
	free(r->pos);
	zns_buf_free(r->bounce);
	free(r);
}

size_t zns_wlog_count(const struct zns_wlog_reader *r)
{
	return r->n;
}

uint32_t zns_wlog_lba_size(const struct zns_wlog_reader *r)
{
	return r->lba_size;
}

int zns_wlog_get(const struct zns_wlog_reader *r, size_t i, struct zns_wlog_rec *out)
{
	const uint8_t *h;

	if (i >= r->n)
		return -ERANGE;
	h = r->map + r->pos[i];
	out->type = (enum zns_wlog_type)tslab_get32(h + 4);
	out->zone = tslab_get32(h + 8);
	out->len = tslab_get32(h + 12);
	out->off = tslab_get64(h + 16);
	out->payload = h + ZNS_WLOG_REC;
	return 0;
}

static int apply_write(struct zns_dev *dev, struct zns_wlog_reader *r,
                       const struct zns_wlog_rec *rec, uint32_t blocks)
{
	size_t len = rec->len;
	ssize_t n;

	if (blocks && (size_t)blocks * r->lba_size < len)
		len = (size_t)blocks * r->lba_size;
	if (len > r->bounce_len) {
		zns_buf_free(r->bounce);
		r->bounce = zns_buf_alloc(len);
		r->bounce_len = r->bounce ? len : 0;
		if (!r->bounce)
			return -ENOMEM;
	}
	memcpy(r->bounce, rec->payload, len);
	n = zns_zone_write(dev, rec->zone, rec->off, r->bounce, len);
	return n < 0 ? (int)n : 0;
}

int zns_wlog_apply(struct zns_dev *dev, struct zns_wlog_reader *r, size_t i,
                   uint32_t blocks)
{
	struct zns_wlog_rec rec;
	int ret = zns_wlog_get(r, i, &rec);

	if (ret)
		return ret;
	if (dev->geo.lba_size != r->lba_size || dev->geo.nr_zones != r->nr_zones ||
	    dev->geo.zone_size != r->zone_size)
		return -EINVAL;
	switch (rec.type) {
	case ZNS_WLOG_WRITE:
		return apply_write(dev, r, &rec, blocks);
	case ZNS_WLOG_RESET:
		return zns_zone_reset(dev, rec.zone);
	case ZNS_WLOG_FINISH:
		return zns_zone_finish(dev, rec.zone);
	default:
		return 0;
	}
}
