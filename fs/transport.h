/* SPDX-License-Identifier: MIT */
/*
 * transport: how FUSE requests reach the daemon and replies go back.
 *
 * Two backends behind one small interface (an ops table in transport.c):
 *   /dev/fuse  libfuse's own session loop reads and writes the device;
 *   io_uring   FUSE-over-io_uring (Linux 6.14+): after INIT, per-CPU queues
 *              of ring entries carry requests and replies (fs/uring.c);
 *              FORGET, INTERRUPT and notifications stay on /dev/fuse, so the
 *              session loop keeps running underneath.
 *
 * Life cycle (main thread): tslab_transport_start() after
 * fuse_session_mount() and before the session loop; tslab_transport_stop()
 * after the loop returned. Exactly one session per process.
 */
#ifndef TSLAB_FS_TRANSPORT_H
#define TSLAB_FS_TRANSPORT_H

#include <fuse_lowlevel.h>
#include <stdbool.h>

enum tslab_transport_mode {
	TSLAB_TRANSPORT_AUTO,  /* io_uring when the kernel offers it and we are root */
	TSLAB_TRANSPORT_URING, /* -o io_uring: try it even when not root */
	TSLAB_TRANSPORT_DEV,   /* -o noio_uring: /dev/fuse only */
};

/* Choose and set up the backend for SE (mounted); 0 or negative errno. The
 * choice between io_uring and /dev/fuse is final only at INIT; a log line
 * names the transport in use then ("transport: io_uring ..." or
 * "transport: /dev/fuse ..."). */
int tslab_transport_start(struct fuse_session *se, enum tslab_transport_mode mode);

/* Stop the backend's threads and release its resources. */
void tslab_transport_stop(void);

/* For the handler of the request being decoded on this thread: whether the
 * kernel asked to clear setuid/setgid with it (FUSE_WRITE_KILL_SUIDGID of a
 * WRITE), which libfuse 3.14 does not pass on. Read it before the handler returns
 * (fs/rawreq.c). */
bool tslab_transport_kill_suidgid(void);

#endif
