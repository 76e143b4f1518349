/* SPDX-License-Identifier: MIT */
/*
 * rawreq: what both transports do with the raw bytes of requests and of the
 * INIT reply, below libfuse 3.14, which predates FUSE_HANDLE_KILLPRIV_V2:
 *  - INIT: note the flags the kernel offers; the INIT reply gets
 *    FUSE_HANDLE_KILLPRIV_V2 added when offered. The kernel then marks the
 *    superblock SB_NOSEC: once it asked for security.capability (GETXATTR)
 *    it remembers "nothing to clear" per inode until that inode's
 *    attributes are next refreshed, instead of asking before every write
 *    and truncate; and it leaves the clearing of setuid/setgid to us
 *    (FUSE_WRITE_KILL_SUIDGID on WRITE, FATTR_KILL_SUIDGID on SETATTR,
 *    which libfuse passes on as FUSE_SET_ATTR_KILL_SUID). The third,
 *    FUSE_OPEN_KILL_SUIDGID on an OPEN or CREATE with O_TRUNC, never
 *    concerns us: OPEN is answered ENOSYS (no_open) and CREATE of an
 *    existing name EEXIST, so neither truncates; O_TRUNC of an existing
 *    file arrives as a SETATTR.
 *  - every request: before libfuse decodes it, the thread that will run
 *    its handler notes the kill flag libfuse does not pass on (write_flags
 *    of WRITE). Both transports decode a
 *    request on the thread that received it (libfuse's worker for
 *    /dev/fuse, the ring entry's thread for io_uring), so a thread-local
 *    is exact; a handler reads it before it returns to the loop.
 * No security.* attribute is ever stored (xattr.c keeps user.* only), so
 * "clear privileges" means the setuid and setgid bits.
 */
#include <linux/fuse.h>
#include <stdatomic.h>
#include <string.h>
#include <syslog.h>

#include "fs/fs_int.h"
#include "fs/transport_int.h"

#ifndef FUSE_HANDLE_KILLPRIV_V2
#error "<linux/fuse.h> 7.33 or newer is needed (FUSE_HANDLE_KILLPRIV_V2)"
#endif

static _Thread_local bool kill_suidgid; /* of the request on this thread */
static _Atomic uint64_t init_unique;    /* unique of INIT until its reply */
static _Atomic uint64_t init_offered;   /* flags of the kernel's INIT */

void tslab_rawreq_note(const void *buf, size_t len)
{
	const struct fuse_in_header *in = buf;
	const void *arg = in + 1;
	size_t alen = len >= sizeof(*in) ? len - sizeof(*in) : 0;

	kill_suidgid = false;
	if (len < sizeof(*in))
		return;
	switch (in->opcode) {
	case FUSE_WRITE:
		if (alen >= sizeof(struct fuse_write_in))
			kill_suidgid = ((const struct fuse_write_in *)arg)->write_flags &
			               FUSE_WRITE_KILL_SUIDGID;
		break;
	case FUSE_INIT:
		if (alen >= sizeof(struct fuse_init_in)) {
			const struct fuse_init_in *ii = arg;
			uint64_t flags = ii->flags;

			if (flags & TSLAB_FUSE_INIT_EXT)
				flags |= (uint64_t)ii->flags2 << 32;
			atomic_store(&init_offered, flags);
			atomic_store(&init_unique, in->unique);
		}
		break;
	default:
		break;
	}
}

bool tslab_rawreq_is_init_reply(uint64_t unique)
{
	uint64_t u = atomic_load(&init_unique);

	return u && u == unique;
}

uint64_t tslab_rawreq_offered(void)
{
	return atomic_load(&init_offered);
}

void tslab_rawreq_init_reply(struct fuse_init_out *io)
{
	atomic_store(&init_unique, 0);
	if (!io || !(atomic_load(&init_offered) & FUSE_HANDLE_KILLPRIV_V2))
		return;
	io->flags |= FUSE_HANDLE_KILLPRIV_V2;
	tslab_log(LOG_INFO, "killpriv_v2: the daemon clears setuid/setgid on "
	                    "write, truncate and chown");
}

bool tslab_transport_kill_suidgid(void)
{
	return kill_suidgid;
}
