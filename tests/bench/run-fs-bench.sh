#!/bin/bash
# Filesystem-level small-file benchmark: tslabfs against ext4, xfs and btrfs,
# in one run, on image files in the same scratch directory (same disk), one
# table at the end with every value also given as a ratio to ext4.
#
#   sudo tests/bench/run-fs-bench.sh [--build DIR] [--files N] [--sizes "100 512 4000"]
#        [--threads "1 2"] [--dirs D] [--scratch DIR] [--fs "ext4 xfs btrfs tslabfs"]
#
# Needs root (loop devices, mount, drop_caches), e2fsprogs, xfsprogs,
# btrfs-progs, util-linux, fuse3, and a build directory with
# tests/bench/fs_bench (built here with ninja if missing) and, for the tslabfs
# column, fs/tslabfs and mkfs/mkfs.tslabfs. When those are missing the
# tslabfs column says so (n/a) and the reason is printed; nothing is faked.
#
# Setup. ext4, xfs, btrfs: a sparse image file (--image-size, default 16G) on
# a loop device (direct I/O on the backing file, so there is one page cache,
# not two), default mkfs and mount options (mkfs.xfs runs on the image file); ext4 is made with
# lazy_itable_init=0,lazy_journal_init=0 so that no background initialisation
# thread writes during the measurement (and its inode tables and journal are
# allocated before the baseline is taken). tslabfs: mkfs.tslabfs on a sparse
# image file of the same size (emulated zones), `tslabfs -f` in the background.
# Every configuration gets a fresh image and mkfs; only one filesystem is
# mounted at a time. Mounts, loop devices and images are removed on any exit.
#
# Data set: N files (--files, default 100000) named wNNNN/sensor-IIIIIIII in D
# top-level directories (--dirs, default 10; on tslabfs each is an epoch),
# files of S bytes for each S in --sizes; with T threads, for each T in
# --threads, all threads write into the current directory together.
#
# "sync" below is fs_bench's durability point: syncfs() of the filesystem,
# then fsync() of every top-level directory and of the root. The fsyncs are
# there for tslabfs: the kernel never passes syncfs() to a /dev/fuse daemon
# (FUSE_SYNCFS goes to virtiofs only), while FSYNCDIR does reach it, and a
# directory fsync must make the files created in it durable. On ext4, xfs and
# btrfs they find nothing left to write after syncfs().
#
# Rows (per file size S; ingest per S and T; everything else with the first T):
#   ingest         create+write+close N files, then sync, files/s (sync
#                  included).
#   space          device bytes used per file after ingest+sync, as a
#                  multiple of the payload S, by two independent methods:
#                  "alloc": growth of the image file's allocated bytes
#                  (du --block-size=1 of the sparse image, after mkfs+mount vs
#                  after ingest+sync) — everything the filesystem wrote,
#                  metadata and log/journal growth included, measured outside
#                  the filesystem, the same way for all four; this is the
#                  primary number. "df": growth of statfs() used bytes
#                  (f_blocks - f_bfree), i.e. what the filesystem says.
#                  ext4 and xfs preallocate their inode tables / log at mkfs,
#                  which therefore sits in the baseline of "alloc".
#   tslabfs RSS    VmRSS and VmHWM of the daemon (/proc/PID/status) after
#                  ingest+sync, in MiB; the VmRSS growth since mount and
#                  VmHWM, each scaled to MiB per million files.
#   cold read      sync; echo 3 > /proc/sys/vm/drop_caches (tslabfs is also
#                  unmounted and mounted again first, which drops its state;
#                  the time that mount took is reported), then open/read/close
#                  every file once in one seeded random order, content
#                  verified: p50/p99 latency in µs and files/s.
#   warm read      the same again immediately.
#   statwalk       after dropping caches again (and remounting tslabfs): nftw
#                  stat of every entry, files/s.
#   overwrite      10% of the files, random, open(O_WRONLY|O_TRUNC), write a
#                  few bytes (a counter), close; then sync; files/s.
#   expire         remove window w0000 (N/D files): rm -rf style on ext4/xfs/
#                  btrfs (nftw, unlink, rmdir, timed in process), a single
#                  rmdir() on tslabfs (epoch drop); seconds, and seconds
#                  including the following sync.
#   expire all N   a separate configuration: N files of 100 B in ONE
#                  directory, then the same removal of that directory
#                  (--files 1000000 gives the million-file epoch drop).
#   RSS over       tslabfs only, a separate configuration: C cycles
#   cycles         (--cycles, default 100) of mkdir of a top-level directory
#                  (a new epoch), M files of 100 B in it (--cycle-files,
#                  default 10000), sync, rmdir (the epoch drop); VmRSS of
#                  the daemon 200 ms after each drop: after cycle 1, after
#                  the last cycle, and the growth between them in %.
#                  --rss-only runs this configuration alone.
# Raw key=value output of every step is kept under SCRATCH/results-*/.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

build=$top/build
files=100000
sizes="100 512 4000"
threads="1 2"
dirs=10
scratch=/var/tmp/tslab-bench
image_size=16G
fslist="ext4 xfs btrfs tslabfs"
tslab_opts=""
step_timeout=600
big_expire=1
rss_cycles=100
cycle_files=10000
rss_only=0
hog=0
hog_pid=""

usage() {
	sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
	cat <<EOF
Options:
  --build DIR        build directory (default $top/build)
  --files N          files per configuration (default 100000)
  --sizes "S ..."    file sizes in bytes (default "100 512 4000")
  --threads "T ..."  ingest thread counts (default "1 2")
  --dirs D           top-level directories (default 10)
  --scratch DIR      where images and results go (default /var/tmp/tslab-bench)
  --image-size SIZE  image file size (default 16G)
  --fs "LIST"        filesystems (default "ext4 xfs btrfs tslabfs")
  --tslabfs-opts O   extra -o options for the tslabfs daemon
  --no-big-expire    skip the N-files-in-one-directory expiry configuration
  --cycles C         RSS-over-cycles configuration: C cycles (default 100, 0 = skip)
  --cycle-files M    files per cycle (default 10000)
  --rss-only         run only the RSS-over-cycles configuration (tslabfs)
  --step-timeout S   kill a step that runs longer (default 600 s)
  --hog              keep CPU 0 busy with a spinning shell for the whole run
                     (taskset -c 0), as on a user's machine that is not idle
EOF
}

while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$2; shift ;;
	--files) files=$2; shift ;;
	--sizes) sizes=$2; shift ;;
	--threads) threads=$2; shift ;;
	--dirs) dirs=$2; shift ;;
	--scratch) scratch=$2; shift ;;
	--image-size) image_size=$2; shift ;;
	--fs) fslist=$2; shift ;;
	--tslabfs-opts) tslab_opts=$2; shift ;;
	--no-big-expire) big_expire=0 ;;
	--cycles) rss_cycles=$2; shift ;;
	--cycle-files) cycle_files=$2; shift ;;
	--rss-only) rss_only=1 ;;
	--step-timeout) step_timeout=$2; shift ;;
	--hog) hog=1 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "run-fs-bench: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
	shift
done

die() { echo "run-fs-bench: $*" >&2; exit 1; }
# Columns: "tslabfs" (the daemon's default transport), "tslabfs-dev"
# (-o noio_uring) and "tslabfs-uring" (-o io_uring).
is_tslab() { case $1 in tslabfs*) return 0 ;; esac; return 1; }
tslab_transport_opt() {
	case $1 in
	tslabfs-dev) echo noio_uring ;;
	tslabfs-uring) echo io_uring ;;
	esac
}
[ "$(id -u)" = 0 ] || die "needs root (loop devices, mount, drop_caches)"
[ -d "$build" ] || die "no build directory $build (meson setup $build $top)"
build=$(cd "$build" && pwd)

t_start=$(date +%s)
log() { printf '[%4ds] %s\n' $(($(date +%s) - t_start)) "$*" >&2; }

bench=$build/tests/bench/fs_bench
if [ ! -x "$bench" ]; then
	ninja -C "$build" tests/bench/fs_bench >/dev/null || die "cannot build fs_bench"
fi
tslabfs_bin=$build/fs/tslabfs
mkfs_tslabfs=$build/mkfs/mkfs.tslabfs
tslab_missing=""
case " $fslist " in
*" tslabfs"*)
	ninja -C "$build" fs/tslabfs mkfs/mkfs.tslabfs >/dev/null 2>&1
	[ -x "$tslabfs_bin" ] || tslab_missing="$tslab_missing $tslabfs_bin"
	[ -x "$mkfs_tslabfs" ] || tslab_missing="$tslab_missing $mkfs_tslabfs"
	if [ -n "$tslab_missing" ]; then
		log "tslabfs column will be n/a: missing$tslab_missing (ninja -C $build fs/tslabfs mkfs/mkfs.tslabfs)"
	fi
	;;
esac
for t in losetup mkfs.ext4 mkfs.xfs mkfs.btrfs fusermount3 du mountpoint timeout; do
	command -v $t >/dev/null || die "missing tool $t"
done

mkdir -p "$scratch" || die "cannot create $scratch"
scratch=$(cd "$scratch" && pwd)
res=$scratch/results-$(date +%Y%m%d-%H%M%S)
mkdir -p "$res"
values=$res/values.tsv     # metric-key <TAB> fs <TAB> value
metrics=$res/metrics.tsv   # metric-key <TAB> label <TAB> unit, in table order
notes=$res/notes.txt
: >"$values"; : >"$metrics"; : >"$notes"
exec 2> >(tee -a "$res/progress.log" >&2)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# State of the one mounted filesystem, for cleanup.
cur_fs="" cur_img="" cur_loop="" cur_mnt="" cur_pid=""

cleanup() {
	if [ -n "$cur_mnt" ] && mountpoint -q "$cur_mnt"; then
		if is_tslab "$cur_fs"; then
			fusermount3 -u "$cur_mnt" 2>/dev/null || fusermount3 -uz "$cur_mnt"
		else
			umount "$cur_mnt" 2>/dev/null || umount -l "$cur_mnt"
		fi
	fi
	if [ -n "$cur_pid" ] && kill -0 "$cur_pid" 2>/dev/null; then
		for _ in $(seq 50); do kill -0 "$cur_pid" 2>/dev/null || break; sleep 0.2; done
		kill "$cur_pid" 2>/dev/null
	fi
	[ -n "$cur_loop" ] && losetup -d "$cur_loop" 2>/dev/null
	[ -n "$cur_img" ] && rm -f "$cur_img"
	cur_fs="" cur_img="" cur_loop="" cur_mnt="" cur_pid=""
}
stop_hog() {
	[ -n "$hog_pid" ] && kill "$hog_pid" 2>/dev/null
	hog_pid=""
}
# A dead reader of stderr (tee below) must not kill the script before cleanup.
trap '' PIPE
trap 'cleanup >/dev/null 2>&1; stop_hog' EXIT
trap 'exit 130' INT TERM HUP

metric() { # key label unit: declare a row (first declaration fixes its position)
	grep -q "^$1	" "$metrics" || printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$metrics"
}
put() { # key fs value
	printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$values"
}
put_space() { # key fs value method
	if [ -n "$3" ]; then
		put "$1" "$2" "$3"
	else
		echo "$1 $2: $4 did not grow during ingest; space not measurable this way" >>"$notes"
	fi
}
kv() { # file key
	sed -n "s/^$2=//p" "$1" | head -n1
}
alloc_bytes() {
	du --block-size=1 "$1" | cut -f1
}
# Growth per file as a multiple of the payload; empty (n/a) when nothing grew,
# which means the measurement cannot see this filesystem's writes (e.g. a
# preallocated image), not that the files are free.
per_payload() { # before after size
	awk -v a="$1" -v b="$2" -v s="$3" -v n="$files" \
		'BEGIN { if (b > a) printf "%.4f", (b - a) / (n * s) }'
}
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# Runs fs_bench; output in $res/$tag.txt. Fails (and notes why) on error.
# $limit, when set, replaces --step-timeout for this step.
run_bench() { # tag args...
	local tag=$1 out=$res/$1.txt
	shift
	if ! timeout -k 10 "${limit:-$step_timeout}" "$bench" "$@" >"$out" 2>"$out.err"; then
		echo "$tag: fs_bench $* failed: $(tail -n3 "$out.err" | tr '\n' ' ')" >>"$notes"
		log "FAILED $tag: $(tail -n1 "$out.err")"
		return 1
	fi
	return 0
}

wait_mounted() { # mnt pid: 0 when mounted, 1 when the daemon died or 60 s passed
	for _ in $(seq 600); do
		mountpoint -q "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

tslab_start() { # img mnt; sets cur_pid and tslab_mount_s
	local t0 t1 opts=() o
	o=$(tslab_transport_opt "$cur_fs")
	[ -n "$tslab_opts" ] && o=${o:+$o,}$tslab_opts
	[ -n "$o" ] && opts=(-o "$o")
	echo "== $(date +%T) tslabfs -f ${opts[*]} $*" >>"$res/tslabfs-daemon.log"
	t0=$(date +%s.%N)
	"$tslabfs_bin" -f "${opts[@]}" "$1" "$2" >>"$res/tslabfs-daemon.log" 2>&1 &
	cur_pid=$!
	if ! wait_mounted "$2" "$cur_pid"; then
		echo "tslabfs did not mount: $(tail -n3 "$res/tslabfs-daemon.log" | tr '\n' ' ')" >>"$notes"
		log "tslabfs did not mount (see $res/tslabfs-daemon.log)"
		return 1
	fi
	t1=$(date +%s.%N)
	tslab_mount_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	return 0
}

tslab_stop() { # waits for the daemon to finish writing back and exit
	local st
	if ! kill -0 "$cur_pid" 2>/dev/null; then
		wait "$cur_pid" 2>/dev/null
		st=$?
		echo "tslabfs daemon $cur_pid had exited (status $st) before unmount" >>"$notes"
		log "tslabfs daemon died (status $st), see $res/tslabfs-daemon.log"
		cur_pid=""
		fusermount3 -u "$cur_mnt" 2>/dev/null || fusermount3 -uz "$cur_mnt" 2>/dev/null
		return 1
	fi
	fusermount3 -u "$cur_mnt" || return 1
	for _ in $(seq 600); do
		kill -0 "$cur_pid" 2>/dev/null || { wait "$cur_pid" 2>/dev/null; cur_pid=""; return 0; }
		sleep 0.1
	done
	echo "tslabfs daemon $cur_pid still running 60 s after unmount" >>"$notes"
	return 1
}

fs_setup() { # fs: fresh image, mkfs, mount at $cur_mnt
	local fs=$1
	cur_fs=$fs cur_img=$scratch/$fs.img cur_mnt=$scratch/mnt-$fs
	mkdir -p "$cur_mnt"
	rm -f "$cur_img"
	if is_tslab "$fs"; then
		"$mkfs_tslabfs" -q --size "$image_size" "$cur_img" >>"$res/tslabfs-mkfs.log" 2>&1 ||
			{ echo "mkfs.tslabfs failed: $(tail -n3 "$res/tslabfs-mkfs.log" | tr '\n' ' ')" >>"$notes"; return 1; }
		tslab_start "$cur_img" "$cur_mnt"
		return
	fi
	truncate -s "$image_size" "$cur_img" || return 1
	# mkfs.xfs formats the image file itself: on a block device it stat()s
	# every mount point to see whether the device is mounted, and one hung
	# FUSE mount elsewhere on the machine would stall it. The result is the
	# same filesystem. Everything is bounded by timeouts for the same reason.
	if [ "$fs" = xfs ]; then
		timeout -k 5 120 mkfs.xfs -f -q "$cur_img" ||
			{ echo "mkfs.xfs failed or timed out" >>"$notes"; return 1; }
	fi
	cur_loop=$(losetup --find --show --direct-io=on "$cur_img") || return 1
	case $fs in
	ext4) timeout -k 5 120 mkfs.ext4 -F -q -E lazy_itable_init=0,lazy_journal_init=0 "$cur_loop" ;;
	btrfs) timeout -k 5 120 mkfs.btrfs -f -q "$cur_loop" >/dev/null ;;
	esac || { echo "mkfs.$fs failed or timed out" >>"$notes"; return 1; }
	timeout -k 5 120 mount "$cur_loop" "$cur_mnt"
}

fs_teardown() {
	if is_tslab "$cur_fs" && [ -n "$cur_pid" ]; then
		tslab_stop
	fi
	cleanup
}

# Makes caches cold: tslabfs is remounted (its DRAM state goes), then the
# kernel's page, dentry and inode caches are dropped.
make_cold() { # fs [tag: record the mount time under remount_TAG]
	if is_tslab "$1"; then
		tslab_stop && drop_caches && tslab_start "$cur_img" "$cur_mnt" || return 1
		[ -n "${2:-}" ] && put "remount_$2" "$1" "$tslab_mount_s"
		return 0
	fi
	drop_caches
}

# Ingest, space and (tslabfs) RSS for one configuration; sets ok=1 on success.
do_ingest() { # fs tag size nthreads ndirs
	local fs=$1 tag=$2 size=$3 nt=$4 nd=$5 a0 d0 a1 d1 o
	ok=0
	sync
	a0=$(alloc_bytes "$cur_img")
	run_bench "$tag-$fs-statfs0" statfs "$cur_mnt" || return 1
	d0=$(kv "$res/$tag-$fs-statfs0.txt" used_bytes)
	is_tslab "$fs" && rss0=$(awk '/VmRSS/ {print $2}' "/proc/$cur_pid/status")
	run_bench "$tag-$fs-ingest" -n "$files" -s "$size" -d "$nd" -t "$nt" ingest "$cur_mnt" ||
		return 1
	o=$res/$tag-$fs-ingest.txt
	put "ingest_$tag" "$fs" "$(kv "$o" files_per_s)"
	log "$tag $fs: ingest $(kv "$o" files_per_s) files/s (create $(kv "$o" create_s) s, sync $(kv "$o" sync_s) s)"
	a1=$(alloc_bytes "$cur_img")
	run_bench "$tag-$fs-statfs1" statfs "$cur_mnt" || return 1
	d1=$(kv "$res/$tag-$fs-statfs1.txt" used_bytes)
	if [ "$size" -gt 0 ]; then
		put_space "space_alloc_$tag" "$fs" "$(per_payload "$a0" "$a1" "$size")" "image allocation"
		put_space "space_df_$tag" "$fs" "$(per_payload "$d0" "$d1" "$size")" "statfs used"
	fi
	if is_tslab "$fs"; then
		local rss1 hwm1
		rss1=$(awk '/VmRSS/ {print $2}' "/proc/$cur_pid/status")
		hwm1=$(awk '/VmHWM/ {print $2}' "/proc/$cur_pid/status")
		put "rss_$tag" "$fs" "$(awk -v k="$rss1" 'BEGIN { print k / 1024 }')"
		put "hwm_$tag" "$fs" "$(awk -v k="$hwm1" 'BEGIN { print k / 1024 }')"
		put "rssper_$tag" "$fs" "$(awk -v a="$rss0" -v b="$rss1" -v n="$files" \
			'BEGIN { print (b - a) / 1024 * 1e6 / n }')"
		put "hwmper_$tag" "$fs" "$(awk -v b="$hwm1" -v n="$files" \
			'BEGIN { print b / 1024 * 1e6 / n }')"
		log "$tag $fs: VmRSS $rss0 kB at mount, $rss1 kB after ingest, VmHWM $hwm1 kB"
	fi
	ok=1
}

# Reads, statwalk, overwrite and expire on the ingested data set.
do_rest() { # fs tag size nthreads ndirs
	local fs=$1 tag=$2 size=$3 nt=$4 nd=$5 o m=tree
	make_cold "$fs" "$tag" || return 1
	if run_bench "$tag-$fs-coldread" -n "$files" -s "$size" -d "$nd" read "$cur_mnt"; then
		o=$res/$tag-$fs-coldread.txt
		put "cold_p50_$tag" "$fs" "$(kv "$o" p50_us)"
		put "cold_p99_$tag" "$fs" "$(kv "$o" p99_us)"
		put "cold_p999_$tag" "$fs" "$(kv "$o" p999_us)"
		put "cold_rate_$tag" "$fs" "$(kv "$o" files_per_s)"
		log "$tag $fs: cold read p50 $(kv "$o" p50_us) p99 $(kv "$o" p99_us) µs, $(kv "$o" files_per_s) files/s"
	fi
	if run_bench "$tag-$fs-warmread" -n "$files" -s "$size" -d "$nd" read "$cur_mnt"; then
		o=$res/$tag-$fs-warmread.txt
		put "warm_p50_$tag" "$fs" "$(kv "$o" p50_us)"
		put "warm_p99_$tag" "$fs" "$(kv "$o" p99_us)"
		put "warm_p999_$tag" "$fs" "$(kv "$o" p999_us)"
		put "warm_rate_$tag" "$fs" "$(kv "$o" files_per_s)"
	fi
	make_cold "$fs" || return 1
	if run_bench "$tag-$fs-statwalk" statwalk "$cur_mnt"; then
		o=$res/$tag-$fs-statwalk.txt
		if [ "$(kv "$o" walked_files)" != "$files" ]; then
			echo "$tag $fs: statwalk saw $(kv "$o" walked_files) files, expected $files" >>"$notes"
		else
			put "statwalk_$tag" "$fs" "$(kv "$o" files_per_s)"
		fi
	fi
	if run_bench "$tag-$fs-overwrite" -n "$files" -d "$nd" -t "$nt" -p 10 overwrite "$cur_mnt"; then
		put "overwrite_$tag" "$fs" "$(kv "$res/$tag-$fs-overwrite.txt" files_per_s)"
	fi
	is_tslab "$fs" && m=rmdir
	if run_bench "$tag-$fs-expire" -n "$files" -d "$nd" -w 0 -m $m expire "$cur_mnt"; then
		o=$res/$tag-$fs-expire.txt
		put "expire_$tag" "$fs" "$(kv "$o" expire_s)"
		put "expire_sync_$tag" "$fs" "$(kv "$o" expire_sync_s)"
		log "$tag $fs: expire $(kv "$o" expired_files) files ($m) $(kv "$o" expire_s) s"
	fi
}

# Declares every row up front, grouped by metric, so the table reads by metric.
declare_rows() {
	local s t tag k=$(((files + dirs - 1) / dirs)) g
	for g in ingest space_alloc space_df rss hwm rssper hwmper remount cold_p50 cold_p99 cold_p999 cold_rate \
		warm_p50 warm_p99 warm_p999 warm_rate statwalk overwrite expire expire_sync; do
		for s in $sizes; do
			tag=S${s}T$first_t
			case $g in
			ingest)
				for t in $threads; do
					metric "ingest_S${s}T$t" "ingest (+sync) S=$s T=$t" files/s
				done ;;
			space_alloc) metric "${g}_$tag" "space S=$s: image alloc / payload" x ;;
			space_df) metric "${g}_$tag" "space S=$s: statfs used / payload" x ;;
			rss) metric "${g}_$tag" "tslabfs VmRSS after ingest, S=$s" MiB ;;
			hwm) metric "${g}_$tag" "tslabfs VmHWM after ingest, S=$s" MiB ;;
			rssper) metric "${g}_$tag" "tslabfs VmRSS growth per 1M files, S=$s" MiB ;;
			hwmper) metric "${g}_$tag" "tslabfs VmHWM per 1M files, S=$s" MiB ;;
			remount) metric "${g}_$tag" "tslabfs mount after ingest, S=$s" s ;;
			cold_p50) metric "${g}_$tag" "cold read p50, S=$s" us ;;
			cold_p99) metric "${g}_$tag" "cold read p99, S=$s" us ;;
			cold_p999) metric "${g}_$tag" "cold read p99.9, S=$s" us ;;
			cold_rate) metric "${g}_$tag" "cold read, S=$s" files/s ;;
			warm_p50) metric "${g}_$tag" "warm read p50, S=$s" us ;;
			warm_p99) metric "${g}_$tag" "warm read p99, S=$s" us ;;
			warm_p999) metric "${g}_$tag" "warm read p99.9, S=$s" us ;;
			warm_rate) metric "${g}_$tag" "warm read, S=$s" files/s ;;
			statwalk) metric "${g}_$tag" "statwalk (cold), S=$s" files/s ;;
			overwrite) metric "${g}_$tag" "overwrite 10% (+sync), S=$s" files/s ;;
			expire) metric "${g}_$tag" "expire 1 dir of $k files, S=$s" s ;;
			expire_sync) metric "${g}_$tag" "expire $k files +sync, S=$s" s ;;
			esac
		done
	done
	metric ingest_big "ingest (+sync) S=100 T=$first_t, 1 dir" files/s
	metric expire_big "expire 1 dir of $files files" s
	metric expire_sync_big "expire 1 dir of $files files +sync" s
	metric rss_cycle_first "tslabfs VmRSS after cycle 1 ($cycle_files files)" MiB
	metric rss_cycle_last "tslabfs VmRSS after cycle $rss_cycles" MiB
	metric rss_cycle_growth "tslabfs VmRSS growth, cycle 1 -> $rss_cycles" %
	metric rss_cycle_hwm "tslabfs VmHWM over $rss_cycles cycles" MiB
}

# tslabfs memory over many epochs: create / fill / drop, RSS after each drop.
do_rss_cycles() {
	local o tag=cycles limit
	case " $fslist " in *" tslabfs "*) ;; *) return 0 ;; esac
	[ -n "$tslab_missing" ] && return 0
	log "$tag tslabfs: mkfs + mount ($rss_cycles cycles of $cycle_files files)"
	fs_setup tslabfs || { echo "$tag tslabfs: setup failed" >>"$notes"; cleanup; return 1; }
	# A cycle is an ingest of cycle_files files plus a drop.
	limit=$((step_timeout + rss_cycles * (cycle_files / 1000 + 2)))
	if run_bench "$tag-tslabfs" -n "$cycle_files" -s 100 -t "$first_t" -y "$rss_cycles" \
		-P "$cur_pid" cycles "$cur_mnt"; then
		o=$res/$tag-tslabfs.txt
		put rss_cycle_first tslabfs "$(awk -v k="$(kv "$o" rss_kb_first)" 'BEGIN { print k / 1024 }')"
		put rss_cycle_last tslabfs "$(awk -v k="$(kv "$o" rss_kb_last)" 'BEGIN { print k / 1024 }')"
		put rss_cycle_growth tslabfs "$(kv "$o" rss_growth_pct)"
		put rss_cycle_hwm tslabfs "$(awk -v k="$(kv "$o" hwm_kb)" 'BEGIN { print k / 1024 }')"
		log "$tag tslabfs: VmRSS $(kv "$o" rss_kb_first) kB after cycle 1, $(kv "$o" rss_kb_last) kB after cycle $rss_cycles ($(kv "$o" rss_growth_pct) %)"
	fi
	fs_teardown
}

run_config() { # size nthreads ndirs full tag
	local size=$1 nt=$2 nd=$3 full=$4 tag=$5 fs
	for fs in $fslist; do
		if is_tslab "$fs" && [ -n "$tslab_missing" ]; then
			continue
		fi
		log "$tag $fs: mkfs + mount"
		if ! fs_setup "$fs"; then
			echo "$tag $fs: setup failed" >>"$notes"
			log "$tag $fs: setup failed"
			cleanup
			continue
		fi
		do_ingest "$fs" "$tag" "$size" "$nt" "$nd"
		if [ "$ok" = 1 ] && [ "$full" = 1 ]; then
			do_rest "$fs" "$tag" "$size" "$nt" "$nd"
		fi
		fs_teardown
	done
}

first_t=${threads%% *}
if [ "$rss_only" = 1 ]; then
	sizes="" big_expire=0 fslist=tslabfs
	[ "$rss_cycles" -gt 0 ] || die "--rss-only needs --cycles > 0"
fi
log "files=$files sizes=($sizes) threads=($threads) dirs=$dirs image=$image_size scratch=$scratch cycles=$rss_cycles x $cycle_files files"
declare_rows
if [ "$hog" = 1 ]; then
	taskset -c 0 sh -c 'while :; do :; done' &
	hog_pid=$!
	log "CPU hog on CPU 0: pid $hog_pid"
fi
for s in $sizes; do
	for t in $threads; do
		full=0
		[ "$t" = "$first_t" ] && full=1
		run_config "$s" "$t" "$dirs" "$full" "S${s}T$t"
	done
done
if [ "$big_expire" = 1 ]; then
	tag=big
	for fs in $fslist; do
		is_tslab "$fs" && [ -n "$tslab_missing" ] && continue
		log "$tag $fs: mkfs + mount"
		fs_setup "$fs" || { echo "$tag $fs: setup failed" >>"$notes"; cleanup; continue; }
		do_ingest "$fs" "$tag" 100 "$first_t" 1
		m=tree
		is_tslab "$fs" && m=rmdir
		if [ "$ok" = 1 ] && run_bench "$tag-$fs-expire" -n "$files" -d 1 -w 0 -m $m expire "$cur_mnt"; then
			o=$res/$tag-$fs-expire.txt
			put "expire_$tag" "$fs" "$(kv "$o" expire_s)"
			put "expire_sync_$tag" "$fs" "$(kv "$o" expire_sync_s)"
			log "$tag $fs: expire $files files ($m) $(kv "$o" expire_s) s"
		fi
		fs_teardown
	done
fi
[ "$rss_cycles" -gt 0 ] && do_rss_cycles
stop_hog
elapsed=$(($(date +%s) - t_start))
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# The table: one row per metric, one column per filesystem, then ratios.
awk -F'\t' -v fslist="$fslist" -v files="$files" -v elapsed="$elapsed" \
	-v missing="$tslab_missing" -v load="$load_start -> $load_end" \
	-v hogmsg="$([ "$hog" = 1 ] && echo "; CPU 0 kept busy by a spinning shell (--hog)")" '
function fmt(v) {
	if (v == "") return "n/a"
	if (v !~ /^-?[0-9.e+-]+$/) return v
	v += 0
	if (v >= 1000 || v <= -1000) return sprintf("%.0f", v)
	if (v >= 10 || v <= -10) return sprintf("%.1f", v)
	return sprintf("%.3g", v)
}
function ratio(a, b) {
	if (a == "" || b == "" || b + 0 == 0) return "n/a"
	return sprintf("%.2f", a / b)
}
FNR == NR { val[$1 SUBSEP $2] = $3; next }
{ key[++nrows] = $1; label[$1] = $2; unit[$1] = $3 }
END {
	nfs = split(fslist, fs, " ")
	printf "%-44s %-7s", "metric (N=" files ")", "unit"
	for (i = 1; i <= nfs; i++) printf " %10s", fs[i]
	for (i = 1; i <= nfs; i++) if (fs[i] != "ext4") printf " %12s", fs[i] "/ext4"
	printf "\n"
	for (r = 1; r <= nrows; r++) {
		k = key[r]; any = 0
		for (i = 1; i <= nfs; i++) if ((k SUBSEP fs[i]) in val) any = 1
		if (!any) continue
		printf "%-44s %-7s", label[k], unit[k]
		for (i = 1; i <= nfs; i++) printf " %10s", fmt(val[k SUBSEP fs[i]])
		for (i = 1; i <= nfs; i++) if (fs[i] != "ext4")
			printf " %12s", ratio(val[k SUBSEP fs[i]], val[k SUBSEP "ext4"])
		printf "\n"
	}
	if (missing != "") printf "tslabfs: not run, missing%s\n", missing
	printf "total run time: %d s; load average (1/5/15 min) %s; one run per cell%s\n", elapsed, load, hogmsg
}' "$values" "$metrics" | tee "$res/table.txt"
if [ -s "$notes" ]; then
	echo "failures and notes:"
	sed 's/^/  /' "$notes"
fi
echo "raw results: $res"
