/* SPDX-License-Identifier: MIT */
/*
 * tslabfs: the FUSE daemon. Command line, options, daemonizing, mount,
 * request loop and the orderly shutdown that flushes everything.
 *
 *   tslabfs [options] DEVICE MOUNTPOINT
 *
 * Exit status: 0 after a clean unmount, 1 on any error (a usage error, a
 * device that cannot be used, a failed mount).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <semaphore.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "fs/fs_int.h"
#include "fs/transport.h"

struct tslab_opts {
	unsigned epoch_depth;
	unsigned commit;
	unsigned idle_prune;
	unsigned read_ahead_kb;
	char *epoch_depth_s, *commit_s; /* as given, parsed by check_opts() */
	int ro;
	int allow_other;
	char *device;
	int nonopts;
	int blkdev; /* the device is a block device and we are root: fuseblk */
	enum tslab_transport_mode transport;
	char *writelog;              /* -o writelog=PATH: log every device operation */
	char *retention, *seal_idle; /* DURATION, policy.c */
	unsigned retention_space, keep;
	char *errors;  /* errors= policy */
	int ro_forced; /* ro set by peek_ro(), not on the command line */
};

enum { KEY_RO, KEY_ALLOW_OTHER, KEY_URING, KEY_NOURING };

static const struct fuse_opt tslab_opt_spec[] = {
    {"epoch_depth=%s", offsetof(struct tslab_opts, epoch_depth_s), 0},
    {"commit=%s", offsetof(struct tslab_opts, commit_s), 0},
    {"writelog=%s", offsetof(struct tslab_opts, writelog), 0},
    {"retention=%s", offsetof(struct tslab_opts, retention), 0},
    {"retention_space=%u", offsetof(struct tslab_opts, retention_space), 0},
    {"keep=%u", offsetof(struct tslab_opts, keep), 0},
    {"seal_idle=%s", offsetof(struct tslab_opts, seal_idle), 0},
    {"idle_prune=%u", offsetof(struct tslab_opts, idle_prune), 0},
    {"read_ahead_kb=%u", offsetof(struct tslab_opts, read_ahead_kb), 0},
    {"errors=%s", offsetof(struct tslab_opts, errors), 0},
    FUSE_OPT_KEY("ro", KEY_RO),
    FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
    FUSE_OPT_KEY("io_uring", KEY_URING),
    FUSE_OPT_KEY("noio_uring", KEY_NOURING),
    FUSE_OPT_END};

/* ---- logging ------------------------------------------------------------ */

static bool log_stderr = true;
static bool log_info = true;

void tslab_log_init(bool to_stderr, bool info)
{
	log_stderr = to_stderr;
	log_info = info;
	/* slab logs through syslog(3): before daemonizing its messages (damage
	 * found at mount, the error mark) go to stderr as well. */
	openlog("tslabfs", LOG_PID | (to_stderr ? LOG_PERROR : 0), LOG_DAEMON);
}

void tslab_log(int prio, const char *fmt, ...)
{
	va_list ap;

	if (log_stderr && !log_info && prio > LOG_WARNING)
		return;
	va_start(ap, fmt);
	if (log_stderr) {
		/* One write(2) per line: threads log concurrently (the readahead
		 * and transport lines come at the same moment), and stderr is
		 * unbuffered, so separate stdio calls would interleave. */
		char line[2048];
		int n = snprintf(line, sizeof(line), "tslabfs: ");

		n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
		if (n > (int)sizeof(line) - 2)
			n = (int)sizeof(line) - 2;
		line[n++] = '\n';
		if (write(STDERR_FILENO, line, (size_t)n) < 0)
			(void)0; /* nowhere left to report it */
	} else {
		vsyslog(prio, fmt, ap);
	}
	va_end(ap);
}

/* ---- command line --------------------------------------------------------- */

static void usage(const char *prog)
{
	printf(
	    "Usage: %s [options] DEVICE MOUNTPOINT\n"
	    "\n"
	    "Mount the tslabfs filesystem on DEVICE (a zoned block device, or an image\n"
	    "file or block device formatted by mkfs.tslabfs) at MOUNTPOINT.\n"
	    "\n"
	    "tslabfs options:\n"
	    "    -o epoch_depth=N       directories at depth N below the root are\n"
	    "                           epochs (default 1; 0 = no epochs)\n"
	    "    -o commit=SECONDS      longest time unsynced data waits before it\n"
	    "                           is written (default 5)\n"
	    "    -o retention=DURATION  drop epochs whose newest write is older than\n"
	    "                           DURATION (N[smhdw], seconds without suffix)\n"
	    "    -o retention_space=PCT drop the oldest epochs while more than PCT %%\n"
	    "                           of the space is used (1..95)\n"
	    "    -o keep=N              the newest N epochs are never dropped by\n"
	    "                           retention (default 1)\n"
	    "    -o seal_idle=DURATION  seal epochs not written for DURATION\n"
	    "    -o idle_prune=SECONDS  drop the kernel's cache of an epoch nobody\n"
	    "                           used for that long (default 0 = never)\n"
	    "    -o read_ahead_kb=KIB   the kernel's readahead window for the mount\n"
	    "                           (default 4096; 0 = the kernel's 128)\n"
	    "    -o ro                  mount read-only\n"
	    "    -o errors=POLICY       on damage or a device error: remount-ro\n"
	    "                           (default: serve what is intact read-only),\n"
	    "                           continue, or unmount\n"
	    "    -o io_uring            carry requests over io_uring even when not\n"
	    "                           root (default: when root and the kernel\n"
	    "                           offers it; falls back to /dev/fuse)\n"
	    "    -o noio_uring          carry requests over /dev/fuse only\n"
	    "    -o writelog=PATH       append every device write (with its bytes),\n"
	    "                           flush and zone reset/finish to PATH, for\n"
	    "                           crash-state testing (tests/crash)\n"
	    "    (allow_other, among the FUSE options below, also turns on\n"
	    "    default_permissions: the kernel checks permissions)\n"
	    "\n",
	    prog);
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct tslab_opts *o = data;

	switch (key) {
	case KEY_RO:
		o->ro = 1;
		return 1;
	case KEY_ALLOW_OTHER:
		o->allow_other = 1;
		return 1;
	case KEY_URING:
	case KEY_NOURING:
		o->transport =
		    key == KEY_URING ? TSLAB_TRANSPORT_URING : TSLAB_TRANSPORT_DEV;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (!o->device) {
			o->device = strdup(arg);
			return o->device ? 0 : -1;
		}
		o->nonopts++;
		return 1;
	default:
		return 1;
	}
}

/*
 * A block device mounted by root is mounted as fuseblk: the kernel then
 * sends DESTROY at unmount and waits for the reply, so umount returns only
 * after everything is on the device (op_destroy). The kernel also claims
 * the device, which keeps other mounts off it; the daemon's own open is not
 * exclusive (flock keeps a second daemon off).
 */
static int use_fuseblk(const char *device)
{
	struct stat sb;

	return geteuid() == 0 && stat(device, &sb) == 0 && S_ISBLK(sb.st_mode);
}

/*
 * A superblock whose read-only compatible features are set (the error mark,
 * a feature of a newer version) makes the store mount read-only: the kernel
 * mount must say so, and its flags are fixed before fuse_session_new(). A
 * short non-exclusive look at the superblock decides; slab logs why.
 */
static void peek_ro(struct tslab_opts *o)
{
	struct zns_dev *dev;
	struct slab_sb_info sb;

	if (o->ro || !o->device || zns_open(o->device, ZNS_OPEN_RDONLY, &dev))
		return;
	if (slab_sb_read(dev, &sb) == 0 && sb.features_ro_compat) {
		if (sb.features_ro_compat & ~1ull)
			fprintf(
			    stderr,
			    "tslabfs: %s: unknown read-only compatible features 0x%llx "
			    "(a newer tslabfs wrote this filesystem): mounting "
			    "read-only\n",
			    o->device,
			    (unsigned long long)(sb.features_ro_compat & ~1ull));
		if (sb.features_ro_compat & 1ull)
			fprintf(stderr,
			        "tslabfs: %s: the filesystem has errors (damage found "
			        "earlier): mounting read-only; run fsck.tslabfs\n",
			        o->device);
		o->ro = 1;
		o->ro_forced = 1;
	}
	zns_close(dev);
}

static int add_opts(struct fuse_args *args, const struct tslab_opts *o)
{
	char *s = NULL;
	int err;

	/* Without allow_other only the mounting user gets in; with it, the
	 * kernel checks permissions (default_permissions). Not always: with
	 * default_permissions every create costs a GETATTR of the directory. */
	err = fuse_opt_add_opt(&s, o->allow_other ? "subtype=tslabfs,default_permissions"
	                                          : "subtype=tslabfs");
	if (!err)
		err = fuse_opt_add_opt(&s, "fsname=");
	if (!err) {
		/* fsname= must take the device, escaped (commas, backslashes). */
		char *t = NULL;

		err = fuse_opt_add_opt_escaped(&t, o->device);
		if (!err) {
			size_t l = strlen(s);
			char *n = realloc(s, l + strlen(t) + 1);

			if (n) {
				strcpy(n + l, t);
				s = n;
			} else {
				err = -1;
			}
		}
		free(t);
	}
	if (!err && o->blkdev)
		err = fuse_opt_add_opt(&s, "blkdev");
	if (!err)
		err = fuse_opt_add_arg(args, "-o");
	if (!err)
		err = fuse_opt_add_arg(args, s);
	free(s);
	return err;
}

/* ---- signals: sync the kernel's dirty pages, then leave the loop --------- */

static sem_t sig_sem;
static volatile sig_atomic_t sig_seen;

static void on_term(int sig)
{
	sig_seen = sig;
	sem_post(&sig_sem);
}

static void on_wake(int sig)
{
}

struct sig_ctx {
	struct tslab_fs *fs;
	const char *mountpoint;
	pthread_t main_thread;
};

static void *sig_main(void *arg)
{
	struct sig_ctx *c = arg;
	int fd;

	while (sem_wait(&sig_sem) < 0)
		;
	if (sig_seen == SIGUSR2)
		return NULL; /* shutdown from the loop's own exit */
	tslab_log(LOG_INFO, "%s: signal %d: flushing and unmounting", c->fs->device,
	          (int)sig_seen);
	/* The loop still serves requests: the kernel writes back its dirty
	 * pages through us before the session stops. */
	fd = open(c->mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		syncfs(fd);
		close(fd);
	}
	fuse_session_exit(c->fs->se);
	pthread_kill(c->main_thread, SIGUSR1);
	return NULL;
}

static int install_signals(void)
{
	struct sigaction sa = {.sa_handler = on_term};

	if (sem_init(&sig_sem, 0, 0))
		return -errno;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL) ||
	    sigaction(SIGHUP, &sa, NULL))
		return -errno;
	sa.sa_handler = on_wake;
	if (sigaction(SIGUSR1, &sa, NULL))
		return -errno;
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	return 0;
}

/* ---- daemonizing -------------------------------------------------------------- */

/* Fork; the parent waits for the child's status byte and exits with it, so
 * that errors while opening the device or mounting reach the caller. */
static int daemon_start(int *status_fd)
{
	int pfd[2];
	pid_t pid;
	char st = 1;

	if (pipe(pfd))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pfd[1]);
		if (read(pfd[0], &st, 1) != 1)
			st = 1;
		_exit(st);
	}
	close(pfd[0]);
	setsid();
	*status_fd = pfd[1];
	return 0;
}

static void daemon_ready(int status_fd, char st)
{
	int nfd;

	if (status_fd < 0)
		return;
	if (!st) {
		(void)!chdir("/");
		nfd = open("/dev/null", O_RDWR);
		if (nfd >= 0) {
			dup2(nfd, 0);
			dup2(nfd, 1);
			dup2(nfd, 2);
			if (nfd > 2)
				close(nfd);
		}
		tslab_log_init(false, true);
	}
	(void)!write(status_fd, &st, 1);
	close(status_fd);
}

/* ---- device --------------------------------------------------------------------- */

static int open_device(struct tslab_fs *fs)
{
	unsigned flags = ZNS_OPEN_EXCL | (fs->read_only ? ZNS_OPEN_RDONLY : 0);
	struct slab_sb_info sb;
	int err = zns_open(fs->device, flags, &fs->dev);

	/* The lock of a process that just exited can outlive it briefly: its
	 * io_uring rings hold the file until the kernel tears them down. */
	for (int i = 0; err == -EBUSY && i < 30; i++) {
		usleep(100000);
		err = zns_open(fs->device, flags, &fs->dev);
	}
	if (err == -EBUSY) {
		tslab_log(LOG_ERR,
		          "%s is in use (already mounted by another tslabfs daemon?)",
		          fs->device);
		return err;
	}
	if (err == -EMEDIUMTYPE) {
		tslab_log(LOG_ERR,
		          "%s is neither a zoned device nor a tslabfs image "
		          "(format it with mkfs.tslabfs)",
		          fs->device);
		return err;
	}
	if (err) {
		tslab_log(LOG_ERR, "cannot open %s: %s", fs->device, strerror(-err));
		return err;
	}
	if (fs->writelog && !fs->read_only) {
		err = zns_wlog_start(fs->dev, fs->writelog);
		if (err) {
			tslab_log(LOG_ERR, "writelog=%s: %s", fs->writelog,
			          strerror(-err));
			goto close_dev;
		}
	}
	err = slab_sb_read(fs->dev, &sb);
	if (err) {
		tslab_log(LOG_ERR, "%s: %s", fs->device,
		          err == -ENODATA
		              ? "no tslabfs filesystem (format it with mkfs.tslabfs)"
		          : err == -EOPNOTSUPP ? "filesystem of a newer or unknown format"
		                               : strerror(-err));
		goto close_dev;
	}
	err = tslab_mount_store(fs);
	if (err) {
		tslab_log(LOG_ERR, "%s: mounting the store failed: %s%s", fs->device,
		          strerror(-err),
		          err == -EUCLEAN ? " (damage, listed above: run fsck.tslabfs)"
		                          : "");
		goto close_dev;
	}
	return 0;

close_dev:
	zns_close(fs->dev);
	fs->dev = NULL;
	return err;
}

int tslab_close_device(struct tslab_fs *fs)
{
	if (fs->closed)
		return fs->close_err;
	fs->closed = true;
	/* No request runs any more; taken for tslab_flush_all()'s contract. */
	pthread_rwlock_wrlock(&fs->drop_lock);
	int err = tslab_flush_all(fs, TSLAB_FLUSH_TRIM | TSLAB_FLUSH_FINAL);

	pthread_rwlock_unlock(&fs->drop_lock);
	tslab_epochs_free_all(fs, false);
	int r = slab_unmount(fs->st);

	tslab_epochs_free_all(fs, true);
	if (!err)
		err = r;
	zns_close(fs->dev);
	if (err)
		tslab_log(LOG_ERR, "%s: unmount: %s", fs->device, strerror(-err));
	else
		tslab_log(LOG_INFO, "%s: unmounted, everything written", fs->device);
	fs->close_err = err;
	return err;
}

/* ---- main ------------------------------------------------------------------------ */

static struct tslab_fs *fs_new(const struct tslab_opts *o, bool foreground)
{
	struct tslab_fs *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return NULL;
	fs->device = o->device;
	fs->read_only = o->ro;
	tslab_errors_parse(o->errors, &fs->errors); /* checked in check_opts */
	fs->blkdev = o->blkdev;
	fs->writelog = o->writelog;
	fs->foreground = foreground;
	pthread_rwlock_init(&fs->drop_lock, NULL);
	pthread_mutex_init(&fs->epochs_lock, NULL);
	pthread_mutex_init(&fs->commit_mu, NULL);
	pthread_cond_init(&fs->commit_cv, NULL);
	pthread_mutex_init(&fs->notify_mu, NULL);
	pthread_cond_init(&fs->notify_cv, NULL);
	return fs;
}

/* Idle request threads kept by default (-o max_idle_threads=N overrides). */
#define TSLAB_IDLE_THREADS 4u

static int run_loop(struct tslab_fs *fs, const struct fuse_cmdline_opts *cmd)
{
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	struct sig_ctx sc = {
	    .fs = fs, .mountpoint = cmd->mountpoint, .main_thread = pthread_self()};
	pthread_t sig_thread;
	int ret;

	if (!cfg)
		return -1;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)cmd->clone_fd);
	/* UINT_MAX: not given (libfuse would log it as invalid). libfuse's
	 * default keeps every worker it ever started (up to max_threads), each
	 * with a 1 MiB request buffer whose touched pages stay resident: RSS
	 * grew with every burst (+17 % over 60 create/fill/drop cycles; +5 %
	 * and flat after 25 cycles with 4 idle workers, flat with 2, but 2
	 * made workers exit and restart all the time: ingest at a third). */
	fuse_loop_cfg_set_idle_threads(cfg, cmd->max_idle_threads <= 100000
	                                        ? cmd->max_idle_threads
	                                        : TSLAB_IDLE_THREADS);
	if (cmd->max_threads <= 100000)
		fuse_loop_cfg_set_max_threads(cfg, cmd->max_threads);
	if (pthread_create(&sig_thread, NULL, sig_main, &sc)) {
		fuse_loop_cfg_destroy(cfg);
		return -1;
	}
	ret = cmd->singlethread ? fuse_session_loop(fs->se)
	                        : fuse_session_loop_mt(fs->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	if (!sig_seen) {
		sig_seen = SIGUSR2;
		sem_post(&sig_sem);
	}
	pthread_join(sig_thread, NULL);
	return ret;
}

/* A decimal number in [MIN, MAX] (no sign, no suffix), else -1 after
 * saying so. NULL (option not given) leaves *OUT alone. */
static int parse_num_opt(const char *name, const char *s, unsigned min, unsigned max,
                         unsigned *out)
{
	unsigned long v;
	char *end;

	if (!s)
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || v < min || v > max) {
		fprintf(stderr, "tslabfs: %s=%s: must be %u..%u\n", name, s, min, max);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int check_opts(struct tslab_opts *o, const struct fuse_cmdline_opts *cmd,
                      struct tslab_fs *fs)
{
	struct stat sb;

	if (!o->device || !cmd->mountpoint) {
		fprintf(stderr, "tslabfs: missing %s (see tslabfs --help)\n",
		        o->device ? "MOUNTPOINT" : "DEVICE and MOUNTPOINT");
		return -1;
	}
	if (parse_num_opt("commit", o->commit_s, 1, 86400, &o->commit) ||
	    parse_num_opt("epoch_depth", o->epoch_depth_s, 0, 64, &o->epoch_depth))
		return -1;
	/* The kernel would mount on a file and then fail every access. */
	if (stat(cmd->mountpoint, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "tslabfs: mountpoint %s is not a directory\n",
		        cmd->mountpoint);
		return -1;
	}
	if (o->commit < 1 || o->commit > 86400) {
		fprintf(stderr, "tslabfs: commit=%u: must be 1..86400 seconds\n",
		        o->commit);
		return -1;
	}
	if (o->retention && tslab_parse_duration(o->retention, &fs->pol.retention)) {
		fprintf(stderr, "tslabfs: retention=%s: not a duration (N[smhdw])\n",
		        o->retention);
		return -1;
	}
	enum tslab_errors e;

	if (tslab_errors_parse(o->errors, &e)) {
		fprintf(stderr,
		        "tslabfs: errors=%s: must be remount-ro, continue or unmount\n",
		        o->errors);
		return -1;
	}
	if (o->seal_idle && tslab_parse_duration(o->seal_idle, &fs->pol.seal_idle)) {
		fprintf(stderr, "tslabfs: seal_idle=%s: not a duration (N[smhdw])\n",
		        o->seal_idle);
		return -1;
	}
	if (o->retention_space > 95) {
		fprintf(stderr, "tslabfs: retention_space=%u: must be 1..95 %%\n",
		        o->retention_space);
		return -1;
	}
	if ((o->retention || o->retention_space || o->seal_idle) && o->ro) {
		fprintf(stderr, "tslabfs: retention, retention_space and seal_idle "
		                "need a writable mount\n");
		return -1;
	}
	fs->pol.space_pct = o->retention_space;
	fs->pol.keep = o->keep;
	if (o->idle_prune > 86400 * 365) {
		fprintf(stderr, "tslabfs: idle_prune=%u: must be 0..31536000 seconds\n",
		        o->idle_prune);
		return -1;
	}
	fs->epoch_depth = o->epoch_depth;
	fs->commit_s = o->commit;
	fs->prune_s = o->idle_prune;
	if (o->read_ahead_kb > 1u << 20) {
		fprintf(stderr, "tslabfs: read_ahead_kb=%u: must be 0..1048576 KiB\n",
		        o->read_ahead_kb);
		return -1;
	}
	fs->read_ahead_kb = o->read_ahead_kb;
	return 0;
}

static int mount_and_serve(struct tslab_fs *fs, struct fuse_cmdline_opts *cmd,
                           enum tslab_transport_mode transport)
{
	int status_fd = -1, ret = 1;

	if (!cmd->foreground && daemon_start(&status_fd)) {
		perror("tslabfs: fork");
		return 1;
	}
	if (install_signals() || open_device(fs))
		goto fail;
	if (fuse_session_mount(fs->se, cmd->mountpoint)) {
		tslab_log(LOG_ERR, "%s: cannot mount at %s", fs->device, cmd->mountpoint);
		goto close_dev;
	}
	/* The no_open probe opens files by path (libfuse made it absolute). */
	if (cmd->mountpoint[0] == '/' && strncmp(cmd->mountpoint, "/dev/fd/", 8))
		fs->mountpoint = cmd->mountpoint;
	/* The superblock changed between the peek and the mount: the store
	 * is read-only, and the log says the mount still shows rw. */
	if (!fs->read_only && slab_is_read_only(fs->st)) {
		fs->read_only = true;
		tslab_log(LOG_ERR,
		          "%s: the store mounted read-only: the mount still "
		          "shows rw, but every change is answered with EROFS",
		          fs->device);
	}
	if (tslab_transport_start(fs->se, transport)) {
		tslab_log(LOG_ERR, "cannot set up the FUSE transport");
		goto unmount;
	}
	if (tslab_threads_start(fs)) {
		tslab_log(LOG_ERR, "cannot start threads");
		goto unmount;
	}
	tslab_log(LOG_INFO, "%s mounted at %s (epoch_depth=%u, commit=%u, errors=%s%s)",
	          fs->device, cmd->mountpoint, fs->epoch_depth, fs->commit_s,
	          tslab_errors_name(fs->errors), fs->read_only ? ", ro" : "");
	daemon_ready(status_fd, 0);
	status_fd = -1;
	tslab_readahead_start(fs->mountpoint, fs->read_ahead_kb);
	ret = run_loop(fs, cmd) ? 1 : 0;
unmount:
	tslab_transport_stop();
	/* Before stopping the threads: unmounting fails whatever request the
	 * notify thread's probe may still wait for. */
	fuse_session_unmount(fs->se);
	tslab_readahead_stop();
	tslab_threads_stop(fs);
close_dev:
	if (tslab_close_device(fs))
		ret = 1;
	tslab_threads_stop(fs);
fail:
	daemon_ready(status_fd, 1);
	return ret;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct tslab_opts o = {.epoch_depth = 1,
	                       .commit = 5,
	                       .keep = 1,
	                       .read_ahead_kb = TSLAB_READ_AHEAD_KB};
	struct fuse_cmdline_opts cmd = {0};
	struct tslab_fs *fs = NULL;
	int ret = 1;

	/* One malloc arena: with one per thread (up to 8 per core) memory
	 * freed after an epoch drop stays spread over arenas that are not
	 * trimmed; RSS grew by 46 % over 100 create/fill/drop cycles, 14 %
	 * with one arena and malloc_trim() after drops (the rest: idle request
	 * threads, see run_loop). Small allocations are served by glibc's
	 * per-thread caches anyway. */
	mallopt(M_ARENA_MAX, 1);
	if (fuse_opt_parse(&args, &o, tslab_opt_spec, opt_proc))
		goto free_args;
	if (fuse_parse_cmdline(&args, &cmd))
		goto free_args;
	if (cmd.show_help) {
		usage(argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto free_args;
	}
	if (cmd.show_version) {
		printf("tslabfs version %s\n", TSLAB_VERSION);
		printf("FUSE library version %s\n", fuse_pkgversion());
		fuse_lowlevel_version();
		ret = 0;
		goto free_args;
	}
	o.blkdev = use_fuseblk(o.device);
	peek_ro(&o);
	if (o.ro_forced && fuse_opt_add_arg(&args, "-oro"))
		goto free_args;
	fs = fs_new(&o, cmd.foreground);
	if (!fs)
		goto free_args;
	if (check_opts(&o, &cmd, fs) || tslab_policy_init(fs) || add_opts(&args, &o))
		goto free_fs;
	tslab_log_init(true, cmd.foreground);
	fs->se = fuse_session_new(&args, &tslab_ops, sizeof(tslab_ops), fs);
	if (!fs->se)
		goto free_fs; /* libfuse printed why (e.g. an unknown option) */
	ret = mount_and_serve(fs, &cmd, o.transport);
	fuse_session_destroy(fs->se);
free_fs:
	free(fs);
free_args:
	free(cmd.mountpoint);
	free(o.device);
	free(o.writelog);
	free(o.retention);
	free(o.seal_idle);
	free(o.commit_s);
	free(o.epoch_depth_s);
	free(o.errors);
	fuse_opt_free_args(&args);
	return ret;
}
