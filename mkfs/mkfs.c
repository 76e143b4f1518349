/* SPDX-License-Identifier: MIT */
/*
 * mkfs.tslabfs: format a zoned block device, a conventional block device
 * or an image file for tslabfs.
 *
 * Exit codes follow mkfs(8): 0 success, 1 operational error (target
 * unusable, I/O error, refused), 16 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mkfs/mkfs.h"
#include "slab/slab.h"
#include "zns/zns.h"

#define MKFS_EXIT_OK    0
#define MKFS_EXIT_ERROR 1
#define MKFS_EXIT_USAGE 16

#define MKFS_DEFAULT_SIZE      (4ull << 30)
#define MKFS_DEFAULT_ZONE_SIZE (64ull << 20)

struct mkfs_opts {
	const char *target;
	const char *label;
	bool force;
	bool quiet;
	bool size_set;
	struct zns_emul_params emul;
	uint32_t reserve_zones;
};

static void mkfs_usage(FILE *out)
{
	fprintf(
	    out,
	    "Usage: mkfs.tslabfs [options] TARGET\n"
	    "\n"
	    "Format TARGET for tslabfs. TARGET is a host-managed zoned block device\n"
	    "(native zones), a conventional block device or an image file (emulated\n"
	    "zones; an image file is created when missing).\n"
	    "\n"
	    "Options:\n"
	    "  -f, --force               overwrite an existing filesystem on TARGET\n"
	    "  -L, --label LABEL         volume label (up to 31 bytes)\n"
	    "  -s, --size SIZE           image file size (default 4G; image files only)\n"
	    "  -z, --zone-size SIZE      emulated zone size (default 64M)\n"
	    "  -c, --zone-capacity SIZE  emulated zone capacity (default: zone size)\n"
	    "  -b, --lba-size N          emulated logical block size, 512 or 4096\n"
	    "                            (default 4096)\n"
	    "      --max-open N          emulated max open zones (default 14)\n"
	    "      --max-active N        emulated max active zones (default 14)\n"
	    "  -r, --reserve-zones N     zones kept free for garbage collection\n"
	    "  -q, --quiet               print nothing but errors\n"
	    "  -h, --help                show this help and exit\n"
	    "  -V, --version             show the version and exit\n"
	    "\n"
	    "SIZE takes an optional K, M, G or T suffix (powers of 1024).\n"
	    "Emulation options apply to image files and conventional block devices;\n"
	    "a zoned device's geometry comes from the device.\n"
	    "Exit status: 0 success, 1 error, 16 usage error.\n");
}

static int mkfs_parse_u32(const char *s, uint32_t *out)
{
	char *end;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int mkfs_bad_arg(const char *opt, const char *val)
{
	fprintf(stderr, "mkfs.tslabfs: invalid value '%s' for %s\n", val, opt);
	return -EINVAL;
}

enum { OPT_MAX_OPEN = 256, OPT_MAX_ACTIVE };

static int mkfs_parse_emul_opt(int c, const char *arg, struct mkfs_opts *o)
{
	switch (c) {
	case 's':
		o->size_set = true;
		return mkfs_parse_size(arg, &o->emul.size) ? mkfs_bad_arg("--size", arg)
		                                           : 0;
	case 'z':
		return mkfs_parse_size(arg, &o->emul.zone_size)
		           ? mkfs_bad_arg("--zone-size", arg)
		           : 0;
	case 'c':
		return mkfs_parse_size(arg, &o->emul.zone_capacity)
		           ? mkfs_bad_arg("--zone-capacity", arg)
		           : 0;
	case 'b':
		if (mkfs_parse_u32(arg, &o->emul.lba_size) ||
		    (o->emul.lba_size != 512 && o->emul.lba_size != 4096))
			return mkfs_bad_arg("--lba-size (512 or 4096)", arg);
		return 0;
	case OPT_MAX_OPEN:
		return mkfs_parse_u32(arg, &o->emul.max_open)
		           ? mkfs_bad_arg("--max-open", arg)
		           : 0;
	case OPT_MAX_ACTIVE:
		return mkfs_parse_u32(arg, &o->emul.max_active)
		           ? mkfs_bad_arg("--max-active", arg)
		           : 0;
	case 'r':
		return mkfs_parse_u32(arg, &o->reserve_zones)
		           ? mkfs_bad_arg("--reserve-zones", arg)
		           : 0;
	}
	return -EINVAL;
}

/* Returns 0 to go on, 1 to exit successfully (help/version), <0 usage error. */
static int mkfs_parse_args(int argc, char **argv, struct mkfs_opts *o)
{
	static const struct option longopts[] = {
	    {"force", no_argument, NULL, 'f'},
	    {"label", required_argument, NULL, 'L'},
	    {"size", required_argument, NULL, 's'},
	    {"zone-size", required_argument, NULL, 'z'},
	    {"zone-capacity", required_argument, NULL, 'c'},
	    {"lba-size", required_argument, NULL, 'b'},
	    {"max-open", required_argument, NULL, OPT_MAX_OPEN},
	    {"max-active", required_argument, NULL, OPT_MAX_ACTIVE},
	    {"reserve-zones", required_argument, NULL, 'r'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "fL:s:z:c:b:r:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o->force = true;
			break;
		case 'L':
			if (strlen(optarg) > 31)
				return mkfs_bad_arg("--label (at most 31 bytes)", optarg);
			o->label = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			mkfs_usage(stdout);
			return 1;
		case 'V':
			printf("mkfs.tslabfs %s\n", TSLAB_VERSION);
			return 1;
		case '?':
			return -EINVAL;
		default:
			if (mkfs_parse_emul_opt(c, optarg, o))
				return -EINVAL;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "mkfs.tslabfs: %s\n",
		        optind >= argc ? "no TARGET given"
		                       : "more than one TARGET given");
		return -EINVAL;
	}
	o->target = argv[optind];
	return 0;
}

static int mkfs_check_emul_params(const struct mkfs_opts *o, bool is_file)
{
	const struct zns_emul_params *p = &o->emul;

	if (!is_file && o->size_set) {
		fprintf(stderr, "mkfs.tslabfs: --size applies to image files only\n");
		return -EINVAL;
	}
	if (is_file && !p->size) {
		fprintf(stderr, "mkfs.tslabfs: --size must be larger than 0\n");
		return -EINVAL;
	}
	if (p->zone_size == 0 || p->zone_size % p->lba_size) {
		fprintf(stderr,
		        "mkfs.tslabfs: zone size must be a non-zero multiple of %u\n",
		        p->lba_size);
		return -EINVAL;
	}
	if (p->zone_capacity > p->zone_size || p->zone_capacity % p->lba_size ||
	    p->zone_capacity < 4096) {
		fprintf(
		    stderr,
		    "mkfs.tslabfs: zone capacity must be a multiple of the block size, "
		    "at least 4096 and at most the zone size\n");
		return -EINVAL;
	}
	return 0;
}

/*
 * The zones left after the emulation header in SIZE bytes must hold
 * tslabfs (superblock, journal, data and GC reserve zones): checked here,
 * before zns_emul_create() truncates or writes anything.
 */
static int mkfs_check_layout(const struct mkfs_opts *o, uint64_t size)
{
	struct slab_format_opts fo = {.reserve_zones = o->reserve_zones};
	uint32_t nz = 0;
	int ret = zns_emul_layout(&o->emul, size, &nz);

	if (ret == -EINVAL) {
		fprintf(stderr, "mkfs.tslabfs: invalid zone geometry\n");
		return -EINVAL;
	}
	if (ret || nz < MKFS_MIN_ZONES || (ret = slab_format_fits(nz, &fo))) {
		fprintf(
		    stderr,
		    "mkfs.tslabfs: %" PRIu64 " bytes hold %u zones of %" PRIu64
		    " bytes after the emulation header; tslabfs needs at least %u%s\n",
		    size, nz, o->emul.zone_size, MKFS_MIN_ZONES,
		    ret == -EINVAL ? " and more data zones than --reserve-zones + 2"
		                   : "");
		return -EINVAL;
	}
	return 0;
}

static void mkfs_print_geometry(const struct mkfs_opts *o, struct zns_dev *dev)
{
	const struct zns_geometry *g = zns_geometry(dev);
	struct slab_sb_info sb;
	char uuid[37];

	if (o->quiet)
		return;
	if (slab_sb_read(dev, &sb)) {
		memset(&sb, 0, sizeof(sb));
	}
	mkfs_uuid_str(sb.uuid, uuid);
	printf("tslabfs on %s (%s zones)\n", o->target, zns_backend_name(g->backend));
	printf("  label           %s\n", sb.label[0] ? sb.label : "(none)");
	printf("  uuid            %s\n", uuid);
	printf("  format version  %u\n", sb.version);
	printf("  block size      %u\n", g->lba_size);
	printf("  zones           %u x %" PRIu64 " MiB (capacity %" PRIu64 " MiB)\n",
	       g->nr_zones, g->zone_size >> 20, g->zone_capacity >> 20);
	printf("  max open/active %u/%u%s\n", g->max_open, g->max_active,
	       g->max_active ? "" : " (0 = no limit)");
	printf("  superblock      zones %u and %u\n", sb.sb_zones[0], sb.sb_zones[1]);
	printf("  journal         %u zones\n", sb.journal_zones);
	printf("  data            zones %u..%u, %u kept free for GC\n",
	       sb.first_data_zone, g->nr_zones - 1, sb.reserve_zones);
	printf("  data capacity   %" PRIu64 " MiB\n",
	       (uint64_t)(g->nr_zones - sb.first_data_zone) * g->zone_capacity >> 20);
}

static int mkfs_emul_create(const struct mkfs_opts *o)
{
	int ret = zns_emul_create(o->target, &o->emul);

	if (ret)
		fprintf(stderr, "mkfs.tslabfs: cannot set up emulated zones on %s: %s\n",
		        o->target, strerror(-ret));
	return ret;
}

/* Size of block device PATH (0 when unknown: the layout check refuses). */
static uint64_t mkfs_blkdev_size(const char *path)
{
	uint64_t size = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		size = 0;
	close(fd);
	return size;
}

/*
 * Make TARGET ready for slab_format(). Every failure is reported here;
 * -EINVAL means a usage error.
 */
static int mkfs_prepare_target(struct mkfs_opts *o, int kind)
{
	int ret;

	if (kind == -ENOENT) {
		if (!o->size_set)
			o->emul.size = MKFS_DEFAULT_SIZE;
		ret = mkfs_check_emul_params(o, true);
		if (!ret)
			ret = mkfs_check_layout(o, o->emul.size);
		if (ret)
			return ret;
		return mkfs_emul_create(o);
	}
	if (kind < 0) {
		fprintf(stderr, "mkfs.tslabfs: cannot use %s: %s\n", o->target,
		        strerror(-kind));
		return -ENODEV;
	}
	/* Every refusal comes before the first byte written. */
	ret = mkfs_refuse_busy(o->target);
	if (!ret)
		ret = mkfs_refuse_existing(o->target, o->force);
	if (ret)
		return ret;
	if (kind == ZNS_BACKEND_NATIVE)
		return 0;
	if (kind == ZNS_BACKEND_EMUL_FILE && !o->size_set) {
		struct stat st;

		if (stat(o->target, &st) == 0 && st.st_size > 0)
			o->emul.size = (uint64_t)st.st_size;
		else
			o->emul.size = MKFS_DEFAULT_SIZE;
	}
	ret = mkfs_check_emul_params(o, kind == ZNS_BACKEND_EMUL_FILE);
	if (!ret)
		ret = mkfs_check_layout(o, kind == ZNS_BACKEND_EMUL_FILE
		                               ? o->emul.size
		                               : mkfs_blkdev_size(o->target));
	if (ret)
		return ret;
	return mkfs_emul_create(o);
}

int main(int argc, char **argv)
{
	struct mkfs_opts o = {
	    .emul = {.lba_size = 4096,
	             .zone_size = MKFS_DEFAULT_ZONE_SIZE,
	             .max_open = 14,
	             .max_active = 14},
	};
	struct slab_format_opts fo = {0};
	struct zns_dev *dev;
	int ret;

	ret = mkfs_parse_args(argc, argv, &o);
	if (ret)
		return ret > 0 ? MKFS_EXIT_OK : MKFS_EXIT_USAGE;
	if (!o.emul.zone_capacity)
		o.emul.zone_capacity = o.emul.zone_size;

	ret = mkfs_prepare_target(&o, zns_probe(o.target));
	if (ret)
		return ret == -EINVAL ? MKFS_EXIT_USAGE : MKFS_EXIT_ERROR;
	ret = zns_open(o.target, ZNS_OPEN_EXCL, &dev);
	if (ret) {
		fprintf(stderr, "mkfs.tslabfs: cannot open %s: %s%s\n", o.target,
		        strerror(-ret), ret == -EBUSY ? " (is it mounted?)" : "");
		return MKFS_EXIT_ERROR;
	}
	fo.label = o.label;
	fo.reserve_zones = o.reserve_zones;
	ret = slab_format(dev, &fo);
	if (ret) {
		fprintf(stderr, "mkfs.tslabfs: formatting %s failed: %s\n", o.target,
		        strerror(-ret));
		goto close_dev;
	}
	mkfs_print_geometry(&o, dev);
close_dev:
	zns_close(dev);
	return ret ? MKFS_EXIT_ERROR : MKFS_EXIT_OK;
}
