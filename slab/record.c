// SPDX-License-Identifier: MIT
/*
 * Encoding of slab page headers and object records (layouts in
 * docs/format.md). Everything is little-endian and unaligned; every decode
 * verifies the checksum before trusting a field.
 */
#include <errno.h>
#include <xxhash.h>

#include "slab/slab_int.h"

uint64_t slab_hash64(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}

/* ---- page header (struct slab_page_hdr_disk) --------------------------- */

#define PH_HASHED SLAB_PH_OFF(epoch) /* the checksum covers [8, 32) */

void slab_page_hdr_encode(uint8_t *p, const struct slab_page_hdr *h)
{
	memcpy(p + SLAB_PH_OFF(magic), SLAB_PAGE_MAGIC, 4);
	tslab_put32(p + SLAB_PH_OFF(epoch), h->epoch);
	tslab_put16(p + SLAB_PH_OFF(used), h->used);
	tslab_put16(p + SLAB_PH_OFF(nrec), h->nrec);
	tslab_put64(p + SLAB_PH_OFF(seq), h->seq);
	tslab_put32(p + SLAB_PH_OFF(def_uid), h->def_uid);
	tslab_put32(p + SLAB_PH_OFF(def_gid), h->def_gid);
	tslab_put32(p + SLAB_PH_OFF(csum),
	            slab_hash32(p + PH_HASHED, SLAB_PAGE_HDR - PH_HASHED));
}

int slab_page_hdr_decode(const uint8_t *p, struct slab_page_hdr *h)
{
	if (memcmp(p + SLAB_PH_OFF(magic), SLAB_PAGE_MAGIC, 4) != 0)
		return -EUCLEAN;
	if (tslab_get32(p + SLAB_PH_OFF(csum)) !=
	    slab_hash32(p + PH_HASHED, SLAB_PAGE_HDR - PH_HASHED))
		return -EUCLEAN;
	h->epoch = tslab_get32(p + SLAB_PH_OFF(epoch));
	h->used = tslab_get16(p + SLAB_PH_OFF(used));
	h->nrec = tslab_get16(p + SLAB_PH_OFF(nrec));
	h->seq = tslab_get64(p + SLAB_PH_OFF(seq));
	h->def_uid = tslab_get32(p + SLAB_PH_OFF(def_uid));
	h->def_gid = tslab_get32(p + SLAB_PH_OFF(def_gid));
	if (h->used < SLAB_PAGE_HDR || h->used > SLAB_PAGE_SIZE)
		return -EUCLEAN;
	return 0;
}

/* ---- records (struct slab_rec_disk) -------------------------------------- */

#define RD_HASHED SLAB_RD_OFF(rtype) /* the checksum covers [4, len) */

static uint8_t rec_flags(const struct slab_rec *r, uint32_t duid, uint32_t dgid)
{
	uint8_t f = 0;

	if (r->rtype != SLAB_REC_OBJ)
		return 0;
	if (r->uid != duid || r->gid != dgid)
		f |= SLAB_RF_UIDGID;
	if (r->ctime_ns != r->mtime_ns)
		f |= SLAB_RF_CTIME;
	if (r->atime_ns != r->mtime_ns)
		f |= SLAB_RF_ATIME;
	if (r->size != r->data_len)
		f |= SLAB_RF_SIZE;
	if (r->nlink != 1)
		f |= SLAB_RF_NLINK;
	if (r->rdev != 0)
		f |= SLAB_RF_RDEV;
	if (r->flags & SLAB_RF_CHUNKED)
		f |= SLAB_RF_CHUNKED;
	if (r->flags & SLAB_RF_EXTENTS)
		f |= SLAB_RF_EXTENTS;
	return f;
}

static uint32_t ext_len(uint8_t f)
{
	uint32_t n = 0;

	n += (f & SLAB_RF_UIDGID) ? 8 : 0;
	n += (f & SLAB_RF_CTIME) ? 8 : 0;
	n += (f & SLAB_RF_ATIME) ? 8 : 0;
	n += (f & SLAB_RF_SIZE) ? 8 : 0;
	n += (f & SLAB_RF_NLINK) ? 4 : 0;
	n += (f & SLAB_RF_RDEV) ? 4 : 0;
	n += (f & SLAB_RF_CHUNKED) ? 8 : 0;
	n += (f & SLAB_RF_EXTENTS) ? 8 : 0;
	return n;
}

uint32_t slab_rec_len_at(const uint8_t *p)
{
	return SLAB_REC_HDR + ext_len(p[SLAB_RD_OFF(flags)]) + p[SLAB_RD_OFF(name_len)] +
	       tslab_get16(p + SLAB_RD_OFF(data_len));
}

uint32_t slab_rec_size(const struct slab_rec *r, uint32_t duid, uint32_t dgid)
{
	return SLAB_REC_HDR + ext_len(rec_flags(r, duid, dgid)) + r->name_len +
	       r->data_len;
}

int slab_rec_encode(uint8_t *p, size_t cap, const struct slab_rec *r, uint32_t duid,
                    uint32_t dgid)
{
	uint8_t f = rec_flags(r, duid, dgid);
	uint32_t len = SLAB_REC_HDR + ext_len(f) + r->name_len + r->data_len;
	uint8_t *q = p + SLAB_REC_HDR;

	if (len > cap)
		return -ENOSPC;
	p[SLAB_RD_OFF(rtype)] = r->rtype;
	p[SLAB_RD_OFF(kind)] = r->kind;
	p[SLAB_RD_OFF(name_len)] = r->name_len;
	p[SLAB_RD_OFF(flags)] = f;
	tslab_put16(p + SLAB_RD_OFF(mode), r->mode);
	tslab_put16(p + SLAB_RD_OFF(data_len), r->data_len);
	tslab_put64(p + SLAB_RD_OFF(handle), r->handle);
	tslab_put64(p + SLAB_RD_OFF(parent), r->parent);
	tslab_put64(p + SLAB_RD_OFF(seq), r->seq);
	tslab_put64(p + SLAB_RD_OFF(mtime_ns), (uint64_t)r->mtime_ns);
	if (f & SLAB_RF_UIDGID) {
		tslab_put32(q, r->uid);
		tslab_put32(q + 4, r->gid);
		q += 8;
	}
	if (f & SLAB_RF_CTIME) {
		tslab_put64(q, (uint64_t)r->ctime_ns);
		q += 8;
	}
	if (f & SLAB_RF_ATIME) {
		tslab_put64(q, (uint64_t)r->atime_ns);
		q += 8;
	}
	if (f & SLAB_RF_SIZE) {
		tslab_put64(q, r->size);
		q += 8;
	}
	if (f & SLAB_RF_NLINK) {
		tslab_put32(q, r->nlink);
		q += 4;
	}
	if (f & SLAB_RF_RDEV) {
		tslab_put32(q, r->rdev);
		q += 4;
	}
	if (f & SLAB_RF_CHUNKED) {
		tslab_put64(q, r->total);
		q += 8;
	}
	if (f & SLAB_RF_EXTENTS) {
		tslab_put64(q, r->dbase);
		q += 8;
	}
	if (r->name_len)
		memcpy(q, r->name, r->name_len);
	q += r->name_len;
	if (r->data_len)
		memcpy(q, r->data, r->data_len);
	tslab_put32(p + SLAB_RD_OFF(csum), slab_hash32(p + RD_HASHED, len - RD_HASHED));
	return (int)len;
}

/* Structural checks that do not depend on the checksum. */
static int rec_check_shape(const struct slab_rec *r)
{
	switch (r->rtype) {
	case SLAB_REC_OBJ:
		if ((r->flags & SLAB_RF_CHUNKED) && r->data_len)
			return -EUCLEAN;
		if ((r->flags & SLAB_RF_EXTENTS) &&
		    (r->data_len || (r->flags & SLAB_RF_CHUNKED) || !r->dbase))
			return -EUCLEAN;
		return (r->handle & 0xffffffffu) ? 0 : -EUCLEAN;
	case SLAB_REC_CHUNK:
		return (r->flags || r->name_len || !r->data_len ||
		        r->data_len > SLAB_CHUNK_MAX || !(r->handle & 0xffffffffu))
		           ? -EUCLEAN
		           : 0;
	case SLAB_REC_FDATA:
		return (r->flags || r->name_len || r->data_len > SLAB_FDATA_MAX ||
		        r->parent >= SLAB_FDATA_NIDX || !(r->handle & 0xffffffffu))
		           ? -EUCLEAN
		           : 0;
	case SLAB_REC_TOMB:
		return (r->flags || r->data_len || !(r->handle & 0xffffffffu)) ? -EUCLEAN
		                                                               : 0;
	case SLAB_REC_DROP:
		return (r->flags || r->data_len || r->handle || !r->parent) ? -EUCLEAN
		                                                            : 0;
	case SLAB_REC_EPOCH:
		return (r->flags || r->data_len || (r->handle & 0xffffffffffull) ||
		        !(r->handle >> 40))
		           ? -EUCLEAN
		           : 0;
	default:
		return -EUCLEAN;
	}
}

static const uint8_t *rec_decode_ext(const uint8_t *q, struct slab_rec *r, uint32_t duid,
                                     uint32_t dgid)
{
	uint8_t f = r->flags;

	r->uid = duid;
	r->gid = dgid;
	if (f & SLAB_RF_UIDGID) {
		r->uid = tslab_get32(q);
		r->gid = tslab_get32(q + 4);
		q += 8;
	}
	r->ctime_ns = r->atime_ns = r->mtime_ns;
	if (f & SLAB_RF_CTIME) {
		r->ctime_ns = (int64_t)tslab_get64(q);
		q += 8;
	}
	if (f & SLAB_RF_ATIME) {
		r->atime_ns = (int64_t)tslab_get64(q);
		q += 8;
	}
	r->size = r->data_len;
	if (f & SLAB_RF_SIZE) {
		r->size = tslab_get64(q);
		q += 8;
	}
	r->nlink = 1;
	if (f & SLAB_RF_NLINK) {
		r->nlink = tslab_get32(q);
		q += 4;
	}
	r->rdev = 0;
	if (f & SLAB_RF_RDEV) {
		r->rdev = tslab_get32(q);
		q += 4;
	}
	r->total = r->data_len;
	if (f & SLAB_RF_CHUNKED) {
		r->total = tslab_get64(q);
		q += 8;
	}
	r->dbase = 0;
	if (f & SLAB_RF_EXTENTS) {
		r->dbase = tslab_get64(q);
		q += 8;
	}
	return q;
}

int slab_rec_decode(const uint8_t *p, size_t avail, uint32_t duid, uint32_t dgid,
                    struct slab_rec *r)
{
	if (avail < SLAB_REC_HDR)
		return -EUCLEAN;
	r->rtype = p[SLAB_RD_OFF(rtype)];
	r->kind = p[SLAB_RD_OFF(kind)];
	r->name_len = p[SLAB_RD_OFF(name_len)];
	r->flags = p[SLAB_RD_OFF(flags)];
	if (r->flags & ~SLAB_RF_KNOWN)
		return -EUCLEAN;
	r->mode = tslab_get16(p + SLAB_RD_OFF(mode));
	r->data_len = tslab_get16(p + SLAB_RD_OFF(data_len));
	uint32_t len = SLAB_REC_HDR + ext_len(r->flags) + r->name_len + r->data_len;

	if (len > avail || len > SLAB_REC_MAX)
		return -EUCLEAN;
	if (tslab_get32(p + SLAB_RD_OFF(csum)) !=
	    slab_hash32(p + RD_HASHED, len - RD_HASHED))
		return -EUCLEAN;
	r->len = len;
	r->handle = tslab_get64(p + SLAB_RD_OFF(handle));
	r->parent = tslab_get64(p + SLAB_RD_OFF(parent));
	r->seq = tslab_get64(p + SLAB_RD_OFF(seq));
	r->mtime_ns = (int64_t)tslab_get64(p + SLAB_RD_OFF(mtime_ns));
	const uint8_t *q = rec_decode_ext(p + SLAB_REC_HDR, r, duid, dgid);

	r->name = (const char *)q;
	r->data = q + r->name_len;
	if (r->rtype == SLAB_REC_OBJ && (r->flags & SLAB_RF_CHUNKED) &&
	    r->total <= r->data_len)
		return -EUCLEAN;
	return rec_check_shape(r);
}

int slab_rec_copy(uint8_t *dst, size_t cap, const uint8_t *src, uint32_t len,
                  uint32_t suid, uint32_t sgid, uint32_t duid, uint32_t dgid)
{
	uint8_t f = src[SLAB_RD_OFF(flags)];

	if (src[SLAB_RD_OFF(rtype)] != SLAB_REC_OBJ || (f & SLAB_RF_UIDGID) ||
	    (suid == duid && sgid == dgid)) {
		if (len > cap)
			return -ENOSPC;
		memmove(dst, src, len);
		return (int)len;
	}
	/* The record relied on its page's defaults: make uid/gid explicit. */
	if (len + 8 > cap)
		return -ENOSPC;
	memmove(dst + SLAB_REC_HDR + 8, src + SLAB_REC_HDR, len - SLAB_REC_HDR);
	memmove(dst, src, SLAB_REC_HDR);
	dst[SLAB_RD_OFF(flags)] = f | SLAB_RF_UIDGID;
	tslab_put32(dst + SLAB_REC_HDR, suid);
	tslab_put32(dst + SLAB_REC_HDR + 4, sgid);
	tslab_put32(dst + SLAB_RD_OFF(csum),
	            slab_hash32(dst + RD_HASHED, len + 8 - RD_HASHED));
	return (int)(len + 8);
}
