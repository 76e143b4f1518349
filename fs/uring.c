/* SPDX-License-Identifier: MIT */
/*
 * uring: the FUSE-over-io_uring backend of the transport (Linux 6.14+).
 *
 * libfuse 3.14 knows nothing of it, so this sits between libfuse and the
 * kernel through fuse_session_custom_io():
 *  - read:   plain read(2) of /dev/fuse; notes each request (fs/rawreq.c:
 *            INIT, and the kill flags libfuse does not decode) and whether
 *            the kernel offers FUSE_OVER_IO_URING;
 *  - writev: the INIT reply gets FUSE_OVER_IO_URING (and, as on /dev/fuse,
 *            fs/rawreq.c's flags) added, and once the
 *            kernel took it the ring threads start and register; a reply
 *            whose unique belongs to a request fetched through a ring entry
 *            is copied into that entry and committed (COMMIT_AND_FETCH);
 *            everything else (replies to /dev/fuse requests, notifications
 *            with unique 0) is written to /dev/fuse as before.
 * Requests from a ring entry are decoded by libfuse
 * (fuse_session_process_buf) from a contiguous copy in the thread's own
 * buffer: in_header + per-opcode header + payload, as /dev/fuse delivers it.
 *
 * Threads and entries: the kernel has one queue per possible CPU (a request
 * goes to the queue of the CPU its task runs on) and is ready only when
 * every queue has an entry. We run URING_THREADS threads per queue, each
 * with its own small ring and exactly one entry, so a handler that blocks
 * holds only its own request (as a libfuse worker thread would).
 *
 * Buffer ownership (the invariant that keeps replies intact): an entry's
 * header and payload buffers belong to the kernel from the moment its
 * REGISTER or COMMIT_AND_FETCH is submitted until its CQE arrives; then to
 * the entry's thread, which copies the request out before decoding it,
 * until the reply is fully copied in and the commit submitted. A reply is
 * never built in place and a request is never read from the ring buffers
 * after its reply was committed.
 *
 * Lock order: ent->mu (serializes submissions to the entry's ring and the
 * commit of its reply; replies may come from any thread) is a leaf.
 */
#include <errno.h>
#include <linux/fuse.h>
#include <liburing.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>
#include <unistd.h>

#include "fs/fs_int.h"
#include "fs/transport_int.h"

#define URING_THREADS  4u   /* threads (= entries) per queue */
#define URING_STOP_TAG 1ull /* user_data of the NOP that stops a thread */

struct uring_ent {
	struct io_uring ring;
	pthread_mutex_t mu;
	pthread_t tid;
	bool started, ring_ok;
	unsigned qid;
	struct tslab_uring_req_header *hdr; /* iov[0], kernel-owned while fetching */
	char *payload;                      /* iov[1] */
	struct iovec iov[2];
	char *req; /* the thread's copy of the request being decoded */
	size_t req_sz;
	/* unique of the request fetched and not yet replied to, 0 if none */
	_Atomic uint64_t unique;
	uint64_t commit_id;
	int reg_err; /* registration result: 1 pending, 0 ok, <0 failed (U.reg_mu) */
};

static struct {
	struct fuse_session *se;
	enum tslab_transport_mode mode;
	int fd;
	/* whether the kernel's INIT (fs/rawreq.c) offers FUSE over io_uring */
	bool offered;
	struct uring_ent *ents;
	/* entries visible to ent_of(): published once initialized, cleared
	 * before they are freed */
	_Atomic unsigned nents;
	unsigned nqueues, nalloc;
	size_t payload_sz;
	pthread_mutex_t reg_mu;
	pthread_cond_t reg_cv;
	_Atomic uint64_t served; /* requests fetched through the rings */
} U = {.reg_mu = PTHREAD_MUTEX_INITIALIZER, .reg_cv = PTHREAD_COND_INITIALIZER};

static _Thread_local struct uring_ent *cur_ent;

/* ---- submissions (ent->mu held) ---------------------------------------- */

static struct io_uring_sqe *cmd_sqe(struct uring_ent *e, uint32_t op, uint64_t commit_id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);
	struct tslab_uring_cmd_req *cr;

	if (!sqe)
		return NULL;
	memset(sqe, 0, 128); /* SQE128: the command area is the second half */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = U.fd;
	sqe->cmd_op = op;
	sqe->user_data = (uint64_t)(uintptr_t)e;
	cr = (struct tslab_uring_cmd_req *)sqe->cmd;
	cr->qid = (uint16_t)e->qid;
	cr->commit_id = commit_id;
	if (op == TSLAB_URING_CMD_REGISTER) {
		sqe->addr = (uint64_t)(uintptr_t)e->iov;
		sqe->len = 2;
	}
	return sqe;
}

static int submit_cmd(struct uring_ent *e, uint32_t op, uint64_t commit_id)
{
	int r;

	if (!cmd_sqe(e, op, commit_id))
		return -EBUSY;
	r = io_uring_submit(&e->ring);
	return r < 0 ? r : r == 1 ? 0 : -EIO;
}

/* ---- replies ------------------------------------------------------------- */

/* Copy the reply in IOV into E and commit it; E->mu held. Returns the
 * bytes taken (writev's result) or -1 with errno. */
static ssize_t ent_commit(struct uring_ent *e, const struct iovec *iov, int count)
{
	size_t total = 0, off = 0, hdr = sizeof(struct fuse_out_header);
	char *dst = e->hdr->in_out;
	int r;

	for (int i = 0; i < count; i++)
		total += iov[i].iov_len;
	if (total < hdr || total - hdr > U.payload_sz) {
		errno = EINVAL;
		return -1;
	}
	/* the byte stream: out header into in_out, the rest into the payload */
	for (int i = 0; i < count; i++) {
		const char *src = iov[i].iov_base;

		for (size_t n = iov[i].iov_len; n;) {
			size_t k = off < hdr ? hdr - off : n;

			if (k > n)
				k = n;
			memcpy(dst, src, k);
			dst += k, src += k, off += k, n -= k;
			if (off == hdr)
				dst = e->payload;
		}
	}
	e->hdr->ring_ent_in_out.payload_sz = (uint32_t)(total - hdr);
	atomic_store(&e->unique, 0);
	r = submit_cmd(e, TSLAB_URING_CMD_COMMIT_AND_FETCH, e->commit_id);
	if (r < 0) {
		tslab_log(LOG_ERR, "io_uring: commit on queue %u: %s", e->qid,
		          strerror(-r));
		errno = -r;
		return -1;
	}
	return (ssize_t)total;
}

/* The entry holding the request UNIQUE, locked; NULL if none does. */
static struct uring_ent *ent_of(uint64_t unique)
{
	struct uring_ent *e = cur_ent;

	if (!e || atomic_load(&e->unique) != unique) {
		e = NULL;
		unsigned n = atomic_load(&U.nents);

		for (unsigned i = 0; i < n && !e; i++)
			if (atomic_load(&U.ents[i].unique) == unique)
				e = &U.ents[i];
		if (!e)
			return NULL;
	}
	pthread_mutex_lock(&e->mu);
	if (atomic_load(&e->unique) != unique) {
		pthread_mutex_unlock(&e->mu);
		return NULL;
	}
	return e;
}

/* ---- ring threads ---------------------------------------------------------- */

/* Copy the request E holds into E->req as /dev/fuse would deliver it.
 * Returns its length, or 0 when the kernel's header is inconsistent. */
static size_t ent_take_request(struct uring_ent *e)
{
	const struct fuse_in_header *in = (const void *)e->hdr->in_out;
	size_t psz = e->hdr->ring_ent_in_out.payload_sz, hsz = sizeof(*in), opsz;

	e->commit_id = e->hdr->ring_ent_in_out.commit_id;
	if (in->len < hsz + psz || psz > U.payload_sz)
		return 0;
	opsz = in->len - hsz - psz;
	if (opsz > TSLAB_URING_OP_IN_OUT_SZ)
		return 0;
	memcpy(e->req, in, hsz);
	memcpy(e->req + hsz, e->hdr->op_in, opsz);
	memcpy(e->req + hsz + opsz, e->payload, psz);
	return in->len;
}

static void ent_serve(struct uring_ent *e)
{
	const struct fuse_in_header *in = (const void *)e->hdr->in_out;
	size_t len = ent_take_request(e);
	struct fuse_buf buf = {.mem = e->req, .size = len};

	atomic_fetch_add(&U.served, 1);
	atomic_store(&e->unique, in->unique);
	if (!len) {
		struct fuse_out_header oh = {
		    .len = sizeof(oh), .error = -EIO, .unique = in->unique};
		struct iovec iov = {.iov_base = &oh, .iov_len = sizeof(oh)};

		tslab_log(LOG_ERR, "io_uring: malformed request (opcode %u) on queue %u",
		          in->opcode, e->qid);
		pthread_mutex_lock(&e->mu);
		ent_commit(e, &iov, 1);
		pthread_mutex_unlock(&e->mu);
		return;
	}
	tslab_rawreq_note(e->req, len);
	fuse_session_process_buf(U.se, &buf);
}

static void reg_report(struct uring_ent *e, int err)
{
	pthread_mutex_lock(&U.reg_mu);
	e->reg_err = err;
	pthread_cond_broadcast(&U.reg_cv);
	pthread_mutex_unlock(&U.reg_mu);
}

static void *ent_main(void *arg)
{
	struct uring_ent *e = arg;
	struct io_uring_cqe *cqe;
	int r;

	cur_ent = e;
	pthread_mutex_lock(&e->mu);
	r = submit_cmd(e, TSLAB_URING_CMD_REGISTER, 0);
	pthread_mutex_unlock(&e->mu);
	/* A REGISTER fails at once (a CQE now) or waits for a request. */
	if (!r && io_uring_peek_cqe(&e->ring, &cqe) == 0 && cqe->res < 0) {
		r = cqe->res;
		io_uring_cqe_seen(&e->ring, cqe);
	}
	reg_report(e, r);
	if (r)
		return NULL;
	for (;;) {
		r = io_uring_wait_cqe(&e->ring, &cqe);
		if (r == -EINTR)
			continue;
		if (r < 0)
			break;
		uint64_t tag = cqe->user_data;
		int res = cqe->res;

		io_uring_cqe_seen(&e->ring, cqe);
		if (tag == URING_STOP_TAG)
			break;
		if (res < 0) {
			/* ENOTCONN/ECONNABORTED: the connection is going away */
			if (res != -ENOTCONN && res != -ECONNABORTED && res != -ENODEV &&
			    res != -ECANCELED)
				tslab_log(LOG_ERR, "io_uring: queue %u entry lost: %s",
				          e->qid, strerror(-res));
			break;
		}
		ent_serve(e);
	}
	return NULL;
}

/* ---- set-up and tear-down -------------------------------------------------- */

static unsigned possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
	unsigned a, b, n = 0;
	int c;

	if (!f)
		return 0;
	/* "0-3,5,7-8" */
	while (fscanf(f, "%u", &a) == 1) {
		b = a;
		c = fgetc(f);
		if (c == '-') {
			if (fscanf(f, "%u", &b) != 1)
				break;
			c = fgetc(f);
		}
		n = b + 1 > n ? b + 1 : n;
		if (c != ',')
			break;
	}
	fclose(f);
	return n;
}

static int ent_init(struct uring_ent *e, unsigned qid)
{
	int r;

	e->qid = qid;
	pthread_mutex_init(&e->mu, NULL);
	e->req_sz =
	    sizeof(struct fuse_in_header) + TSLAB_URING_OP_IN_OUT_SZ + U.payload_sz;
	if (posix_memalign((void **)&e->hdr, 64, sizeof(*e->hdr)) ||
	    posix_memalign((void **)&e->payload, 4096, U.payload_sz) ||
	    !(e->req = malloc(e->req_sz)))
		return -ENOMEM;
	memset(e->hdr, 0, sizeof(*e->hdr));
	e->iov[0] = (struct iovec){e->hdr, sizeof(*e->hdr)};
	e->iov[1] = (struct iovec){e->payload, U.payload_sz};
	r = io_uring_queue_init(4, &e->ring, IORING_SETUP_SQE128);
	if (r)
		return r;
	e->ring_ok = true;
	return 0;
}

static void ents_free(void)
{
	atomic_store(&U.nents, 0);
	for (unsigned i = 0; i < U.nalloc; i++) {
		struct uring_ent *e = &U.ents[i];

		/* Closing the ring cancels its command: the kernel lets go of
		 * the buffers before they are freed. */
		if (e->ring_ok)
			io_uring_queue_exit(&e->ring);
		free(e->hdr);
		free(e->payload);
		free(e->req);
		pthread_mutex_destroy(&e->mu);
	}
	free(U.ents);
	U.ents = NULL;
	U.nalloc = 0;
}

static void ents_stop(void)
{
	for (unsigned i = 0; i < U.nalloc; i++) {
		struct uring_ent *e = &U.ents[i];
		struct io_uring_sqe *sqe;

		if (!e->started)
			continue;
		pthread_mutex_lock(&e->mu);
		sqe = io_uring_get_sqe(&e->ring);
		if (sqe) {
			io_uring_prep_nop(sqe);
			sqe->user_data = URING_STOP_TAG;
			io_uring_submit(&e->ring);
		}
		pthread_mutex_unlock(&e->mu);
	}
	for (unsigned i = 0; i < U.nalloc; i++)
		if (U.ents[i].started)
			pthread_join(U.ents[i].tid, NULL);
	ents_free();
}

/* After the kernel took our INIT reply: start and register the entries.
 * The kernel switches to the rings once every queue has an entry, and from
 * then on replies to ring requests must be committed through the rings
 * (ent_of() finds their entries as soon as the threads run). Returns the
 * number of entries registered (> 0: the rings carry the requests), or a
 * negative errno after undoing everything (no queue can have become ready:
 * some queue has no entry). */
static int rings_start(const struct fuse_init_out *io)
{
	size_t p = FUSE_MIN_READ_BUFFER;
	sigset_t all, old;
	unsigned *per_q, nreg = 0;
	int err = 0, first_err = 0;

	if (io->max_write > p)
		p = io->max_write;
	if ((size_t)io->max_pages * 4096 > p)
		p = (size_t)io->max_pages * 4096;
	U.payload_sz = (p + 4095) & ~(size_t)4095;
	U.nqueues = possible_cpus();
	if (!U.nqueues || U.nqueues > 1024)
		return -ENODEV;
	per_q = calloc(U.nqueues, sizeof(*per_q));
	U.ents = calloc(U.nqueues * URING_THREADS, sizeof(*U.ents));
	if (!per_q || !U.ents) {
		free(per_q);
		free(U.ents);
		U.ents = NULL;
		return -ENOMEM;
	}
	U.nalloc = U.nqueues * URING_THREADS;
	for (unsigned i = 0; i < U.nalloc && !err; i++)
		err = ent_init(&U.ents[i], i % U.nqueues);
	if (err)
		goto free_ents;
	atomic_store(&U.nents, U.nalloc);
	/* Signals are for the main and signal threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < U.nalloc; i++) {
		U.ents[i].reg_err = 1;
		U.ents[i].started =
		    !pthread_create(&U.ents[i].tid, NULL, ent_main, &U.ents[i]);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_lock(&U.reg_mu);
	for (unsigned i = 0; i < U.nalloc; i++) {
		struct uring_ent *e = &U.ents[i];

		while (e->started && e->reg_err == 1)
			pthread_cond_wait(&U.reg_cv, &U.reg_mu);
		if (e->started && !e->reg_err) {
			per_q[e->qid]++;
			nreg++;
		} else if (!first_err) {
			first_err = e->started ? e->reg_err : -EAGAIN;
		}
	}
	pthread_mutex_unlock(&U.reg_mu);
	for (unsigned q = 0; q < U.nqueues; q++)
		if (!per_q[q])
			err = first_err ? first_err : -EIO;
	free(per_q);
	if (err)
		goto stop_ents;
	if (first_err)
		tslab_log(LOG_WARNING, "io_uring: %u of %u entries registered: %s", nreg,
		          U.nalloc, strerror(-first_err));
	return (int)nreg;

stop_ents:
	ents_stop();
	return err;
free_ents:
	ents_free();
	return err;
}

/* ---- custom io -------------------------------------------------------------- */

static ssize_t uring_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t r = read(fd, buf, len);

	if (r > 0) {
		tslab_rawreq_note(buf, (size_t)r);
		if ((size_t)r >= sizeof(struct fuse_in_header) &&
		    ((const struct fuse_in_header *)buf)->opcode == FUSE_INIT)
			U.offered = tslab_rawreq_offered() & TSLAB_FUSE_OVER_IO_URING;
	}
	return r;
}

static ssize_t init_reply(int fd, struct iovec *iov, int count)
{
	struct fuse_out_header *oh = iov[0].iov_base;
	struct fuse_init_out *io =
	    count == 2 && iov[1].iov_len >= sizeof(*io) ? iov[1].iov_base : NULL;
	bool want = io && !oh->error && U.offered;
	ssize_t r;
	int err;

	tslab_rawreq_init_reply(io && !oh->error ? io : NULL);
	if (want) {
		io->flags |= TSLAB_FUSE_INIT_EXT;
		io->flags2 |= (uint32_t)(TSLAB_FUSE_OVER_IO_URING >> 32);
	}
	r = writev(fd, iov, count);
	if (r < 0 || !io || oh->error)
		return r;
	if (!U.offered) {
		tslab_log(LOG_INFO,
		          "transport: /dev/fuse (the kernel does not offer FUSE "
		          "over io_uring: /sys/module/fuse/parameters/enable_uring)");
		return r;
	}
	err = rings_start(io);
	if (err < 0)
		tslab_log(LOG_WARNING,
		          "transport: /dev/fuse (io_uring set-up failed: %s)",
		          strerror(-err));
	else
		tslab_log(LOG_INFO,
		          "transport: io_uring (%u queues, %d entries, %zu KiB payload)",
		          U.nqueues, err, U.payload_sz / 1024);
	return r;
}

static ssize_t uring_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	const struct fuse_out_header *oh = iov[0].iov_base;
	struct uring_ent *e;
	ssize_t r;

	if (count < 1 || iov[0].iov_len < sizeof(*oh) || !oh->unique)
		return writev(fd, iov, count); /* a notification */
	if (tslab_rawreq_is_init_reply(oh->unique))
		return init_reply(fd, iov, count);
	if (!(e = ent_of(oh->unique)))
		return writev(fd, iov, count); /* a request read from /dev/fuse */
	r = ent_commit(e, iov, count);
	pthread_mutex_unlock(&e->mu);
	return r;
}

static int uring_start(struct fuse_session *se, enum tslab_transport_mode mode)
{
	static const struct fuse_custom_io io = {.read = uring_read,
	                                         .writev = uring_writev};

	U.se = se;
	U.mode = mode;
	U.fd = fuse_session_fd(se);
	return fuse_session_custom_io(se, &io, U.fd) ? -EIO : 0;
}

static void uring_stop(void)
{
	if (U.nalloc) {
		tslab_log(LOG_INFO, "io_uring: %llu requests served through the rings",
		          (unsigned long long)atomic_load(&U.served));
		ents_stop();
	}
}

const struct tslab_transport_ops tslab_transport_uring_ops = {
    .name = "io_uring", .start = uring_start, .stop = uring_stop};
