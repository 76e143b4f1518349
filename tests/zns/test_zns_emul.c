// SPDX-License-Identifier: MIT
/*
 * Emulator-only behaviour of the zns layer: image creation and validation,
 * both LBA sizes, capacity < size, fault injection (failed writes/resets,
 * READ_ONLY/OFFLINE zones, power cuts) and a process killed mid-write.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "common/tslab_le.h"

#include "zns/zns.h"

static char dir[256];
static char img[512];

static int suite_setup(void **state)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	snprintf(dir, sizeof(dir), "%s/zns-emul-XXXXXX", tmp);
	if (!mkdtemp(dir))
		return -1;
	snprintf(img, sizeof(img), "%s/img", dir);
	(void)state;
	return 0;
}

static int suite_teardown(void **state)
{
	unlink(img);
	rmdir(dir);
	(void)state;
	return 0;
}

static struct zns_dev *make(uint32_t lba, uint64_t zsize, uint64_t cap, uint32_t nz)
{
	struct zns_emul_params p = {
	    .lba_size = lba,
	    .zone_size = zsize,
	    .zone_capacity = cap,
	    .nr_zones = nz,
	    .max_open = 4,
	    .max_active = 6,
	};
	struct zns_dev *dev = NULL;

	assert_int_equal(zns_emul_create(img, &p), 0);
	assert_int_equal(zns_open(img, 0, &dev), 0);
	return dev;
}

static void reopen(struct zns_dev **dev)
{
	zns_close(*dev);
	*dev = NULL;
	assert_int_equal(zns_open(img, 0, dev), 0);
}

static void fill(uint8_t *b, size_t len, uint32_t zone, uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		b[i] =
		    (uint8_t)((zone * 131u) ^ ((off + i) * 7u) ^ ((off + i) >> 9) ^ 0x5a);
}

static struct zns_zone rep(struct zns_dev *dev, uint32_t z)
{
	struct zns_zone zz;

	assert_int_equal(zns_zone_report(dev, z, 1, &zz), 1);
	return zz;
}

static void wr(struct zns_dev *dev, uint32_t z, uint64_t nlba)
{
	uint32_t lba = zns_geometry(dev)->lba_size;
	size_t len = (size_t)(nlba * lba);
	uint8_t *b = zns_buf_alloc(len);
	uint64_t wp = rep(dev, z).wp;

	fill(b, len, z, wp);
	assert_int_equal(zns_zone_write(dev, z, wp, b, len), (ssize_t)len);
	zns_buf_free(b);
}

/* Asserts [0, upto) of the zone holds the pattern and [upto, to) zeroes. */
static void check_data(struct zns_dev *dev, uint32_t z, uint64_t upto, uint64_t to)
{
	uint8_t *r = zns_buf_alloc(to ? to : 1), *w = malloc(to ? to : 1);

	if (to) {
		assert_int_equal(zns_zone_read(dev, z, 0, r, to), (ssize_t)to);
		fill(w, upto, z, 0);
		memset(w + upto, 0, to - upto);
		assert_memory_equal(r, w, to);
	}
	zns_buf_free(r);
	free(w);
}

static void test_create_validation(void **state)
{
	struct zns_emul_params p = {.zone_size = 1 << 20, .size = 16 << 20};
	struct zns_dev *dev = NULL;
	int fd;

	p.lba_size = 1024;
	assert_int_equal(zns_emul_create(img, &p), -EINVAL);
	p.lba_size = 4096;
	p.zone_capacity = 2 << 20;
	assert_int_equal(zns_emul_create(img, &p), -EINVAL);
	p.zone_capacity = 0;
	p.max_open = 8;
	p.max_active = 4;
	assert_int_equal(zns_emul_create(img, &p), -EINVAL);
	p.max_open = p.max_active = 0;
	p.size = 1 << 20; /* no room for one zone after the metadata */
	assert_int_equal(zns_emul_create(img, &p), -ENOSPC);

	/* nr_zones derived from the size: 1 MiB of metadata, 15 zones */
	p.size = 16 << 20;
	assert_int_equal(zns_emul_create(img, &p), 0);
	assert_int_equal(zns_open(img, 0, &dev), 0);
	assert_int_equal(zns_geometry(dev)->nr_zones, 15);
	assert_int_equal(zns_geometry(dev)->first_zone_off, 1 << 20);
	assert_int_equal(zns_geometry(dev)->max_open, 14);
	assert_int_equal(zns_geometry(dev)->backend, ZNS_BACKEND_EMUL_FILE);
	assert_int_equal(zns_fault_fail_write(dev, 0), 0);
	zns_close(dev);

	/* corrupt header -> -EUCLEAN; no header -> -EMEDIUMTYPE */
	fd = open(img, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\x07", 1, 20), 1);
	assert_int_equal(zns_open(img, 0, &dev), -EUCLEAN);
	assert_int_equal(pwrite(fd, "XXXXXXXX", 8, 0), 8);
	assert_int_equal(zns_open(img, 0, &dev), -EMEDIUMTYPE);
	close(fd);
	assert_null(dev);
	assert_int_equal(zns_probe(img), ZNS_BACKEND_EMUL_FILE);
	assert_int_equal(zns_probe(dir), -EMEDIUMTYPE);
	assert_int_equal(zns_open("/nonexistent/zns", 0, &dev), -ENOENT);
	(void)state;
}

static void test_corrupt_zone_entry(void **state)
{
	struct zns_dev *dev = make(4096, 1 << 20, 0, 4);
	int fd;
	uint8_t b;

	wr(dev, 1, 2);
	zns_close(dev);
	fd = open(img, O_RDWR);
	assert_int_equal(pread(fd, &b, 1, 4096 + 8), 1);
	b ^= 0x04; /* wp 2 -> 6 LBAs without fixing the check */
	assert_int_equal(pwrite(fd, &b, 1, 4096 + 8), 1);
	close(fd);
	assert_int_equal(zns_open(img, 0, &dev), -EUCLEAN);
	(void)state;
}

/* Set byte AT of the image's header region to V; with RESUM, recompute the
 * header checksum (XXH3-64 of bytes 0..119, at 120) so that only the byte's
 * value is wrong. */
static void hdr_poke(size_t at, uint8_t v, bool resum)
{
	uint8_t h[4096];
	int fd = open(img, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, h, sizeof(h), 0), sizeof(h));
	h[at] = v;
	if (resum)
		tslab_put64(h + 120, XXH3_64bits(h, 120));
	assert_int_equal(pwrite(fd, h, sizeof(h), 0), sizeof(h));
	close(fd);
}

/* docs/format.md: header bytes 80..119 are reserved (zero, under the
 * checksum) and the rest of the 4096-byte header block is zero; a non-zero
 * byte there makes open refuse the image (-EUCLEAN) even with a matching
 * checksum, and the same image opens again once the byte is zero. */
static void test_reserved_header_bytes(void **state)
{
	static const struct {
		size_t at;
		bool resum;
	} pokes[] = {{80, true}, {100, true}, {119, true}, {128, false}, {4095, false}};
	struct zns_dev *dev = make(4096, 1 << 20, 0, 4);

	zns_close(dev);
	for (size_t i = 0; i < sizeof(pokes) / sizeof(pokes[0]); i++) {
		hdr_poke(pokes[i].at, 0x10, pokes[i].resum);
		dev = NULL;
		assert_int_equal(zns_open(img, 0, &dev), -EUCLEAN);
		assert_null(dev);
		hdr_poke(pokes[i].at, 0, pokes[i].resum);
		assert_int_equal(zns_open(img, 0, &dev), 0);
		assert_int_equal(zns_geometry(dev)->nr_zones, 4);
		zns_close(dev);
	}
	(void)state;
}

/* Write, read, fill to capacity, reset, reopen, at one LBA size. */
static void lba_roundtrip(uint32_t lba)
{
	uint64_t zs = 256 * 1024, cap = 192 * 1024;
	struct zns_dev *dev = make(lba, zs, cap, 8);
	uint8_t *b = zns_buf_alloc(lba);

	assert_int_equal(zns_geometry(dev)->lba_size, lba);
	wr(dev, 0, 1);
	wr(dev, 0, 3);
	assert_int_equal(rep(dev, 0).wp, 4 * lba);
	check_data(dev, 0, 4 * lba, 4 * lba);
	/* lba 512: 512-aligned buffers and offsets are legal */
	fill(b, lba, 3, 0);
	assert_int_equal(zns_zone_write(dev, 3, 0, b, lba), lba);
	assert_int_equal(zns_zone_write(dev, 3, lba, b, lba / 2), -EINVAL);
	wr(dev, 2, cap / lba);
	assert_int_equal(rep(dev, 2).cond, ZNS_COND_FULL);
	assert_int_equal(rep(dev, 2).start, zns_geometry(dev)->first_zone_off + 2 * zs);
	/* between capacity and zone size: the device refuses */
	assert_int_equal(zns_zone_write(dev, 2, cap, b, lba), -EIO);
	reopen(&dev);
	assert_int_equal(rep(dev, 0).wp, 4 * lba);
	assert_int_equal(rep(dev, 2).cond, ZNS_COND_FULL);
	assert_int_equal(rep(dev, 2).wp, cap);
	check_data(dev, 2, cap, cap);
	check_data(dev, 3, 0, 0);
	zns_buf_free(b);
	zns_close(dev);
}

static void test_lba_512(void **state)
{
	lba_roundtrip(512);
	(void)state;
}

static void test_lba_4096(void **state)
{
	lba_roundtrip(4096);
	(void)state;
}

static void test_fail_write(void **state)
{
	struct zns_dev *dev = make(4096, 1 << 20, 0, 4);
	uint8_t *b = zns_buf_alloc(4096);
	struct zns_stats st;

	fill(b, 4096, 0, 8192);
	assert_int_equal(zns_fault_fail_write(dev, 3), 0);
	wr(dev, 0, 1);
	wr(dev, 0, 1);
	assert_int_equal(zns_zone_write(dev, 0, 8192, b, 4096), -EIO);
	assert_int_equal(rep(dev, 0).wp, 8192);
	zns_stats_get(dev, &st);
	assert_int_equal(st.write_errors, 1);
	assert_int_equal(st.writes, 2);
	wr(dev, 0, 1); /* one-shot */
	assert_int_equal(rep(dev, 0).wp, 3 * 4096);
	check_data(dev, 0, 3 * 4096, 4 * 4096);
	/* an EMPTY zone whose first write fails stays EMPTY */
	assert_int_equal(zns_fault_fail_write(dev, 1), 0);
	assert_int_equal(zns_zone_write(dev, 1, 0, b, 4096), -EIO);
	assert_int_equal(rep(dev, 1).cond, ZNS_COND_EMPTY);
	zns_buf_free(b);
	zns_close(dev);
	(void)state;
}

static void test_fail_reset(void **state)
{
	struct zns_dev *dev = make(4096, 1 << 20, 0, 4);

	wr(dev, 0, 2);
	wr(dev, 1, 2);
	assert_int_equal(zns_fault_fail_reset(dev, 2), 0);
	assert_int_equal(zns_zone_reset(dev, 0), 0);
	assert_int_equal(zns_zone_reset(dev, 1), -EIO);
	assert_int_equal(rep(dev, 1).wp, 8192);
	assert_int_equal(rep(dev, 1).cond, ZNS_COND_IMP_OPEN);
	assert_int_equal(zns_zone_reset(dev, 1), 0);
	assert_int_equal(rep(dev, 1).cond, ZNS_COND_EMPTY);
	zns_close(dev);
	(void)state;
}

static void test_read_only_offline(void **state)
{
	struct zns_dev *dev = make(4096, 1 << 20, 0, 8);
	uint8_t *b = zns_buf_alloc(4096);

	wr(dev, 0, 2);
	wr(dev, 1, 2);
	assert_int_equal(zns_fault_set_cond(dev, 0, ZNS_COND_READ_ONLY), 0);
	assert_int_equal(zns_fault_set_cond(dev, 1, ZNS_COND_OFFLINE), 0);
	assert_int_equal(zns_fault_set_cond(dev, 2, ZNS_COND_FULL), -EINVAL);
	reopen(&dev);
	assert_int_equal(rep(dev, 0).cond, ZNS_COND_READ_ONLY);
	assert_int_equal(rep(dev, 1).cond, ZNS_COND_OFFLINE);
	fill(b, 4096, 0, 8192);
	assert_int_equal(zns_zone_write(dev, 0, 8192, b, 4096), -EIO);
	check_data(dev, 0, 8192, 8192); /* READ_ONLY stays readable */
	assert_int_equal(zns_zone_reset(dev, 0), -EIO);
	assert_int_equal(zns_zone_finish(dev, 0), -EIO);
	assert_int_equal(zns_zone_open(dev, 0), -EIO);
	assert_int_equal(zns_zone_read(dev, 1, 0, b, 4096), -EIO);
	assert_int_equal(zns_zone_write(dev, 1, 8192, b, 4096), -EIO);
	assert_int_equal(zns_zone_reset(dev, 1), -EIO);
	/* neither holds an active resource: six other zones can be active */
	for (uint32_t z = 2; z < 8; z++)
		wr(dev, z, 1);
	zns_buf_free(b);
	zns_close(dev);
	(void)state;
}

static void test_power_cut_keep(void **state)
{
	struct zns_dev *dev = make(4096, 1 << 20, 0, 8);

	wr(dev, 0, 4);
	wr(dev, 2, 2);
	assert_int_equal(zns_zone_finish(dev, 2), 0);
	wr(dev, 3, 1);
	assert_int_equal(zns_flush(dev), 0);
	wr(dev, 0, 6); /* lost except kept prefix */
	wr(dev, 1, 3); /* never flushed at all */
	wr(dev, 3, 1);
	assert_int_equal(zns_zone_finish(dev, 3), 0);
	assert_int_equal(zns_fault_power_cut(dev, 2, 0), 0);
	assert_int_equal(rep(dev, 0).wp, 6 * 4096);
	assert_int_equal(rep(dev, 0).cond, ZNS_COND_CLOSED);
	assert_int_equal(rep(dev, 1).wp, 2 * 4096);
	assert_int_equal(rep(dev, 1).cond, ZNS_COND_CLOSED);
	assert_int_equal(rep(dev, 2).cond, ZNS_COND_FULL);
	assert_int_equal(rep(dev, 3).cond, ZNS_COND_FULL); /* finish was done */
	check_data(dev, 0, 6 * 4096, 10 * 4096);
	check_data(dev, 1, 2 * 4096, 3 * 4096);
	check_data(dev, 2, 2 * 4096, 2 * 4096);
	check_data(dev, 3, 2 * 4096, 2 * 4096); /* its unflushed LBA was kept */
	reopen(&dev);
	assert_int_equal(rep(dev, 0).wp, 6 * 4096);
	assert_int_equal(rep(dev, 1).wp, 2 * 4096);
	/* writing continues at the rolled-back wp */
	wr(dev, 1, 1);
	check_data(dev, 1, 3 * 4096, 4 * 4096);

	/* keep 0: everything since the flush goes, opened-at-0 zones -> EMPTY */
	assert_int_equal(zns_flush(dev), 0);
	wr(dev, 4, 3);
	wr(dev, 0, 1);
	assert_int_equal(zns_fault_power_cut(dev, 0, 0), 0);
	assert_int_equal(rep(dev, 4).cond, ZNS_COND_EMPTY);
	assert_int_equal(rep(dev, 4).wp, 0);
	assert_int_equal(rep(dev, 0).wp, 6 * 4096);
	assert_int_equal(rep(dev, 1).wp, 3 * 4096);
	check_data(dev, 4, 0, 3 * 4096);
	zns_close(dev);
	(void)state;
}

/* Unwritten space reads as zeroes: after reset (old bytes stay in the
 * backing store) and beyond the data end of a finished zone, across reopen. */
static void test_unwritten_reads_zero(void **state)
{
	struct zns_dev *dev = make(4096, 1 << 20, 0, 4);

	wr(dev, 0, 16);
	wr(dev, 1, 3);
	assert_int_equal(zns_zone_reset(dev, 0), 0);
	check_data(dev, 0, 0, 16 * 4096);
	wr(dev, 0, 2);
	check_data(dev, 0, 2 * 4096, 16 * 4096);
	assert_int_equal(zns_zone_finish(dev, 1), 0);
	assert_int_equal(rep(dev, 1).wp, 1 << 20);
	check_data(dev, 1, 3 * 4096, 1 << 20);
	reopen(&dev);
	assert_int_equal(rep(dev, 1).cond, ZNS_COND_FULL);
	assert_int_equal(rep(dev, 1).wp, 1 << 20);
	check_data(dev, 1, 3 * 4096, 1 << 20);
	check_data(dev, 0, 2 * 4096, 16 * 4096);
	zns_close(dev);
	(void)state;
}

/* Random prefixes: within bounds, data intact below the wp, repeatable. */
static void cut_random(unsigned seed, uint64_t wps[4])
{
	struct zns_dev *dev = make(4096, 1 << 20, 0, 4);

	for (uint32_t z = 0; z < 4; z++)
		wr(dev, z, 1 + z);
	assert_int_equal(zns_flush(dev), 0);
	for (uint32_t z = 0; z < 4; z++)
		wr(dev, z, 20);
	assert_int_equal(zns_fault_power_cut(dev, -1, seed), 0);
	reopen(&dev);
	for (uint32_t z = 0; z < 4; z++) {
		wps[z] = rep(dev, z).wp;
		assert_true(wps[z] >= (1 + z) * 4096u && wps[z] <= (21 + z) * 4096u);
		check_data(dev, z, wps[z], (21 + z) * 4096u);
	}
	zns_close(dev);
}

static void test_power_cut_random(void **state)
{
	uint64_t a[4], b[4], c[4];
	bool differ = false;

	cut_random(42, a);
	cut_random(42, b);
	assert_memory_equal(a, b, sizeof(a));
	for (unsigned s = 1; s < 8 && !differ; s++) {
		cut_random(s, c);
		differ = memcmp(a, c, sizeof(a)) != 0;
	}
	assert_true(differ);
	(void)state;
}

/* Child side: no cmocka asserts (they would unwind into the child's copy of
 * the test runner). Fills zone Z with the pattern in varying write sizes;
 * returns false on any error. */
static bool child_fill(struct zns_dev *d, uint32_t z)
{
	uint8_t *b = zns_buf_alloc(8 * 4096);
	struct zns_zone zz;
	bool ok = true;

	while (ok && zns_zone_report(d, z, 1, &zz) == 1 && zz.cond != ZNS_COND_FULL) {
		uint64_t n = (1 + (zz.wp / 4096) % 7) * 4096;

		if (n > zz.capacity - zz.wp)
			n = zz.capacity - zz.wp;
		fill(b, n, z, zz.wp);
		ok = zns_zone_write(d, z, zz.wp, b, n) == (ssize_t)n;
	}
	zns_buf_free(b);
	return ok;
}

/* The child writes until it is killed; whatever the parent finds below the
 * reopened write pointer is exactly what was written. */
static void test_process_kill(void **state)
{
	struct zns_dev *dev = make(4096, 16 << 20, 0, 4);
	int st;
	pid_t pid;

	zns_close(dev);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct zns_dev *d = NULL;

		if (zns_open(img, 0, &d) != 0)
			_exit(2);
		for (uint32_t z = 0; z < 2; z++)
			if (!child_fill(d, z))
				_exit(4);
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_int_equal(zns_open(img, 0, &dev), 0);
	assert_int_equal(rep(dev, 0).cond, ZNS_COND_FULL);
	assert_int_equal(rep(dev, 1).cond, ZNS_COND_FULL);
	assert_int_equal(rep(dev, 2).cond, ZNS_COND_EMPTY);
	check_data(dev, 0, 16 << 20, 16 << 20);

	/* now kill at an arbitrary moment, mid-write */
	zns_close(dev);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct zns_dev *d = NULL;

		if (zns_open(img, 0, &d) != 0)
			_exit(2);
		_exit(child_fill(d, 2) ? 3 : 4);
	}
	usleep(20000);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) || WEXITSTATUS(st) == 3);
	assert_int_equal(zns_open(img, 0, &dev), 0);
	printf("# killed with zone 2 wp at %llu\n", (unsigned long long)rep(dev, 2).wp);
	check_data(dev, 2, rep(dev, 2).wp, rep(dev, 2).wp);
	if (rep(dev, 2).cond != ZNS_COND_FULL)
		wr(dev, 2, 1);
	zns_close(dev);
	(void)state;
}

struct par {
	struct zns_dev *dev;
	uint32_t zone;
};

static void *par_writer(void *arg)
{
	struct par *p = arg;

	for (int i = 0; i < 64; i++)
		wr(p->dev, p->zone, 1 + (uint64_t)(i % 3));
	return NULL;
}

static void test_parallel_zones(void **state)
{
	struct zns_dev *dev = make(4096, 1 << 20, 0, 8);
	pthread_t t[4];
	struct par p[4];

	for (uint32_t i = 0; i < 4; i++) {
		p[i] = (struct par){dev, i};
		assert_int_equal(pthread_create(&t[i], NULL, par_writer, &p[i]), 0);
	}
	for (uint32_t i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (uint32_t i = 0; i < 4; i++)
		check_data(dev, i, 127 * 4096, 128 * 4096); /* 22x1 + 21x2 + 21x3 */
	zns_close(dev);
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_create_validation),
	    cmocka_unit_test(test_corrupt_zone_entry),
	    cmocka_unit_test(test_reserved_header_bytes),
	    cmocka_unit_test(test_lba_512),
	    cmocka_unit_test(test_lba_4096),
	    cmocka_unit_test(test_fail_write),
	    cmocka_unit_test(test_fail_reset),
	    cmocka_unit_test(test_read_only_offline),
	    cmocka_unit_test(test_power_cut_keep),
	    cmocka_unit_test(test_power_cut_random),
	    cmocka_unit_test(test_unwritten_reads_zero),
	    cmocka_unit_test(test_process_kill),
	    cmocka_unit_test(test_parallel_zones),
	};

	return cmocka_run_group_tests_name("zns-emul", tests, suite_setup,
	                                   suite_teardown);
}
