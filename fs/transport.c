/* SPDX-License-Identifier: MIT */
/*
 * transport: picks the backend (ops table) and runs its start/stop. The
 * /dev/fuse backend is libfuse's session loop with plain read(2) and
 * writev(2) of the device, plus the raw-request hooks (fs/rawreq.c) that
 * both backends share.
 */
#include <linux/fuse.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include "fs/fs_int.h"
#include "fs/transport_int.h"

static const struct tslab_transport_ops *cur;

static ssize_t dev_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t r = read(fd, buf, len);

	if (r > 0)
		tslab_rawreq_note(buf, (size_t)r);
	return r;
}

static ssize_t dev_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	const struct fuse_out_header *oh = iov[0].iov_base;

	if (count >= 1 && iov[0].iov_len >= sizeof(*oh) &&
	    tslab_rawreq_is_init_reply(oh->unique)) {
		bool ok = count == 2 && !oh->error &&
		          iov[1].iov_len >= sizeof(struct fuse_init_out);

		tslab_rawreq_init_reply(ok ? iov[1].iov_base : NULL);
	}
	return writev(fd, iov, count);
}

static int dev_start(struct fuse_session *se, enum tslab_transport_mode mode)
{
	static const struct fuse_custom_io io = {.read = dev_read, .writev = dev_writev};

	tslab_log(LOG_INFO, "transport: /dev/fuse (%s)",
	          mode == TSLAB_TRANSPORT_DEV ? "-o noio_uring" : "not root");
	return fuse_session_custom_io(se, &io, fuse_session_fd(se)) ? -EIO : 0;
}

static void dev_stop(void)
{
}

const struct tslab_transport_ops tslab_transport_dev_ops = {
    .name = "/dev/fuse", .start = dev_start, .stop = dev_stop};

int tslab_transport_start(struct fuse_session *se, enum tslab_transport_mode mode)
{
	/* By default only root's mounts use io_uring: root is who may turn
	 * the module parameter on, and unprivileged mounts stay as they were. */
	if (mode == TSLAB_TRANSPORT_DEV ||
	    (mode == TSLAB_TRANSPORT_AUTO && geteuid() != 0))
		cur = &tslab_transport_dev_ops;
	else
		cur = &tslab_transport_uring_ops;
	return cur->start(se, mode);
}

void tslab_transport_stop(void)
{
	if (cur)
		cur->stop();
	cur = NULL;
}
