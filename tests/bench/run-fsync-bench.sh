#!/bin/bash
# Acknowledged ingest: create+write+fsync+close per file, tslabfs against
# ext4, in one run, both on loop devices (direct I/O) over sparse image files
# in the same scratch directory (same disk), one table at the end.
#
#   sudo tests/bench/run-fsync-bench.sh [--build DIR] [--threads "1 4 16"]
#        [--sizes "100 4000"] [--files N] [--scratch DIR] [--fs "ext4 tslabfs"]
#        [--tslabfs-opts O]
#
# For each size S and thread count T: a fresh image, mkfs, mount, then
# fsync_bench -t T -n N/T -s S (T threads, each its own files in one
# directory, a top-level directory = one tslabfs epoch), unmount.
# Columns:
#   files/s      files created, written, fsync'd and closed per second (wall)
#   p50/p99 ms   latency of the fsync() call
#   flush/fsync  device flushes completed by the loop device during the run
#                (field 16 of /sys/block/loopN/stat), divided by the files:
#                the same counter for both filesystems, outside them.
#   ratio        tslabfs files/s / ext4 files/s of the same S and T.
# ext4: mkfs.ext4 -E lazy_itable_init=0,lazy_journal_init=0, default mount
# options (data=ordered, journal commit on fsync). tslabfs: mkfs.tslabfs on
# the loop device (emulated zones), tslabfs -f (fuseblk) in the background.
# The machine's load average is printed at the start and end: compare runs
# only when it is similar.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$top/build
threads="1 4 16"
sizes="100 4000"
files=4000
scratch=/var/tmp/tslab-fsync-bench
fslist="ext4 tslabfs"
tslab_opts=""
image_size=8G

while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(cd "$2" && pwd); shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--sizes) sizes=$2; shift 2 ;;
	--files) files=$2; shift 2 ;;
	--scratch) scratch=$2; shift 2 ;;
	--fs) fslist=$2; shift 2 ;;
	--tslabfs-opts) tslab_opts=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
bench=$build/tests/bench/fsync_bench
[ -x "$bench" ] || ninja -C "$build" tests/bench/fsync_bench >/dev/null
for b in "$bench" "$build/fs/tslabfs" "$build/mkfs/mkfs.tslabfs"; do
	[ -x "$b" ] || { echo "missing $b" >&2; exit 2; }
done

mkdir -p "$scratch"
img=$scratch/img
mnt=$scratch/mnt
mkdir -p "$mnt"
loop=""
dpid=""
results=$scratch/results.txt
: >"$results"

cleanup() {
	if mountpoint -q "$mnt"; then umount "$mnt" 2>/dev/null || umount -l "$mnt"; fi
	if [ -n "$dpid" ]; then
		for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
		kill "$dpid" 2>/dev/null
		dpid=""
	fi
	[ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
	loop=""
	rm -f "$img"
}
trap cleanup EXIT INT TERM

flushes() { awk '{print $16}' "/sys/block/$(basename "$loop")/stat"; }

setup() { # fs
	rm -f "$img"
	truncate -s "$image_size" "$img"
	loop=$(losetup --direct-io=on --show -f "$img") || exit 1
	case $1 in
	ext4)
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$loop" >/dev/null || exit 1
		mount "$loop" "$mnt" || exit 1
		;;
	tslabfs)
		"$build/mkfs/mkfs.tslabfs" -q -f "$loop" >/dev/null || exit 1
		"$build/fs/tslabfs" -f ${tslab_opts:+-o "$tslab_opts"} "$loop" "$mnt" \
			>"$scratch/tslabfs.log" 2>&1 &
		dpid=$!
		for _ in $(seq 600); do mountpoint -q "$mnt" && break; sleep 0.1; done
		mountpoint -q "$mnt" || { cat "$scratch/tslabfs.log"; exit 1; }
		;;
	esac
	mkdir "$mnt/ingest"
	sync
}

echo "fsync bench $(date -u +%FT%TZ), load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
for s in $sizes; do
	for t in $threads; do
		for fs in $fslist; do
			setup "$fs"
			f0=$(flushes)
			out=$("$bench" -t "$t" -n $((files / t)) -s "$s" "$mnt/ingest") || {
				echo "$fs S=$s T=$t: fsync_bench failed: $out" >&2; cleanup; continue; }
			f1=$(flushes)
			n=$(sed -n 's/^files=//p' <<<"$out")
			echo "$fs $s $t $(sed -n 's/^files_per_s=//p' <<<"$out") \
$(sed -n 's/^fsync_p50_us=//p' <<<"$out") $(sed -n 's/^fsync_p99_us=//p' <<<"$out") \
$(awk -v a="$f0" -v b="$f1" -v n="$n" 'BEGIN{printf "%.2f", (b-a)/n}')" >>"$results"
			cleanup
		done
	done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n| S | T | ext4 files/s | tslabfs files/s | ratio | ext4 p50/p99 ms | tslabfs p50/p99 ms | flushes/fsync ext4 / tslabfs |\n|---|---|---|---|---|---|---|---|\n'
for s in $sizes; do
	for t in $threads; do
		e=$(awk -v s="$s" -v t="$t" '$1=="ext4" && $2==s && $3==t' "$results")
		x=$(awk -v s="$s" -v t="$t" '$1=="tslabfs" && $2==s && $3==t' "$results")
		awk -v e="$e" -v x="$x" -v s="$s" -v t="$t" 'BEGIN{
			ne = split(e, E, " "); nx = split(x, X, " ");
			ef = ne ? E[4] : "n/a"; xf = nx ? X[4] : "n/a";
			r = (ne && nx && E[4] > 0) ? sprintf("%.2f", X[4] / E[4]) : "n/a";
			ep = ne ? sprintf("%.2f / %.2f", E[5]/1000, E[6]/1000) : "n/a";
			xp = nx ? sprintf("%.2f / %.2f", X[5]/1000, X[6]/1000) : "n/a";
			printf "| %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", s, t, ef, xf, r, ep, xp,
				ne ? E[7] : "n/a", nx ? X[7] : "n/a" }'
	done
done
