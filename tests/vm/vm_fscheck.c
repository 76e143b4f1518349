/* SPDX-License-Identifier: MIT */
/*
 * vm_fscheck: writes and verifies sets of files with deterministic content,
 * for the mounted-filesystem test in the QEMU guest (guest-fs.sh), where
 * only busybox is available.
 *
 *   vm_fscheck write  DIR FIRST COUNT MIN MAX [-s K] [-l LOG] [-k]
 *   vm_fscheck verify DIR FIRST COUNT MIN MAX [-c LOG]
 *   vm_fscheck fsync PATH...
 *   vm_fscheck getxattr PATH NAME
 *   vm_fscheck handle PATH FILE      name_to_handle_at(PATH) into FILE
 *   vm_fscheck byhandle MOUNT FILE   open_by_handle_at + read; prints the
 *                                    errno name on failure (exit 1)
 *
 * The set is the files DIR/fNNNNNN for N in [FIRST, FIRST + COUNT). The size
 * of a file (MIN..MAX bytes) and every byte of its content are derived from
 * a hash of "BASENAME(DIR)/fNNNNNN", so a file found under another name or in
 * another directory does not verify.
 *
 * write: creates the files in order with one write() each, fsyncs the file
 * before close when N % K == 0 (-s K; default never), and appends
 * "synced NAME" to LOG (-l) once that fsync and close returned. -k (the
 * daemon is expected to die): the first error ends the run with status 0.
 *
 * verify: without -c every file must be present with exactly its content
 * and DIR must hold nothing else. With -c LOG (after a crash) every file LOG
 * names as synced must be exact; any other file of the set may be missing,
 * empty (created, its data not yet durable) or exact, never anything else.
 * Prints the counts; exit status 1 on any mismatch.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

struct fset {
	const char *dir;
	const char *base; /* basename of dir: part of every file's key */
	unsigned long first, count;
	size_t min, max;
};

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Seed of file N: FNV-1a 64 over "base/fNNNNNN". */
static uint64_t file_seed(const struct fset *s, unsigned long n)
{
	char key[PATH_MAX];
	uint64_t h = 0xcbf29ce484222325ULL;
	int len = snprintf(key, sizeof(key), "%s/f%06lu", s->base, n);

	for (int i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Expected size and content of file N into buf (at least s->max bytes). */
static size_t file_content(const struct fset *s, unsigned long n, unsigned char *buf)
{
	uint64_t st = file_seed(s, n);
	size_t size = s->min + (size_t)(splitmix64(&st) % (s->max - s->min + 1));

	for (size_t i = 0; i < size; i += 8) {
		uint64_t v = splitmix64(&st);
		size_t k = size - i < 8 ? size - i : 8;

		memcpy(buf + i, &v, k);
	}
	return size;
}

static void file_path(const struct fset *s, unsigned long n, char *out, size_t len)
{
	snprintf(out, len, "%s/f%06lu", s->dir, n);
}

static int parse_ul(const char *a, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(a, &end, 10);
	return errno || !*a || *end ? -1 : 0;
}

static int parse_set(char **argv, struct fset *s)
{
	unsigned long mn, mx;
	const char *b;

	s->dir = argv[0];
	b = strrchr(s->dir, '/');
	s->base = b ? b + 1 : s->dir;
	if (parse_ul(argv[1], &s->first) || parse_ul(argv[2], &s->count) ||
	    parse_ul(argv[3], &mn) || parse_ul(argv[4], &mx) || mn > mx ||
	    mx > (1UL << 24)) {
		fprintf(stderr, "vm_fscheck: bad file set arguments\n");
		return -1;
	}
	s->min = mn;
	s->max = mx;
	return 0;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* One file: create, write, optionally fsync, close. -1 with errno set. */
static int write_one(const char *path, const unsigned char *buf, size_t size, bool sync)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int e;

	if (fd < 0)
		return -1;
	if (write_all(fd, buf, size) || (sync && fsync(fd))) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return close(fd);
}

static int cmd_write(int argc, char **argv)
{
	unsigned long every = 0, synced = 0, n;
	const char *logpath = NULL;
	bool keep = false;
	FILE *log = NULL;
	struct fset s;
	unsigned char *buf;
	char path[PATH_MAX];
	int opt, ret = 1;

	while ((opt = getopt(argc, argv, "s:l:k")) != -1) {
		if (opt == 's' && !parse_ul(optarg, &every))
			continue;
		if (opt == 'l') {
			logpath = optarg;
			continue;
		}
		if (opt == 'k') {
			keep = true;
			continue;
		}
		fprintf(stderr, "vm_fscheck write: bad option\n");
		return 2;
	}
	if (argc - optind != 5 || parse_set(argv + optind, &s))
		return 2;
	if (logpath && !(log = fopen(logpath, "a"))) {
		perror(logpath);
		return 1;
	}
	buf = malloc(s.max + 8);
	if (!buf)
		goto close_log;
	for (n = s.first; n < s.first + s.count; n++) {
		size_t size = file_content(&s, n, buf);
		bool sync = every && n % every == 0;

		file_path(&s, n, path, sizeof(path));
		if (write_one(path, buf, size, sync)) {
			fprintf(stderr, "vm_fscheck: %s: %s (after %lu files)\n", path,
			        strerror(errno), n - s.first);
			break;
		}
		if (sync) {
			synced++;
			if (log) {
				fprintf(log, "synced %s\n", path);
				fflush(log);
			}
		}
	}
	printf("wrote %lu files in %s (%lu fsync'd)\n", n - s.first, s.dir, synced);
	ret = n == s.first + s.count || keep ? 0 : 1;
	free(buf);
close_log:
	if (log)
		fclose(log);
	return ret;
}

/* Read a whole file (up to cap bytes; more reads as cap + 1). */
static ssize_t read_file(const char *path, unsigned char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	size_t got = 0;

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t r = read(fd, buf + got, cap + 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;

			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0 || (got += (size_t)r) > cap)
			break;
	}
	close(fd);
	return (ssize_t)got;
}

/* The synced names of LOG for set S as a bitmap over [first, first+count). */
static int load_synced(const char *logpath, const struct fset *s, unsigned char *map)
{
	char line[PATH_MAX + 16], prefix[PATH_MAX];
	FILE *f = fopen(logpath, "r");
	size_t plen;

	if (!f)
		return errno == ENOENT ? 0 : -1;
	plen = (size_t)snprintf(prefix, sizeof(prefix), "synced %s/f", s->dir);
	while (fgets(line, sizeof(line), f)) {
		unsigned long n;

		line[strcspn(line, "\n")] = 0;
		if (strncmp(line, prefix, plen) || parse_ul(line + plen, &n))
			continue;
		if (n >= s->first && n - s->first < s->count)
			map[n - s->first] = 1;
	}
	fclose(f);
	return 0;
}

struct vcounts {
	unsigned long exact, missing, empty, bad, synced, synced_ok;
};

static void verify_one(const struct fset *s, unsigned long n, bool crash, bool synced,
                       unsigned char *want, unsigned char *got, struct vcounts *c)
{
	char path[PATH_MAX];
	size_t size = file_content(s, n, want);
	ssize_t r;

	file_path(s, n, path, sizeof(path));
	r = read_file(path, got, s->max);
	c->synced += synced;
	if (r < 0 && errno == ENOENT && crash && !synced) {
		c->missing++;
		return;
	}
	if (r == 0 && size && crash && !synced) {
		c->empty++;
		return;
	}
	if (r >= 0 && (size_t)r == size && !memcmp(want, got, size)) {
		c->exact++;
		c->synced_ok += synced;
		return;
	}
	c->bad++;
	if (c->bad <= 10) {
		if (r < 0)
			printf("BAD %s%s: %s\n", path, synced ? " (fsync'd)" : "",
			       strerror(errno));
		else
			printf("BAD %s%s: %zd bytes, expected %zu%s\n", path,
			       synced ? " (fsync'd)" : "", r, size,
			       (size_t)r == size ? ", content differs" : "");
	}
}

/* Entries of DIR other than "." and ".."; -1 on error. */
static long count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static int cmd_verify(int argc, char **argv)
{
	const char *logpath = NULL;
	struct vcounts c = {0};
	unsigned char *want, *got, *map;
	struct fset s;
	long entries = -2;
	int opt, ret = 1;

	while ((opt = getopt(argc, argv, "c:")) != -1) {
		if (opt != 'c')
			return 2;
		logpath = optarg;
	}
	if (argc - optind != 5 || parse_set(argv + optind, &s))
		return 2;
	want = malloc(s.max + 8);
	got = malloc(s.max + 8);
	map = calloc(s.count ? s.count : 1, 1);
	if (!want || !got || !map)
		goto free_bufs;
	if (logpath && load_synced(logpath, &s, map)) {
		perror(logpath);
		goto free_bufs;
	}
	for (unsigned long n = s.first; n < s.first + s.count; n++)
		verify_one(&s, n, logpath, map[n - s.first], want, got, &c);
	if (!logpath)
		entries = count_entries(s.dir);
	printf("verify %s: %lu files: %lu exact, %lu missing, %lu empty, %lu bad; "
	       "fsync'd %lu, intact %lu",
	       s.dir, s.count, c.exact, c.missing, c.empty, c.bad, c.synced, c.synced_ok);
	if (entries != -2)
		printf("; %ld directory entries", entries);
	printf("\n");
	ret = c.bad || (entries != -2 && entries != (long)s.count) ? 1 : 0;
free_bufs:
	free(map);
	free(got);
	free(want);
	return ret;
}

static int cmd_fsync(int argc, char **argv)
{
	int ret = 0;

	for (int i = 1; i < argc; i++) {
		int fd = open(argv[i], O_RDONLY);

		if (fd < 0 || fsync(fd)) {
			fprintf(stderr, "vm_fscheck: fsync %s: %s\n", argv[i],
			        strerror(errno));
			ret = 1;
		}
		if (fd >= 0)
			close(fd);
	}
	return ret;
}

static int cmd_getxattr(int argc, char **argv)
{
	char val[256];
	ssize_t n;

	if (argc != 3)
		return 2;
	n = getxattr(argv[1], argv[2], val, sizeof(val) - 1);
	if (n < 0) {
		fprintf(stderr, "vm_fscheck: getxattr %s %s: %s\n", argv[1], argv[2],
		        strerror(errno));
		return 1;
	}
	val[n] = 0;
	printf("%s\n", val);
	return 0;
}

static int cmd_handle(int argc, char **argv)
{
	struct {
		struct file_handle fh;
		unsigned char buf[MAX_HANDLE_SZ];
	} h = {.fh.handle_bytes = MAX_HANDLE_SZ};
	int mount_id, fd;

	if (argc != 3)
		return 2;
	if (name_to_handle_at(AT_FDCWD, argv[1], &h.fh, &mount_id, 0)) {
		fprintf(stderr, "name_to_handle_at %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, &h, sizeof(h.fh) + h.fh.handle_bytes) < 0 || close(fd)) {
		fprintf(stderr, "%s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	return 0;
}

static int cmd_byhandle(int argc, char **argv)
{
	struct {
		struct file_handle fh;
		unsigned char buf[MAX_HANDLE_SZ];
	} h;
	char buf[4096];
	int mfd, fd, f;
	ssize_t n;

	if (argc != 3)
		return 2;
	f = open(argv[2], O_RDONLY);
	if (f < 0 || read(f, &h, sizeof(h)) < (ssize_t)sizeof(h.fh))
		return 2;
	close(f);
	mfd = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (mfd < 0)
		return 2;
	fd = open_by_handle_at(mfd, &h.fh, O_RDONLY);
	if (fd < 0) {
		printf("open_by_handle_at: %s (%s)\n", strerrorname_np(errno),
		       strerror(errno));
		return 1;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		printf("read: %s (%s)\n", strerrorname_np(errno), strerror(errno));
		return 1;
	}
	printf("read %zd bytes\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "handle"))
		return cmd_handle(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "byhandle"))
		return cmd_byhandle(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "write"))
		return cmd_write(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "fsync"))
		return cmd_fsync(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "getxattr"))
		return cmd_getxattr(argc - 1, argv + 1);
	fprintf(stderr,
	        "usage: vm_fscheck write DIR FIRST COUNT MIN MAX [-s K] [-l LOG] [-k]\n"
	        "       vm_fscheck verify DIR FIRST COUNT MIN MAX [-c LOG]\n"
	        "       vm_fscheck fsync PATH...\n"
	        "       vm_fscheck getxattr PATH NAME\n"
	        "       vm_fscheck handle PATH FILE\n"
	        "       vm_fscheck byhandle MOUNT FILE\n");
	return 2;
}
