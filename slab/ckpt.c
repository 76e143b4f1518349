// SPDX-License-Identifier: MIT
/*
 * Checkpoints: a compact, checksummed image of the slab index, written at
 * clean unmount into empty data zones and referenced from the superblock
 * (SLAB_FEAT_COMPAT_CKPT). Mount loads it instead of scanning every zone,
 * then rolls forward what was written after it (see mount.c).
 *
 * The image holds, for every live record, its place (zone, offset, length),
 * handle, sequence number and what the recovery callback needs without
 * reading the record (the header fields, the name and payloads of at most
 * SLAB_CKPT_INLINE bytes); for every pending drop the zones that hold
 * records of the dropped epoch; per data zone the write pointer and the
 * sequence number of its first page when the checkpoint was taken (a zone
 * reset and rewritten since has a different first page); per epoch slot the
 * highest generation used. Layout: docs/format.md, "Checkpoint".
 *
 * Written by the background thread once enough was written since the last
 * one (slab_ckpt_tick), and at clean unmount (then exact: the final sync
 * wrote every open page and emptied the journal). While running it is
 * fuzzy: zone write pointers are taken first; then, with the root epoch
 * lock held and each epoch's lock in turn, the epoch's open page is written
 * (so every record a slot names is on the device, and flushed before the
 * checkpoint is referenced) and its slots are copied; the records are read
 * back without locks, and a zone reset meanwhile is described as unknown
 * (mount scans it whole). Mount trusts an entry only below the write
 * pointer recorded for an unchanged zone, so whatever happened after the
 * start is rolled forward from the device. st->ck belongs to mount, the
 * background thread and unmount, in that order; its zones are ZS_META while
 * it is referenced.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <syslog.h>

#include "slab/slab_int.h"

#define CK_MAGIC  "TSCKPT\0\0"
#define CKZ_MAGIC "TSCKZONE"
#define CK_IO     (1024u * 1024u)

/* Header block of each checkpoint zone (little-endian; bytes 32..4095 are
 * zero). Encoded and decoded field by field at these offsets. */
struct slab_ckpt_zhdr {
	uint8_t magic[8]; /*  0 CKZ_MAGIC */
	uint64_t seq;     /*  8 checkpoint number */
	uint32_t index;   /* 16 this zone's place in the image */
	uint32_t nzones;  /* 20 zones of the image */
	uint64_t hash;    /* 24 XXH3-64 of bytes 0..23 */
};
_Static_assert(sizeof(struct slab_ckpt_zhdr) == 32, "checkpoint zone header");
_Static_assert(offsetof(struct slab_ckpt_zhdr, hash) == 24, "ckpt zone hash");

/* Image header (little-endian, at image offset 0). put_tables() and
 * img_parse() access the bytes at these offsets. */
struct slab_ckpt_hdr {
	uint8_t magic[8];       /*  0 CK_MAGIC */
	uint32_t version;       /*  8 image version, 1 */
	uint32_t nr_zones;      /* 12 must match the device */
	uint32_t first_data;    /* 16 must match the superblock */
	uint32_t neslots;       /* 20 epoch slots in the epoch table */
	uint64_t next_seq;      /* 24 next record sequence number */
	uint64_t next_page_seq; /* 32 next page sequence number */
	uint64_t nent;          /* 40 entries */
	uint64_t ckseq;         /* 48 checkpoint number */
	uint64_t zero;          /* 56 reserved, zero */
};
#define CKH(f) offsetof(struct slab_ckpt_hdr, f)
#define CK_HDR sizeof(struct slab_ckpt_hdr)
_Static_assert(sizeof(struct slab_ckpt_hdr) == 64, "checkpoint image header");
_Static_assert(CKH(version) == 8 && CKH(nr_zones) == 12 && CKH(first_data) == 16 &&
                   CKH(neslots) == 20 && CKH(next_seq) == 24 &&
                   CKH(next_page_seq) == 32 && CKH(nent) == 40 && CKH(ckseq) == 48 &&
                   CKH(zero) == 56,
               "checkpoint image header fields");

/* Zone table entry, one per data zone after the header. */
struct slab_ckpt_zt {
	uint64_t wp;         /* 0 write pointer then; 0: not described */
	uint64_t first_pseq; /* 8 sequence number of the page at offset 0 */
};
#define CKZT(f) offsetof(struct slab_ckpt_zt, f)
#define CK_ZT   sizeof(struct slab_ckpt_zt)
_Static_assert(sizeof(struct slab_ckpt_zt) == 16 && CKZT(first_pseq) == 8,
               "zone table entry");

/* Fixed part of an entry. */
struct slab_ckpt_ent_disk {
	uint8_t rtype;    /*  0 enum slab_rtype */
	uint8_t kind;     /*  1 */
	uint8_t name_len; /*  2 OBJ; else 0 */
	uint8_t inl;      /*  3 inline payload bytes, SLAB_CKPT_XHEAD, else 0 */
	uint16_t mode;    /*  4 */
	uint16_t len;     /*  6 encoded record length */
	uint32_t zone;    /*  8 */
	uint32_t off;     /* 12 offset in the zone */
	uint64_t handle;  /* 16 */
	uint64_t seq;     /* 24 */
	uint64_t aux;     /* 32 total / data base / chunk index / dropped epoch */
};
#define CKE(f) offsetof(struct slab_ckpt_ent_disk, f)
#define CK_ENT sizeof(struct slab_ckpt_ent_disk)
_Static_assert(sizeof(struct slab_ckpt_ent_disk) == 40, "checkpoint entry");
_Static_assert(CKE(kind) == 1 && CKE(name_len) == 2 && CKE(inl) == 3 && CKE(mode) == 4 &&
                   CKE(len) == 6 && CKE(zone) == 8 && CKE(off) == 12 &&
                   CKE(handle) == 16 && CKE(seq) == 24 && CKE(aux) == 32,
               "checkpoint entry fields");

/* OBJ extension, after the fixed part of an OBJ entry; name and inline
 * payload follow. */
struct slab_ckpt_obj_disk {
	uint64_t parent;   /*  0 */
	uint32_t uid;      /*  8 */
	uint32_t gid;      /* 12 */
	uint32_t nlink;    /* 16 */
	uint32_t rdev;     /* 20 */
	uint64_t size;     /* 24 */
	int64_t atime_ns;  /* 32 */
	int64_t mtime_ns;  /* 40 */
	int64_t ctime_ns;  /* 48 */
	uint64_t data_len; /* 56 payload length */
};
#define CKO(f) offsetof(struct slab_ckpt_obj_disk, f)
#define CK_OBJ sizeof(struct slab_ckpt_obj_disk)
_Static_assert(sizeof(struct slab_ckpt_obj_disk) == 64, "checkpoint OBJ extension");
_Static_assert(CKO(uid) == 8 && CKO(gid) == 12 && CKO(nlink) == 16 && CKO(rdev) == 20 &&
                   CKO(size) == 24 && CKO(atime_ns) == 32 && CKO(mtime_ns) == 40 &&
                   CKO(ctime_ns) == 48 && CKO(data_len) == 56,
               "checkpoint OBJ extension fields");

static void zhdr_encode(uint8_t *blk, uint64_t seq, uint32_t index, uint32_t nzones)
{
	memset(blk, 0, SLAB_PAGE_SIZE);
	memcpy(blk + offsetof(struct slab_ckpt_zhdr, magic), CKZ_MAGIC, 8);
	tslab_put64(blk + offsetof(struct slab_ckpt_zhdr, seq), seq);
	tslab_put32(blk + offsetof(struct slab_ckpt_zhdr, index), index);
	tslab_put32(blk + offsetof(struct slab_ckpt_zhdr, nzones), nzones);
	tslab_put64(blk + offsetof(struct slab_ckpt_zhdr, hash),
	            slab_hash64(blk, offsetof(struct slab_ckpt_zhdr, hash)));
}

/* 0 if BLK is the header of zone INDEX of checkpoint SEQ of NZONES zones:
 * magic, fields, checksum and zero reserved bytes; else -EUCLEAN. */
static int zhdr_check(const uint8_t *blk, uint64_t seq, uint32_t index, uint32_t nzones)
{
	if (!slab_ckpt_zone_hdr_ok(blk) ||
	    tslab_get64(blk + offsetof(struct slab_ckpt_zhdr, seq)) != seq ||
	    tslab_get32(blk + offsetof(struct slab_ckpt_zhdr, index)) != index ||
	    tslab_get32(blk + offsetof(struct slab_ckpt_zhdr, nzones)) != nzones)
		return -EUCLEAN;
	for (size_t i = sizeof(struct slab_ckpt_zhdr); i < SLAB_PAGE_SIZE; i++)
		if (blk[i])
			return -EUCLEAN;
	return 0;
}

/* ---- decoding ------------------------------------------------------------ */

void slab_ckpt_zone_get(const struct slab_ckpt_img *img, uint32_t z,
                        struct slab_ckpt_zone *out)
{
	const uint8_t *p = img->zt + (size_t)(z - img->first_data) * CK_ZT;

	out->wp = tslab_get64(p + CKZT(wp));
	out->first_pseq = tslab_get64(p + CKZT(first_pseq));
}

static void ent_obj_decode(const uint8_t *p, struct slab_ckpt_ent *e)
{
	e->parent = tslab_get64(p + CKO(parent));
	e->uid = tslab_get32(p + CKO(uid));
	e->gid = tslab_get32(p + CKO(gid));
	e->nlink = tslab_get32(p + CKO(nlink));
	e->rdev = tslab_get32(p + CKO(rdev));
	e->size = tslab_get64(p + CKO(size));
	e->atime_ns = (int64_t)tslab_get64(p + CKO(atime_ns));
	e->mtime_ns = (int64_t)tslab_get64(p + CKO(mtime_ns));
	e->ctime_ns = (int64_t)tslab_get64(p + CKO(ctime_ns));
	e->data_len = tslab_get64(p + CKO(data_len));
}

int slab_ckpt_next(const struct slab_ckpt_img *img, size_t *pos, struct slab_ckpt_ent *e)
{
	size_t at = *pos, left = img->len - at;
	const uint8_t *p = img->buf + at;

	if (at >= img->len)
		return 0;
	if (left < CK_ENT)
		return -EUCLEAN;
	memset(e, 0, sizeof(*e));
	e->rtype = p[CKE(rtype)];
	e->kind = p[CKE(kind)];
	e->name_len = p[CKE(name_len)];
	e->inl = p[CKE(inl)];
	e->mode = tslab_get16(p + CKE(mode));
	e->len = tslab_get16(p + CKE(len));
	e->zone = tslab_get32(p + CKE(zone));
	e->off = tslab_get32(p + CKE(off));
	e->handle = tslab_get64(p + CKE(handle));
	e->seq = tslab_get64(p + CKE(seq));
	e->aux = tslab_get64(p + CKE(aux));
	at += CK_ENT;
	if (e->rtype < SLAB_REC_OBJ || e->rtype > SLAB_REC_FDATA ||
	    e->zone < img->first_data || e->zone >= img->nzones ||
	    e->len < SLAB_REC_HDR || e->len > SLAB_REC_MAX)
		return -EUCLEAN;
	if (e->rtype == SLAB_REC_OBJ && e->inl == SLAB_CKPT_XHEAD) {
		/* extents head: aux is its data base, no inline payload */
		if (!e->aux || img->len - at < (size_t)CK_OBJ + e->name_len)
			return -EUCLEAN;
		e->xbase = e->aux;
		e->aux = 0;
		e->inl = 0;
		ent_obj_decode(img->buf + at, e);
		at += CK_OBJ;
		e->name = (const char *)img->buf + at;
		e->data = NULL;
		at += (size_t)e->name_len;
		if (e->data_len)
			return -EUCLEAN;
	} else if (e->rtype == SLAB_REC_OBJ) {
		if (img->len - at < (size_t)CK_OBJ + e->name_len + e->inl ||
		    e->inl > SLAB_CKPT_INLINE)
			return -EUCLEAN;
		ent_obj_decode(img->buf + at, e);
		at += CK_OBJ;
		e->name = (const char *)img->buf + at;
		e->data = img->buf + at + e->name_len;
		at += (size_t)e->name_len + e->inl;
		if (e->inl && e->inl != e->data_len)
			return -EUCLEAN;
	} else if (e->rtype == SLAB_REC_DROP || e->rtype == SLAB_REC_EPOCH) {
		if (e->name_len || e->inl || img->len - at < 4)
			return -EUCLEAN;
		e->nz = tslab_get32(img->buf + at);
		at += 4;
		if (e->nz > img->nzones || img->len - at < (size_t)e->nz * 4)
			return -EUCLEAN;
		e->zl = img->buf + at;
		at += (size_t)e->nz * 4;
	} else if (e->name_len || e->inl) {
		return -EUCLEAN;
	}
	*pos = at;
	return 1;
}

void slab_ckpt_img_free(struct slab_ckpt_img *img)
{
	free(img->buf);
	memset(img, 0, sizeof(*img));
}

/* Image header, tables and every entry well-formed for this store. */
static int img_parse(struct slab_store *st, struct slab_ckpt_img *img)
{
	const uint8_t *h = img->buf;
	struct slab_ckpt_ent e;
	size_t pos, ndata;
	uint64_t n = 0;
	int r;

	if (img->len < CK_HDR || memcmp(h + CKH(magic), CK_MAGIC, 8) ||
	    tslab_get32(h + CKH(version)) != 1)
		return -EUCLEAN;
	img->nzones = tslab_get32(h + CKH(nr_zones));
	img->first_data = tslab_get32(h + CKH(first_data));
	img->neslots = tslab_get32(h + CKH(neslots));
	img->seq = tslab_get64(h + CKH(next_seq));
	img->page_seq = tslab_get64(h + CKH(next_page_seq));
	img->nent = tslab_get64(h + CKH(nent));
	if (tslab_get64(h + CKH(zero))) /* reserved, zero */
		return -EUCLEAN;
	if (img->nzones != st->nzones || img->first_data != st->first_data ||
	    img->neslots > SLAB_EPOCH_SLOTS)
		return -EUCLEAN;
	ndata = img->nzones - img->first_data;
	if (img->len - CK_HDR < ndata * CK_ZT + img->neslots)
		return -EUCLEAN;
	img->zt = h + CK_HDR;
	img->egen = img->zt + ndata * CK_ZT;
	img->ent_off = CK_HDR + ndata * CK_ZT + img->neslots;
	pos = img->ent_off;
	while ((r = slab_ckpt_next(img, &pos, &e)) > 0)
		n++;
	return r < 0 || n != img->nent ? -EUCLEAN : 0;
}

int slab_ckpt_first_pseq(struct zns_dev *dev, uint32_t z, uint64_t *pseq)
{
	uint32_t lba = zns_geometry(dev)->lba_size;
	uint8_t *b = zns_buf_alloc(SLAB_PAGE_SIZE);
	struct slab_page_hdr ph;
	int ret = 0;

	if (!b)
		return -ENOMEM;
	*pseq = 0;
	ssize_t r =
	    zns_zone_read(dev, z, 0, b, lba < SLAB_PAGE_HDR ? SLAB_PAGE_HDR : lba);

	if (r < 0)
		ret = (int)r;
	else if (slab_page_hdr_decode(b, &ph) == 0)
		*pseq = ph.seq;
	zns_buf_free(b);
	return ret;
}

bool slab_ckpt_zone_hdr_ok(const uint8_t *b)
{
	const size_t hash_off = offsetof(struct slab_ckpt_zhdr, hash);

	return !memcmp(b, CKZ_MAGIC, 8) &&
	       tslab_get64(b + hash_off) == slab_hash64(b, hash_off);
}

/* Payload bytes one checkpoint zone holds after its header block. */
static uint64_t zone_payload(const struct slab_store *st)
{
	return st->geo.zone_capacity - SLAB_PAGE_SIZE;
}

static int load_zone(struct slab_store *st, const struct slab_ckpt_ref *ref, uint32_t i,
                     uint8_t *bounce, struct slab_ckpt_img *img)
{
	uint32_t z = ref->zones[i], lba = st->geo.lba_size;
	uint64_t at = (uint64_t)i * zone_payload(st);
	uint64_t n =
	    ref->bytes - at < zone_payload(st) ? ref->bytes - at : zone_payload(st);
	uint64_t need = SLAB_PAGE_SIZE + (n + lba - 1) / lba * lba;
	struct zns_zone rep;

	if (slab_dev_report(st, z, 1, &rep) != 1)
		return -EIO;
	if (rep.cond == ZNS_COND_EMPTY || rep.cond == ZNS_COND_OFFLINE ||
	    rep.cond == ZNS_COND_NOT_WP || (rep.cond != ZNS_COND_FULL && rep.wp < need))
		return -EUCLEAN;
	if (slab_dev_read(st, z, 0, bounce, SLAB_PAGE_SIZE) != SLAB_PAGE_SIZE)
		return -EIO;
	if (zhdr_check(bounce, ref->seq, i, ref->nzones))
		return -EUCLEAN;
	for (uint64_t done = 0; done < n;) {
		uint64_t piece = n - done < CK_IO ? n - done : CK_IO;
		uint64_t rd = (piece + lba - 1) / lba * lba;

		if (slab_dev_read(st, z, SLAB_PAGE_SIZE + done, bounce, rd) !=
		    (ssize_t)rd)
			return -EIO;
		memcpy(img->buf + at + done, bounce, piece);
		done += piece;
	}
	return 0;
}

int slab_ckpt_load(struct slab_store *st, const struct slab_ckpt_ref *ref,
                   struct slab_ckpt_img *img)
{
	uint8_t *bounce;
	int ret = 0;

	memset(img, 0, sizeof(*img));
	if (!ref->bytes || ref->bytes > (uint64_t)ref->nzones * zone_payload(st) ||
	    ref->bytes <= (uint64_t)(ref->nzones - 1) * zone_payload(st) ||
	    ref->bytes > UINT32_MAX)
		return -EUCLEAN;
	img->len = ref->bytes;
	img->buf = malloc(img->len);
	bounce = zns_buf_alloc(CK_IO);
	if (!img->buf || !bounce) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < ref->nzones && !ret; i++)
		ret = load_zone(st, ref, i, bounce, img);
	if (!ret && slab_hash64(img->buf, img->len) != ref->csum)
		ret = -EUCLEAN;
	if (!ret)
		ret = img_parse(st, img);
out:
	zns_buf_free(bounce);
	if (ret)
		slab_ckpt_img_free(img);
	return ret;
}

/* ---- building ----------------------------------------------------------- */

/*
 * The writer's growable buffers are mapped, not malloc'd: they are large,
 * short-lived and built on the background thread, whose malloc arena kept
 * their pages resident once freed (slab_bench memory: the heap grew by
 * ~120 KiB per create/fill/drop cycle, +490 % RSS after 300 cycles).
 */
static void *map_grow(void *p, size_t old, size_t len)
{
	void *q = p ? mremap(p, old, len, MREMAP_MAYMOVE)
	            : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	                   -1, 0);

	return q == MAP_FAILED ? NULL : q;
}

static void map_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

struct ckbuf {
	uint8_t *p;
	size_t len, cap;
};

static uint8_t *ckb_put(struct ckbuf *b, size_t n)
{
	if (b->len + n > b->cap) {
		size_t ncap = b->cap ? b->cap : 1u << 20;

		while (ncap < b->len + n)
			ncap *= 2;
		uint8_t *q = map_grow(b->p, b->cap, ncap);

		if (!q)
			return NULL;
		b->p = q;
		b->cap = ncap;
	}
	b->len += n;
	return b->p + b->len - n;
}

enum { W_HEAD, W_CHUNK, W_DROP, W_FDATA };

/* A record the checkpoint must describe, before it is read back. */
struct went {
	uint32_t zone, off;
	uint16_t len;
	uint8_t what;
	uint32_t key_epoch, key_slot; /* HEAD/CHUNK: epoch id and slot */
	uint64_t aux;                 /* CHUNK: index; DROP: dropped epoch */
	uint32_t zl, nz;              /* EPOCH marker, DROP: zone list in the pool */
};

/* What the snapshot took (under the locks) and the zone state it started from. */
struct snap {
	struct went *v;
	size_t n, cap;
	uint32_t *pool; /* zone lists */
	size_t npool, pool_cap;
	uint64_t *wp, *pseq; /* per zone, at the start */
	uint32_t *gen;
	uint8_t *egen;
	uint32_t neslots;
	uint64_t seq, page_seq;
};

static int wpush(struct snap *w, const struct went *e)
{
	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 4096;
		struct went *n = map_grow(w->v, w->cap * sizeof(*n), ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		w->v = n;
		w->cap = ncap;
	}
	w->v[w->n++] = *e;
	return 0;
}

/* Copy the zones of EZ not reset since into the pool; X names them. */
static int pool_zones(struct slab_store *st, struct snap *w, const struct slab_ezone *ez,
                      uint32_t ez_n, struct went *x)
{
	if (w->npool + ez_n > w->pool_cap) {
		size_t ncap = w->pool_cap ? w->pool_cap * 2 : 1024;

		while (ncap < w->npool + ez_n)
			ncap *= 2;
		uint32_t *n =
		    map_grow(w->pool, w->pool_cap * sizeof(*n), ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		w->pool = n;
		w->pool_cap = ncap;
	}
	x->zl = (uint32_t)w->npool;
	pthread_mutex_lock(&st->zlock);
	for (uint32_t i = 0; i < ez_n; i++)
		if (st->zones[ez[i].zone].gen == ez[i].zgen)
			w->pool[w->npool++] = ez[i].zone;
	pthread_mutex_unlock(&st->zlock);
	x->nz = (uint32_t)w->npool - x->zl;
	return 0;
}

static int went_cmp(const void *a, const void *b)
{
	const struct went *x = a, *y = b;

	if (x->zone != y->zone)
		return x->zone < y->zone ? -1 : 1;
	return x->off < y->off ? -1 : (x->off > y->off);
}

static bool on_data_zone(const struct slab_store *st, struct slab_loc l)
{
	return l.zone >= st->first_data && l.zone < st->nzones;
}

/* The chunks of a live chunked slot. */
static int snap_chunks(struct slab_store *st, struct snap *w, const struct slab_slot *sl,
                       struct went x)
{
	const struct slab_chunks *ch = slab_slot_chunks(sl);

	for (uint32_t c = 0; ch && c < ch->n; c++) {
		uint64_t left = ch->total - (uint64_t)c * SLAB_CHUNK_MAX;

		x.zone = ch->loc[c].zone;
		x.off = ch->loc[c].off;
		x.len = (uint16_t)(SLAB_REC_HDR +
		                   (left < SLAB_CHUNK_MAX ? left : SLAB_CHUNK_MAX));
		x.what = W_CHUNK;
		x.aux = c;
		if (!on_data_zone(st, ch->loc[c]))
			return -EAGAIN;
		if (wpush(w, &x))
			return -ENOMEM;
	}
	return 0;
}

/* The chunk records (data and holes) of a live extents slot. */
static int snap_fdata(struct slab_store *st, struct snap *w, struct slab_fmap *fm,
                      struct went x)
{
	struct slab_fent *fe;

	for (uint64_t i = 0; (fe = slab_fmap_next(fm, &i, false)); i++) {
		x.zone = fe->loc.zone;
		x.off = fe->loc.off;
		x.len = fe->len;
		x.what = W_FDATA;
		x.aux = i;
		if (!on_data_zone(st, fe->loc))
			return -EAGAIN;
		if (wpush(w, &x))
			return -ENOMEM;
	}
	return 0;
}

/*
 * Every record named by a slot or chunk table of open epoch E (locked). Its
 * open page is written first, so that every record it names is on the
 * device (and flushed before the checkpoint is referenced). -EAGAIN when
 * the epoch is being dropped or a record is elsewhere.
 */
static int snap_epoch(struct slab_store *st, struct snap *w, struct slab_epoch *e)
{
	int ret;

	if (e->state == EPOCH_CLOSING)
		return -EAGAIN;
	w->egen[e->eslot] = e->state == EPOCH_FREE ? e->gen
	                    : e->gen == 0xff       ? 0xff
	                                           : (uint8_t)(e->gen + 1);
	if (e->state != EPOCH_OPEN)
		return 0;
	if (e->page.nrec && (ret = slab_page_write(st, e, false)))
		return ret;
	for (uint32_t i = 0; i < e->nslots; i++) {
		struct slab_slot *sl = slab_slot_get(e, i);
		struct went x = {.zone = sl->loc.zone,
		                 .off = sl->loc.off,
		                 .len = sl->len,
		                 .what = W_HEAD,
		                 .key_epoch = slab_epoch_id(e->eslot, e->gen),
		                 .key_slot = i};

		if (sl->loc.zone == SLAB_LOC_NONE)
			continue;
		if (!on_data_zone(st, sl->loc))
			return -EAGAIN;
		if (i == 0 && (ret = pool_zones(st, w, e->ez, e->ez_n, &x)))
			return ret;
		if ((ret = wpush(w, &x)))
			return ret;
		if (sl->state == SLOT_LIVE && slab_slot_chunks(sl) &&
		    (ret = snap_chunks(st, w, sl, x)))
			return ret;
		if (sl->state == SLOT_LIVE && slab_slot_fmap(sl) &&
		    (ret = snap_fdata(st, w, slab_slot_fmap(sl), x)))
			return ret;
	}
	return 0;
}

/* Pending drops (root epoch locked). -EAGAIN while one is not complete. */
static int snap_drops(struct slab_store *st, struct snap *w)
{
	for (uint32_t i = 0; i < st->ndrops; i++) {
		const struct slab_drop *d = &st->drops[i];
		struct went x = {.zone = d->loc.zone,
		                 .off = d->loc.off,
		                 .len = d->len,
		                 .what = W_DROP,
		                 .aux = d->epoch};
		int ret;

		/* a drop not ready has no zone list yet */
		if (!d->ready || !on_data_zone(st, d->loc))
			return -EAGAIN;
		if ((ret = pool_zones(st, w, d->ez, d->ez_n, &x)) || (ret = wpush(w, &x)))
			return ret;
	}
	return 0;
}

/* Zone state at the start: write pointer, generation, first page. */
static int snap_zones(struct slab_store *st, struct snap *w)
{
	pthread_mutex_lock(&st->zlock);
	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		const struct slab_zone *zn = &st->zones[z];
		bool data =
		    zn->state == ZS_OPEN || zn->state == ZS_FULL || zn->state == ZS_GC;

		w->wp[z] = data ? zn->wp : 0;
		w->gen[z] = zn->gen;
	}
	pthread_mutex_unlock(&st->zlock);
	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		if (!w->wp[z])
			continue;
		int ret = slab_ckpt_first_pseq(st->dev, z, &w->pseq[z]);

		if (ret)
			return ret;
		if (!w->pseq[z])
			w->wp[z] = 0; /* unreadable first page: scanned whole */
	}
	return 0;
}

/* Take the snapshot: root epoch lock, then every epoch's in slot order. */
static int snapshot(struct slab_store *st, struct snap *w)
{
	struct slab_epoch *root = st->etab[0];
	int ret = snap_zones(st, w);

	if (ret)
		return ret;
	pthread_mutex_lock(&root->lock);
	w->neslots = st->neslots;
	for (uint32_t s = 0; s < w->neslots && !ret; s++) {
		struct slab_epoch *e = st->etab[s];

		if (s)
			pthread_mutex_lock(&e->lock);
		ret = snap_epoch(st, w, e);
		if (s)
			pthread_mutex_unlock(&e->lock);
	}
	if (!ret)
		ret = snap_drops(st, w);
	pthread_mutex_unlock(&root->lock);
	w->seq = atomic_load(&st->seq);
	w->page_seq = atomic_load(&st->page_seq);
	return ret;
}

static bool rec_matches(const struct went *x, const struct slab_rec *r)
{
	uint64_t es = r->handle & ~0xff00000000ull;
	uint64_t want = ((uint64_t)x->key_epoch << 40) | x->key_slot;

	if (r->len != x->len)
		return false;
	switch (x->what) {
	case W_DROP:
		return r->rtype == SLAB_REC_DROP && r->parent == x->aux;
	case W_CHUNK:
		return r->rtype == SLAB_REC_CHUNK && es == want && r->parent == x->aux;
	case W_FDATA:
		return r->rtype == SLAB_REC_FDATA && es == want && r->parent == x->aux;
	default:
		if (x->key_slot == 0)
			return r->rtype == SLAB_REC_EPOCH && es == want;
		return (r->rtype == SLAB_REC_OBJ || r->rtype == SLAB_REC_TOMB) &&
		       es == want;
	}
}

/* Append the entry for record R found for X at (zone, off). */
static int put_entry(const struct snap *w, const struct went *x, const struct slab_rec *r,
                     struct ckbuf *b)
{
	bool obj = r->rtype == SLAB_REC_OBJ, chunked = r->flags & SLAB_RF_CHUNKED;
	bool xhead = obj && (r->flags & SLAB_RF_EXTENTS);
	bool zl = x->what == W_DROP || r->rtype == SLAB_REC_EPOCH;
	uint8_t inl = obj && !chunked && !xhead && r->data_len <= SLAB_CKPT_INLINE
	                  ? (uint8_t)r->data_len
	                  : 0;
	size_t n =
	    CK_ENT + (obj ? CK_OBJ + r->name_len + inl : 0) + (zl ? 4 + 4 * x->nz : 0);
	uint8_t *p = ckb_put(b, n);

	if (!p)
		return -ENOMEM;
	p[CKE(rtype)] = r->rtype;
	p[CKE(kind)] = r->kind;
	p[CKE(name_len)] = obj ? r->name_len : 0;
	p[CKE(inl)] = xhead ? SLAB_CKPT_XHEAD : inl;
	tslab_put16(p + CKE(mode), r->mode);
	tslab_put16(p + CKE(len), (uint16_t)r->len);
	tslab_put32(p + CKE(zone), x->zone);
	tslab_put32(p + CKE(off), x->off);
	tslab_put64(p + CKE(handle), r->handle);
	tslab_put64(p + CKE(seq), r->seq);
	tslab_put64(p + CKE(aux), obj ? (chunked ? r->total
	                                 : xhead ? r->dbase
	                                         : 0)
	                              : r->parent);
	p += CK_ENT;
	if (obj) {
		tslab_put64(p + CKO(parent), r->parent);
		tslab_put32(p + CKO(uid), r->uid);
		tslab_put32(p + CKO(gid), r->gid);
		tslab_put32(p + CKO(nlink), r->nlink);
		tslab_put32(p + CKO(rdev), r->rdev);
		tslab_put64(p + CKO(size), r->size);
		tslab_put64(p + CKO(atime_ns), (uint64_t)r->atime_ns);
		tslab_put64(p + CKO(mtime_ns), (uint64_t)r->mtime_ns);
		tslab_put64(p + CKO(ctime_ns), (uint64_t)r->ctime_ns);
		tslab_put64(p + CKO(data_len), chunked ? r->total : r->data_len);
		memcpy(p + CK_OBJ, r->name, r->name_len);
		if (inl)
			memcpy(p + CK_OBJ + r->name_len, r->data, inl);
	}
	if (zl) {
		tslab_put32(p, x->nz);
		for (uint32_t i = 0; i < x->nz; i++)
			tslab_put32(p + 4 + 4 * i, w->pool[x->zl + i]);
	}
	return 0;
}

static bool zone_reset_since(struct slab_store *st, const struct snap *w, uint32_t z)
{
	pthread_mutex_lock(&st->zlock);
	bool reset = st->zones[z].gen != w->gen[z];

	pthread_mutex_unlock(&st->zlock);
	return reset;
}

/*
 * Read the records [i, j) of one zone and append their entries. A zone
 * reset since the start (its records died meanwhile) is left out: 1.
 */
static int read_zone(struct slab_store *st, struct snap *w, size_t i, size_t j,
                     struct ckbuf *b)
{
	const struct went *v = w->v;
	uint32_t z = v[i].zone;
	size_t mark = b->len;
	struct slab_zscan zs;
	struct slab_page_hdr ph;
	const uint8_t *pg;
	uint64_t poff, end;
	int ret;

	pthread_mutex_lock(&st->zlock);
	end = st->zones[z].wp;
	pthread_mutex_unlock(&st->zlock);
	ret = slab_zscan_init(&zs, st->dev, z, end);
	if (ret)
		return ret;
	zs.st = st;
	/* A bad record ends the loop with its -EUCLEAN: the next page's result
	 * must not overwrite it (the image would count entries it lacks). */
	while (!ret && i < j && (ret = slab_zscan_next(&zs, &pg, &ph, &poff)) > 0) {
		ret = 0;
		for (; i < j && v[i].off < poff + ph.used && !ret; i++) {
			struct slab_rec r;
			uint32_t in = (uint32_t)(v[i].off - poff);

			if (v[i].off < poff + SLAB_PAGE_HDR ||
			    slab_rec_decode(pg + in, ph.used - in, ph.def_uid, ph.def_gid,
			                    &r) ||
			    !rec_matches(&v[i], &r))
				ret = -EUCLEAN;
			else
				ret = put_entry(w, &v[i], &r, b);
		}
	}
	slab_zscan_fini(&zs);
	if (!ret && i < j)
		ret = -EUCLEAN; /* a live record past the readable pages */
	if (ret && ret != -ENOMEM && zone_reset_since(st, w, z)) {
		b->len = mark;
		w->wp[z] = 0;
		return 1;
	}
	return ret;
}

/* Header, zone table and epoch generations, in front of the entries. */
static void put_tables(struct slab_store *st, const struct snap *w, struct ckbuf *b,
                       uint64_t ckseq, uint64_t nent)
{
	uint32_t ndata = st->nzones - st->first_data;
	uint8_t *h = b->p;

	memset(h, 0, CK_HDR);
	memcpy(h + CKH(magic), CK_MAGIC, 8);
	tslab_put32(h + CKH(version), 1);
	tslab_put32(h + CKH(nr_zones), st->nzones);
	tslab_put32(h + CKH(first_data), st->first_data);
	tslab_put32(h + CKH(neslots), w->neslots);
	tslab_put64(h + CKH(next_seq), w->seq);
	tslab_put64(h + CKH(next_page_seq), w->page_seq);
	tslab_put64(h + CKH(nent), nent);
	tslab_put64(h + CKH(ckseq), ckseq);
	for (uint32_t z = st->first_data; z < st->nzones; z++) {
		uint8_t *p = h + CK_HDR + (size_t)(z - st->first_data) * CK_ZT;

		/* a zone reset since the start is described as unknown */
		tslab_put64(p + CKZT(wp), zone_reset_since(st, w, z) ? 0 : w->wp[z]);
		tslab_put64(p + CKZT(first_pseq), w->pseq[z]);
	}
	memcpy(h + CK_HDR + (size_t)ndata * CK_ZT, w->egen, w->neslots);
}

static void snap_free(struct snap *w)
{
	map_free(w->v, w->cap * sizeof(*w->v));
	map_free(w->pool, w->pool_cap * sizeof(*w->pool));
	free(w->wp);
	free(w->pseq);
	free(w->gen);
	free(w->egen);
}

/* Snapshot, read back and encode: the whole image in B. */
static int build(struct slab_store *st, uint64_t ckseq, struct ckbuf *b)
{
	struct snap w = {.wp = calloc(st->nzones, sizeof(uint64_t)),
	                 .pseq = calloc(st->nzones, sizeof(uint64_t)),
	                 .gen = calloc(st->nzones, sizeof(uint32_t)),
	                 .egen = calloc(SLAB_EPOCH_SLOTS, 1)};
	uint64_t nent = 0;
	size_t pre;
	int ret = -ENOMEM;

	if (!w.wp || !w.pseq || !w.gen || !w.egen)
		goto out;
	ret = snapshot(st, &w);
	if (ret)
		goto out;
	if (w.n > 1)
		qsort(w.v, w.n, sizeof(*w.v), went_cmp);
	pre = CK_HDR + (size_t)(st->nzones - st->first_data) * CK_ZT + w.neslots;
	if (!ckb_put(b, pre)) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0, j; i < w.n && ret >= 0; i = j) {
		for (j = i + 1; j < w.n && w.v[j].zone == w.v[i].zone; j++)
			;
		ret = read_zone(st, &w, i, j, b);
		if (ret == 0)
			nent += j - i;
	}
	if (ret >= 0) {
		ret = 0;
		put_tables(st, &w, b, ckseq, nent);
	}
out:
	snap_free(&w);
	return ret;
}

/* ---- writing --------------------------------------------------------------- */

/* Take N empty data zones for a checkpoint, keeping the GC reserve. */
static int take_zones(struct slab_store *st, uint32_t n, uint32_t *out)
{
	uint32_t got = 0;

	pthread_mutex_lock(&st->zlock);
	if (atomic_load(&st->zones_free) < n + st->reserve) {
		pthread_mutex_unlock(&st->zlock);
		return -ENOSPC;
	}
	for (uint32_t z = st->first_data; z < st->nzones && got < n; z++) {
		if (st->zones[z].state != ZS_FREE || st->zones[z].ro)
			continue;
		st->zones[z].state = ZS_META;
		atomic_fetch_sub(&st->zones_free, 1);
		out[got++] = z;
	}
	pthread_mutex_unlock(&st->zlock);
	return got == n ? 0 : -ENOSPC;
}

/* Reset checkpoint zones back to empty data zones. */
static int free_zones(struct slab_store *st, const uint32_t *zones, uint32_t n)
{
	int ret = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct slab_zone *zn = &st->zones[zones[i]];
		int r = slab_dev_reset(st, zones[i]);

		pthread_mutex_lock(&st->zlock);
		if (!r) {
			zn->state = ZS_FREE;
			zn->wp = 0;
			zn->gen++;
			atomic_fetch_add(&st->zones_free, 1);
			atomic_fetch_add(&st->c_resets, 1);
		} else {
			zn->state = ZS_FULL; /* reclaimed like any dead zone later */
			ret = ret ? ret : r;
		}
		pthread_mutex_unlock(&st->zlock);
	}
	return ret;
}

/* An active-zone slot for a checkpoint zone: within the budget while the
 * store runs; at unmount the (empty) journal zone's slot is free too. */
static int zone_activate(struct slab_store *st, bool running)
{
	int ret = 0;

	pthread_mutex_lock(&st->zlock);
	if (st->active >= st->budget + (running ? 0 : 1))
		ret = -EBUSY;
	else
		st->active++;
	pthread_mutex_unlock(&st->zlock);
	return ret;
}

static void zone_deactivate(struct slab_store *st)
{
	pthread_mutex_lock(&st->zlock);
	st->active--;
	pthread_mutex_unlock(&st->zlock);
}

/* A superblock copy, through the I/O fence. */
static int sb_write_fenced(struct slab_store *st, const struct slab_ckpt_ref *ref)
{
	int ret;

	pthread_mutex_lock(&st->sblock);
	pthread_rwlock_rdlock(&st->iolock);
	st->sb.sequence++;
	ret = st->fenced ? -EIO : slab_sb_write_ckpt(st->dev, &st->sb, ref);
	pthread_rwlock_unlock(&st->iolock);
	pthread_mutex_unlock(&st->sblock);
	return ret;
}

static int write_zone(struct slab_store *st, const struct ckbuf *b,
                      const struct slab_ckpt_ref *ref, uint32_t i, uint8_t *bounce)
{
	uint32_t z = ref->zones[i], lba = st->geo.lba_size;
	uint64_t at = (uint64_t)i * zone_payload(st);
	uint64_t n = b->len - at < zone_payload(st) ? b->len - at : zone_payload(st);
	uint64_t wp = 0;

	zhdr_encode(bounce, ref->seq, i, ref->nzones);
	if (slab_dev_write(st, z, 0, bounce, SLAB_PAGE_SIZE) != SLAB_PAGE_SIZE)
		return -EIO;
	wp = SLAB_PAGE_SIZE;
	for (uint64_t done = 0; done < n;) {
		uint64_t piece = n - done < CK_IO ? n - done : CK_IO;
		uint64_t wr = (piece + lba - 1) / lba * lba;

		memset(bounce + piece, 0, wr - piece);
		memcpy(bounce, b->p + at + done, piece);
		if (slab_dev_write(st, z, wp, bounce, wr) != (ssize_t)wr)
			return -EIO;
		wp += wr;
		done += piece;
	}
	atomic_fetch_add(&st->c_dev, wp);
	/* Give back the active-zone resource. */
	return wp < st->geo.zone_capacity ? slab_dev_finish(st, z) : 0;
}

/* Zones one after the other (one active at a time), flush, superblock. */
static int write_image(struct slab_store *st, const struct ckbuf *b,
                       struct slab_ckpt_ref *ref, bool running)
{
	uint8_t *bounce = map_grow(NULL, 0, CK_IO);
	int ret = 0;

	if (!bounce)
		return -ENOMEM;
	for (uint32_t i = 0; i < ref->nzones && !ret; i++) {
		ret = zone_activate(st, running);
		if (ret)
			break;
		ret = write_zone(st, b, ref, i, bounce);
		zone_deactivate(st); /* full, finished, or reset by the caller */
	}
	map_free(bounce, CK_IO);
	if (!ret)
		ret = slab_dev_flush(st);
	if (!ret)
		ret = sb_write_fenced(st, ref);
	return ret;
}

int slab_ckpt_write(struct slab_store *st, bool running)
{
	struct slab_ckpt_ref *ref = calloc(1, sizeof(*ref));
	struct ckbuf b = {0};
	int ret;

	if (!ref)
		return -ENOMEM;
	pthread_mutex_lock(&st->dmglock);
	ret = st->damaged ? -EUCLEAN : 0;
	pthread_mutex_unlock(&st->dmglock);
	if (ret) {
		/* never describe a damaged view: the next mount scans instead */
		free(ref);
		return ret;
	}
	ref->version = SLAB_CKPT_VERSION;
	ref->seq = ++st->ck_last; /* never reused, even after a release */
	ret = build(st, ref->seq, &b);
	if (ret)
		goto out;
	ref->bytes = b.len;
	ref->csum = slab_hash64(b.p, b.len);
	uint64_t nz = (b.len + zone_payload(st) - 1) / zone_payload(st);

	if (nz > SLAB_CKPT_MAXZ || b.len > UINT32_MAX) {
		ret = -E2BIG;
		goto out;
	}
	ref->nzones = (uint32_t)nz;
	/* while running, only with room for it next to the current one */
	if (running && !slab_ckpt_room(st, ref->nzones + (st->ck ? st->ck->nzones : 0))) {
		ret = -ENOSPC;
		goto out;
	}
	ret = take_zones(st, ref->nzones, ref->zones);
	if (ret)
		goto out;
	ret = write_image(st, &b, ref, running);
	if (ret) {
		free_zones(st, ref->zones, ref->nzones);
		goto out;
	}
	/* The new checkpoint is referenced: the old one is dead. */
	if (st->ck)
		free_zones(st, st->ck->zones, st->ck->nzones);
	free(st->ck);
	st->ck = ref;
	ref = NULL;
out:
	if (ret)
		syslog(LOG_WARNING, "tslabfs: slab: no checkpoint written: %s",
		       strerror(-ret));
	map_free(b.p, b.cap);
	free(ref);
	return ret;
}

int slab_ckpt_release(struct slab_store *st)
{
	struct slab_ckpt_ref *ck = st->ck;
	int ret;

	if (!ck)
		return 0;
	ret = sb_write_fenced(st, NULL);
	if (ret)
		return ret;
	st->ck = NULL;
	ret = free_zones(st, ck->zones, ck->nzones);
	free(ck);
	return ret;
}

/*
 * Do checkpoints holding NZ zones leave GC its room? Live data may fill at
 * most two thirds of the data zones left after the reserve and NZ: GC on a
 * fuller device needs every zone (measured: tests/slab/test_slab_store.c
 * test_gc_full, 65 % live on 20 zones, gives up with one zone less).
 */
bool slab_ckpt_room(struct slab_store *st, uint32_t nz)
{
	uint64_t cap = st->geo.zone_capacity, live = 0;
	uint32_t ndata = st->nzones - st->first_data;

	if (nz + st->reserve + 4 >= ndata)
		return false;
	for (uint32_t z = st->first_data; z < st->nzones; z++)
		live += atomic_load(&st->zones[z].live);
	return live * 3 <= (uint64_t)(ndata - st->reserve - nz) * cap * 2;
}

/*
 * Checkpoint while running (background thread), once the device bytes
 * written since the last one reach max(SLAB_CKPT_EVERY zones, live bytes):
 * a crash then replays about that much, and reading the live records back
 * costs at most as much as was written. Only while GC keeps its room
 * (slab_ckpt_room); once live data grows into it, the current checkpoint
 * gives its zones back (the next mount scans).
 */
void slab_ckpt_tick(struct slab_store *st)
{
	uint64_t written = atomic_load(&st->c_dev), live = 0;
	uint64_t every = (uint64_t)SLAB_CKPT_EVERY * st->geo.zone_capacity;

	if (st->ro || st->fenced)
		return;
	if (st->ck && !slab_ckpt_room(st, st->ck->nzones)) {
		slab_ckpt_release(st);
		return;
	}
	if (written - st->ck_dev_mark < every)
		return;
	for (uint32_t z = st->first_data; z < st->nzones; z++)
		live += atomic_load(&st->zones[z].live);
	if (written - st->ck_dev_mark < live)
		return;
	st->ck_dev_mark = written; /* also after a failure: retried later */
	/* before any work (the snapshot writes the open pages): room for one
	 * as big as the current one next to it */
	if (slab_ckpt_room(st, st->ck ? 2 * st->ck->nzones : 1))
		slab_ckpt_write(st, true);
}
