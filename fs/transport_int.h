/* SPDX-License-Identifier: MIT */
/*
 * transport backends (private to transport.c and uring.c), and the
 * FUSE-over-io_uring kernel ABI that Debian 12's <linux/fuse.h> (7.38)
 * predates: layouts as in the kernel's include/uapi/linux/fuse.h (7.42+),
 * checked by the _Static_asserts below.
 */
#ifndef TSLAB_FS_TRANSPORT_INT_H
#define TSLAB_FS_TRANSPORT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/transport.h"

struct tslab_transport_ops {
	const char *name;
	int (*start)(struct fuse_session *se, enum tslab_transport_mode mode);
	void (*stop)(void);
};

extern const struct tslab_transport_ops tslab_transport_dev_ops;
extern const struct tslab_transport_ops tslab_transport_uring_ops;

/* rawreq.c, for both backends (see there): call tslab_rawreq_note() with
 * every request before libfuse decodes it, on the thread that decodes it;
 * a reply whose unique tslab_rawreq_is_init_reply() goes through
 * tslab_rawreq_init_reply() before it is written, with its fuse_init_out,
 * or NULL for an error reply. tslab_rawreq_offered(): the flags of the
 * kernel's INIT. */
struct fuse_init_out;
void tslab_rawreq_note(const void *buf, size_t len);
bool tslab_rawreq_is_init_reply(uint64_t unique);
void tslab_rawreq_init_reply(struct fuse_init_out *io);
uint64_t tslab_rawreq_offered(void);

/* INIT flag (bit 41, i.e. bit 9 of flags2) */
#define TSLAB_FUSE_OVER_IO_URING (1ull << 41)
#define TSLAB_FUSE_INIT_EXT      (1u << 30)

#define TSLAB_URING_IN_OUT_HEADER_SZ 128
#define TSLAB_URING_OP_IN_OUT_SZ     128

/* per entry, written by the kernel with a request, by us with the reply */
struct tslab_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;  /* = the request's unique; echoed by the commit */
	uint32_t payload_sz; /* bytes valid in the payload buffer */
	uint32_t padding;
	uint64_t reserved;
};

/* iov[0] of an entry: fuse_in_header / fuse_out_header, the per-opcode
 * header of the request (its first argument), and the entry's in/out */
struct tslab_uring_req_header {
	char in_out[TSLAB_URING_IN_OUT_HEADER_SZ];
	char op_in[TSLAB_URING_OP_IN_OUT_SZ];
	struct tslab_uring_ent_in_out ring_ent_in_out;
};

enum {
	TSLAB_URING_CMD_REGISTER = 1,         /* register buffers, fetch a request */
	TSLAB_URING_CMD_COMMIT_AND_FETCH = 2, /* reply, fetch the next */
};

/* in the 80-byte command area of an SQE128 */
struct tslab_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid; /* the queue = the CPU whose requests it carries */
	uint8_t padding[6];
};

_Static_assert(sizeof(struct tslab_uring_ent_in_out) == 32, "ent_in_out is 32 bytes");
_Static_assert(offsetof(struct tslab_uring_ent_in_out, payload_sz) == 16, "payload_sz");
_Static_assert(sizeof(struct tslab_uring_req_header) == 288, "req_header is 288 bytes");
_Static_assert(offsetof(struct tslab_uring_req_header, ring_ent_in_out) == 256,
               "ring_ent_in_out follows op_in");
_Static_assert(sizeof(struct tslab_uring_cmd_req) == 24, "cmd_req is 24 bytes");
_Static_assert(offsetof(struct tslab_uring_cmd_req, qid) == 16, "qid");

#endif
