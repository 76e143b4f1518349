/* SPDX-License-Identifier: MIT */
/*
 * transport: picks the backend (ops table) and runs its start/stop. The
 * /dev/fuse backend needs nothing beyond libfuse's session loop.
 */
#include <syslog.h>
#include <unistd.h>

#include "fs/fs_int.h"
#include "fs/transport_int.h"

static const struct tslab_transport_ops *cur;

static int dev_start(struct fuse_session *se, enum tslab_transport_mode mode)
{
	tslab_log(LOG_INFO, "transport: /dev/fuse (%s)",
	          mode == TSLAB_TRANSPORT_DEV ? "-o noio_uring" : "not root");
	return 0;
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
