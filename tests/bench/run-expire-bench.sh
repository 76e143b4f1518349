#!/bin/bash
# Expiry of one directory of N files whose dentries and inodes the kernel
# has cached: rmdir of a tslabfs epoch that is hot (just written and
# stat'ed) and one that is idle (left alone until the daemon's idle pruning,
# -o idle_prune, has dropped it from the kernel's cache), against `rm -rf`
# of the same tree on ext4, xfs and btrfs. Also what pruning costs: warm
# read and stat of every file of the epoch before and after a prune.
#
#   sudo tests/bench/run-expire-bench.sh [--build DIR] [--files "100000 1000000"]
#        [--fs "ext4 xfs btrfs tslabfs"] [--scratch DIR] [--prune SECONDS]
#        [--reads N]
#
# Every configuration: a fresh sparse image on a loop device (direct I/O)
# in SCRATCH (the same disk for all), mkfs, mount; fs_bench ingest of N
# files of 100 B into ONE directory (w0000) plus sync; a stat of every file
# (fs_bench statwalk), so the kernel holds all of them; then
#   ext4/xfs/btrfs  rm -rf of w0000 (nftw, unlink, rmdir; fs_bench expire)
#   tslabfs hot     rmdir of w0000 right away (an epoch drop)
#   tslabfs idle    mounted with -o idle_prune=P (default 5): reads of R
#                   files (default 100000) in random order, twice (the
#                   second is "warm": page cache and dentries), statwalk
#                   (warm); wait for the daemon's log line that the epoch
#                   was pruned; the same read and statwalk ("after prune":
#                   the kernel looks names up and reads data from the daemon
#                   again); wait for the next prune; rmdir of w0000.
# Times are fs_bench's expire_s (the removal call(s) only).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$top/build
files_list="100000 1000000"
fslist="ext4 xfs btrfs tslabfs"
scratch=/var/tmp/tslab-expire-bench
prune=5
reads=100000
image_size=16G

while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(cd "$2" && pwd); shift 2 ;;
	--files) files_list=$2; shift 2 ;;
	--fs) fslist=$2; shift 2 ;;
	--scratch) scratch=$2; shift 2 ;;
	--prune) prune=$2; shift 2 ;;
	--reads) reads=$2; shift 2 ;;
	-h|--help) sed -n '2,/^set -uo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "unknown option $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
fsb=$build/tests/bench/fs_bench
for b in "$fsb" "$build/fs/tslabfs" "$build/mkfs/mkfs.tslabfs"; do
	[ -x "$b" ] || { echo "missing $b (ninja -C $build)" >&2; exit 2; }
done
mkdir -p "$scratch/mnt"
img=$scratch/img
mnt=$scratch/mnt
dlog=$scratch/tslabfs.log
loop=""
dpid=""
out=$scratch/results.txt
: >"$out"

cleanup() {
	if mountpoint -q "$mnt"; then umount "$mnt" 2>/dev/null || umount -l "$mnt"; fi
	if [ -n "$dpid" ]; then
		for _ in $(seq 600); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
		kill "$dpid" 2>/dev/null
		dpid=""
	fi
	[ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
	loop=""
	rm -f "$img"
}
trap cleanup EXIT INT TERM

setup() { # fs [tslabfs -o options]
	rm -f "$img"
	truncate -s "$image_size" "$img"
	loop=$(losetup --direct-io=on --show -f "$img") || exit 1
	case $1 in
	ext4) mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$loop" >/dev/null ;;
	xfs) mkfs.xfs -q -f "$loop" >/dev/null ;;
	btrfs) mkfs.btrfs -q -f "$loop" >/dev/null ;;
	tslabfs) "$build/mkfs/mkfs.tslabfs" -q -f "$loop" >/dev/null ;;
	esac || exit 1
	if [ "$1" = tslabfs ]; then
		"$build/fs/tslabfs" -f ${2:+-o "$2"} "$loop" "$mnt" >"$dlog" 2>&1 &
		dpid=$!
		for _ in $(seq 600); do mountpoint -q "$mnt" && break; sleep 0.1; done
		mountpoint -q "$mnt" || { cat "$dlog"; exit 1; }
	else
		mount "$loop" "$mnt" || exit 1
	fi
}

kv() { sed -n "s/^$2=//p" <<<"$1" | head -n1; }
prunes() { grep -c "idle_prune: w0000 " "$dlog"; }
wait_prune() { # count before
	for _ in $(seq 6000); do [ "$(prunes)" -gt "$1" ] && return 0; sleep 0.1; done
	echo "no prune of w0000 within 600 s" >&2
	return 1
}
put() { echo "$1 $2 $3" >>"$out"; echo "  $1 $2 = $3"; }

echo "expire bench $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
for n in $files_list; do
	r=$((reads < n ? reads : n))
	for fs in $fslist; do
		cfgs=$fs
		[ "$fs" = tslabfs ] && cfgs="tslabfs-hot tslabfs-idle"
		for cfg in $cfgs; do
			echo "== $cfg, $n files ($(date -u +%T), load $(cut -d' ' -f1 /proc/loadavg))"
			opts=""
			[ "$cfg" = tslabfs-idle ] && opts="idle_prune=$prune"
			setup "$fs" "$opts"
			o=$("$fsb" -n "$n" -d 1 -s 100 ingest "$mnt") || { echo "ingest failed" >&2; cleanup; continue; }
			put "$cfg/$n" ingest_files_per_s "$(kv "$o" files_per_s)"
			o=$("$fsb" -n "$n" -d 1 statwalk "$mnt")
			if [ "$cfg" = tslabfs-idle ]; then
				c=$(prunes)
				"$fsb" -n "$n" -d 1 -c "$r" read "$mnt" >/dev/null
				o=$("$fsb" -n "$n" -d 1 -c "$r" read "$mnt")
				put "$cfg/$n" warm_read_files_per_s "$(kv "$o" files_per_s)"
				put "$cfg/$n" warm_read_p99_us "$(kv "$o" p99_us)"
				o=$("$fsb" -n "$n" -d 1 statwalk "$mnt")
				put "$cfg/$n" warm_stat_files_per_s "$(kv "$o" files_per_s)"
				[ "$(prunes)" -gt "$c" ] && echo "  (a prune came during the warm reads)"
				c=$(prunes)
				wait_prune "$c" || { cleanup; continue; }
				grep "idle_prune: w0000 " "$dlog" | tail -n1 | sed 's/^/  /'
				o=$("$fsb" -n "$n" -d 1 -c "$r" read "$mnt")
				put "$cfg/$n" pruned_read_files_per_s "$(kv "$o" files_per_s)"
				put "$cfg/$n" pruned_read_p99_us "$(kv "$o" p99_us)"
				c=$(prunes)
				wait_prune "$c" || { cleanup; continue; }
				o=$("$fsb" -n "$n" -d 1 statwalk "$mnt")
				put "$cfg/$n" pruned_stat_files_per_s "$(kv "$o" files_per_s)"
				c=$(prunes)
				wait_prune "$c" || { cleanup; continue; }
				grep "idle_prune: w0000 " "$dlog" | tail -n1 | sed 's/^/  /'
			fi
			m=tree
			[ "$fs" = tslabfs ] && m=rmdir
			o=$("$fsb" -n "$n" -d 1 -w 0 -m $m expire "$mnt") || { echo "expire failed" >&2; cleanup; continue; }
			put "$cfg/$n" expire_s "$(kv "$o" expire_s)"
			cleanup
		done
	done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n| files | ext4 rm -rf | xfs rm -rf | btrfs rm -rf | tslabfs rmdir hot | tslabfs rmdir idle (pruned) | idle / ext4 |\n|---|---|---|---|---|---|---|\n'
for n in $files_list; do
	g() { awk -v k="$1/$n" -v m=expire_s '$1==k && $2==m {print $3}' "$out"; }
	e=$(g ext4) x=$(g xfs) b=$(g btrfs) h=$(g tslabfs-hot) i=$(g tslabfs-idle)
	rat=$(awk -v a="$i" -v b="$e" 'BEGIN{ if (a != "" && b > 0) printf "%.4f", a / b; else print "n/a" }')
	printf '| %s | %s s | %s s | %s s | %s s | %s s | %s |\n' "$n" "${e:-n/a}" "${x:-n/a}" "${b:-n/a}" "${h:-n/a}" "${i:-n/a}" "$rat"
done
printf '\nCost of pruning (tslabfs idle configuration, R=%s random files):\n' "$reads"
grep -E "warm_|pruned_" "$out" | sed 's/^/  /'
