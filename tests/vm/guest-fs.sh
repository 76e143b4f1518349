#!/bin/sh
# Guest script for run-vm.sh (busybox sh inside the QEMU guest): tslabfs
# mounted on the real host-managed NVMe ZNS namespace /dev/nvme0n2 (16 zones
# of 64 MiB, capacity 60 MiB, 512-byte LBAs).
#   1. mkfs.tslabfs, mount (tslabfs -f in the background)
#   2. persistence: epochs of files 16 B - 8 KiB, clean unmount, remount,
#      every byte verified
#   3. epoch drop: rmdir of an epoch that fills more than a zone; the zone
#      report before and after must show zones reset; other epochs intact
#   4. crash: SIGKILL of the daemon while a writer fsyncs every 3rd file;
#      after remount every fsync'd file is intact, every other file is
#      whole, empty or missing; files closed two commit intervals before
#      the kill are all there
# Needs tslabfs, mkfs.tslabfs, vm_fscheck, zbd and fusermount3 in PATH.
set -u
dev=/dev/nvme0n2
mnt=/mnt/tslab
dlog=/tmp/tslabfs.log
commit=2

# File sets (files per directory, sizes). P1, P2 and P3/sub persist. D, the
# epoch that is dropped, holds small files in D/small and ~66 MiB of large
# ones in D/big, so that it fills at least one 60 MiB zone of its own (small
# files alone would take minutes to fill a zone under TCG). C1 and C2 are
# written before the crash; C2 until C2_SYNCED of its files were fsync'd.
P_N=400 P_MIN=16 P_MAX=8192
DS_N=800 DS_MIN=4096 DS_MAX=8192
DB_N=76 DB_MIN=786432 DB_MAX=1048576
C1_N=400 C1_SYNC=5
C2_SYNC=3 C2_SYNCED=150 C2_WAIT=120

fails=0 checks=0 pid=
mkdir -p "$mnt"
start=$(date +%s)

say() { echo "guest-fs: [$(($(date +%s) - start))s] $*"; }
pass() {
	checks=$((checks + 1))
	say "PASS: $*"
}
fail() {
	checks=$((checks + 1))
	fails=$((fails + 1))
	say "FAIL: $*"
}
verdict() { # status, description
	if [ "$1" -eq 0 ]; then pass "$2"; else fail "$2 (exit $1)"; fi
}

for b in tslabfs mkfs.tslabfs vm_fscheck zbd fusermount3; do
	if ! command -v "$b" >/dev/null; then
		echo "guest-fs: FAIL: $b is not in the guest (pass it with run-vm.sh --bin)"
		exit 1
	fi
done

mounted() { grep -q " $mnt fuse" /proc/mounts; }

# Is the daemon gone (exited: a zombie until waited for, or reaped)?
daemon_gone() {
	[ -z "$pid" ] && return 0
	[ -r "/proc/$pid/stat" ] || return 0
	case $(cut -d' ' -f3 "/proc/$pid/stat") in Z | X) return 0 ;; esac
	return 1
}

# Wait up to $1 seconds for the daemon to exit; its status in $daemon_rc.
daemon_wait() {
	i=0
	while ! daemon_gone; do
		i=$((i + 1))
		if [ $i -gt $(($1 * 10)) ]; then
			daemon_rc=timeout
			return 1
		fi
		sleep 0.1
	done
	wait "$pid"
	daemon_rc=$?
	pid=
	return 0
}

fs_mount() {
	echo "--- mount $(date +%s)" >>"$dlog"
	tslabfs -f -o commit=$commit "$dev" "$mnt" >>"$dlog" 2>&1 &
	pid=$!
	i=0
	while ! mounted; do
		if daemon_gone; then
			wait "$pid"
			say "tslabfs exited with $? before mounting; its log:"
			tail -n 20 "$dlog"
			pid=
			return 1
		fi
		i=$((i + 1))
		if [ $i -gt 1200 ]; then
			say "tslabfs did not mount within 120 s"
			return 1
		fi
		sleep 0.1
	done
	say "mounted (daemon pid $pid): $(grep "mounted:" "$dlog" | tail -n 1)"
}

# Clean unmount: the daemon must flush and exit 0. In fuseblk mode the
# kernel waits for the flush: the daemon has said so when the unmount returns.
fs_umount() {
	fusermount3 -u "$mnt" || return 1
	if ! tail -n 3 "$dlog" | grep -q "everything written"; then
		say "the unmount returned before the daemon had written everything"
		return 1
	fi
	daemon_wait 300 || {
		say "tslabfs did not exit within 300 s of the unmount"
		return 1
	}
	[ "$daemon_rc" = 0 ]
}

cleanup() {
	[ -n "${wpid:-}" ] && kill -9 "$wpid" 2>/dev/null
	if mounted; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"
	fi
	if [ -n "$pid" ] && ! daemon_gone; then
		daemon_wait 60 || kill -9 "$pid"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Awk helper: zbd prints zero-padded decimals, which busybox awk would read
# as octal.
zawk='function num(s) { sub(/^[a-z]+ +0*/, "", s); return s == "" ? 0 : s + 0 }'

# zbd report summary: "nonempty=N written=MiB" (data up to the write pointers).
zsum() {
	awk -F', *' "$zawk"'
	/^Zone/ {
		used = num($5) - num($2)
		if (used > 0) { n++; b += used }
	} END { printf "nonempty=%d written=%.2f MiB\n", n, b / 1048576 }' "$1"
}

# Zones whose write pointer moved between two reports, one line each, with
# "RESET" when it went back.
zdiff() {
	awk -F', *' "$zawk"'
	/^Zone/ {
		split($1, z, "[ :]+")
		used = (num($5) - num($2)) / 1048576
		if (FILENAME == ARGV[1]) { before[z[2]] = used; cb[z[2]] = $6; next }
		if (used != before[z[2]])
			printf "zone %s: %.2f MiB (%s) -> %.2f MiB (%s)%s\n", z[2],
				before[z[2]], cb[z[2]], used, $6,
				used < before[z[2]] ? "  RESET" : ""
	}' "$1" "$2"
}

xattr() { vm_fscheck getxattr "$mnt/$1" "user.tslab.$2"; }

verify_sets() { # strict verification of the persistent sets
	for e in P1 P2 P3/sub; do
		vm_fscheck verify "$mnt/$e" 0 $P_N $P_MIN $P_MAX
		verdict $? "$1: epoch $e: every byte of $P_N files"
	done
}

# ---- 1. mkfs and mount -------------------------------------------------------
say "mkfs.tslabfs $dev"
mkfs.tslabfs "$dev"
verdict $? "mkfs.tslabfs $dev"
fs_mount || {
	fail "mount tslabfs $dev at $mnt"
	exit 1
}
pass "mounted tslabfs on $dev"
grep -q "^$dev $mnt fuseblk.tslabfs " /proc/mounts
verdict $? "mounted in fuseblk mode: $(grep " $mnt " /proc/mounts)"

# ---- 2. persistence -----------------------------------------------------------
t=$(date +%s)
mkdir "$mnt/D" "$mnt/D/small" "$mnt/D/big" "$mnt/P1" "$mnt/P2" "$mnt/P3" "$mnt/P3/sub"
verdict $? "mkdir of the epochs D P1 P2 P3 and their subdirectories"
vm_fscheck write "$mnt/D/small" 0 $DS_N $DS_MIN $DS_MAX
verdict $? "write $DS_N files of $DS_MIN-$DS_MAX bytes into D/small"
vm_fscheck write "$mnt/D/big" 0 $DB_N $DB_MIN $DB_MAX
verdict $? "write $DB_N files of $DB_MIN-$DB_MAX bytes into D/big"
for e in P1 P2 P3/sub; do
	vm_fscheck write "$mnt/$e" 0 $P_N $P_MIN $P_MAX
	verdict $? "write $P_N files of $P_MIN-$P_MAX bytes into $e"
done
say "written in $(($(date +%s) - t)) s"
df -k "$mnt"
for e in D P1 P2 P3; do
	say "epoch $e: files=$(xattr $e files) bytes=$(xattr $e bytes)" \
		"slabs=$(xattr $e slabs) zones=$(xattr $e zones)"
done
sync
t=$(date +%s)
fs_umount
verdict $? "clean unmount (daemon exit ${daemon_rc:-?})"
say "unmounted in $(($(date +%s) - t)) s"
zbd report "$dev" >/tmp/z.umount
say "zones after the unmount: $(zsum /tmp/z.umount)"
t=$(date +%s)
fs_mount || {
	fail "remount after a clean unmount"
	exit 1
}
pass "remount after a clean unmount ($(($(date +%s) - t)) s)"
t=$(date +%s)
verify_sets "after remount"
vm_fscheck verify "$mnt/D/small" 0 $DS_N $DS_MIN $DS_MAX
verdict $? "after remount: D/small: every byte of $DS_N files"
vm_fscheck verify "$mnt/D/big" 0 $DB_N $DB_MIN $DB_MAX
verdict $? "after remount: D/big: every byte of $DB_N files"
say "verified in $(($(date +%s) - t)) s"

# ---- 3. epoch drop -------------------------------------------------------------
d_zones=$(xattr D zones)
d_bytes=$(xattr D bytes)
say "epoch D before the drop: files=$(xattr D files) bytes=$d_bytes zones=$d_zones"
zbd report "$dev" >/tmp/z.before
say "zbd report before the drop: $(zsum /tmp/z.before)"
cat /tmp/z.before
df -k "$mnt" | tail -n 1 >/tmp/df.before
t=$(date +%s)
rmdir "$mnt/D"
verdict $? "rmdir of the non-empty epoch D ($DS_N + $DB_N files)"
say "rmdir took $(($(date +%s) - t)) s"
if [ -e "$mnt/D" ] || [ -e "$mnt/D/small/f000000" ]; then
	fail "D is gone after rmdir"
else
	pass "D is gone after rmdir"
fi
left=$(ls "$mnt" | tr '\n' ' ')
[ "$left" = "P1 P2 P3 " ]
verdict $? "root lists exactly the other epochs: '$left'"
# Zones are reset by the sync after the drop: force one, then give the
# commit thread time.
vm_fscheck fsync "$mnt/P1"
resets=0
i=0
while [ $i -lt 30 ]; do
	zbd report "$dev" >/tmp/z.after
	resets=$(zdiff /tmp/z.before /tmp/z.after | grep -c RESET)
	[ "$resets" -gt 0 ] && break
	sleep 1
	i=$((i + 1))
done
say "zbd report after the drop: $(zsum /tmp/z.after)"
cat /tmp/z.after
say "zones that changed:"
zdiff /tmp/z.before /tmp/z.after
df -k "$mnt" | tail -n 1 >/tmp/df.after
say "df before: $(cat /tmp/df.before)"
say "df after:  $(cat /tmp/df.after)"
avail0=$(awk '{ print $4 }' /tmp/df.before)
avail1=$(awk '{ print $4 }' /tmp/df.after)
[ "${avail1:-0}" -gt "${avail0:-0}" ]
verdict $? "statfs: available space grew by $((${avail1:-0} - ${avail0:-0})) KiB with the drop"
if [ "${d_zones:-0}" -ge 2 ] && [ "${d_bytes:-0}" -gt 62914560 ]; then
	[ "$resets" -gt 0 ]
	verdict $? "the drop reset $resets zone(s):$(zdiff /tmp/z.before /tmp/z.after |
		sed -n 's/^zone \([0-9]*\):.*RESET$/ \1/p' | tr -d '\n') (D held $d_bytes bytes in $d_zones zones)"
else
	fail "epoch D did not span more than a zone (bytes=$d_bytes zones=$d_zones): the drop test proves nothing"
fi
verify_sets "after the drop"

# ---- 4. crash -----------------------------------------------------------------
mkdir "$mnt/C1" "$mnt/C2"
verdict $? "mkdir C1 C2"
vm_fscheck write "$mnt/C1" 0 $C1_N $P_MIN $P_MAX -s $C1_SYNC -l /tmp/sync.log
verdict $? "write $C1_N files into C1, every ${C1_SYNC}th fsync'd"
wait_s=$((commit * 2 + 1))
say "waiting $wait_s s (two commit intervals) before the crash"
sleep $wait_s
vm_fscheck write "$mnt/C2" 0 1000000 $P_MIN $P_MAX -s $C2_SYNC -l /tmp/sync.log -k \
	>/tmp/c2.out 2>&1 &
wpid=$!
# Kill once the writer has fsync'd a good number of files in C2.
i=0
while [ $i -lt $((C2_WAIT * 10)) ]; do
	n=$(grep -c "C2/" /tmp/sync.log)
	[ "$n" -ge $C2_SYNCED ] && break
	sleep 0.1
	i=$((i + 1))
done
kill -9 "$pid"
say "SIGKILL to tslabfs after $(grep -c "C2/" /tmp/sync.log) fsync'd files in C2"
daemon_wait 30
say "daemon exit status: $daemon_rc"
i=0
while kill -0 "$wpid" 2>/dev/null && [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
wait "$wpid"
say "writer: $(cat /tmp/c2.out | tr '\n' ' ')"
wpid=
synced_c2=$(grep -c "C2/" /tmp/sync.log)
c2_n=$(sed -n 's/^wrote \([0-9]*\) files.*/\1/p' /tmp/c2.out)
[ -n "$c2_n" ] || c2_n=0
if fusermount3 -u "$mnt"; then
	pass "fusermount3 -u of the dead mount"
else
	umount -l "$mnt"
	verdict $? "umount -l of the dead mount (fusermount3 -u failed)"
fi
t=$(date +%s)
fs_mount || {
	fail "remount after SIGKILL"
	exit 1
}
pass "remount after SIGKILL ($(($(date +%s) - t)) s)"
vm_fscheck verify "$mnt/C1" 0 $C1_N $P_MIN $P_MAX
verdict $? "C1 (closed two commit intervals before the crash): all $C1_N files exact"
# Every file the writer started, plus some: later names must be absent.
vm_fscheck verify -c /tmp/sync.log "$mnt/C2" 0 $((c2_n + 20)) $P_MIN $P_MAX >/tmp/c2.verify
rc=$?
cat /tmp/c2.verify
verdict $rc "C2 after SIGKILL: all $synced_c2 fsync'd files intact, no torn file"
intact=$(sed -n 's/.*intact \([0-9]*\).*/\1/p' /tmp/c2.verify)
[ "${intact:-0}" -eq "$synced_c2" ] && [ "$synced_c2" -gt 0 ]
verdict $? "fsync'd files in C2: $synced_c2 logged, ${intact:-0} intact"
verify_sets "after SIGKILL"
if [ -e "$mnt/D" ]; then fail "D stays dropped after the crash"; else pass "D stays dropped after the crash"; fi
t=$(date +%s)
fs_umount
verdict $? "clean unmount after recovery (daemon exit ${daemon_rc:-?})"
say "unmounted in $(($(date +%s) - t)) s"

say "daemon log:"
cat "$dlog"
say "SUMMARY: $checks checks, $fails failed, $(($(date +%s) - start)) s"
[ "$fails" -eq 0 ]
