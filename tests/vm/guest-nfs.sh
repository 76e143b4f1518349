#!/bin/sh
# Guest script for run-vm.sh (busybox sh inside the QEMU guest): tslabfs on
# the real ZNS namespace /dev/nvme0n2, exported by the kernel's NFS server
# and mounted back over loopback NFS (v4.2):
#   1. files written through tslabfs read back over NFS, files and a new
#      epoch directory written over NFS read back through tslabfs;
#   2. an epoch dropped on the server (tslabctl drop): an NFS file handle of
#      one of its files gives ESTALE, other epochs intact;
#   3. tslabctl zones on the mount and on the unmounted device.
# Needs tslabfs, mkfs.tslabfs, tslabctl, vm_fscheck, rpc.nfsd, rpc.mountd, exportfs,
# mount.nfs in PATH and the nfsd and nfsv4 modules loaded.
set -u
dev=/dev/nvme0n2
mnt=/mnt/tslab
nfs=/mnt/nfs
fails=0 checks=0
start=$(date +%s)

say() { echo "guest-nfs: [$(($(date +%s) - start))s] $*"; }
pass() {
	checks=$((checks + 1))
	say "PASS: $*"
}
fail() {
	checks=$((checks + 1))
	fails=$((fails + 1))
	say "FAIL: $*"
}
die() {
	say "FAIL: $*"
	[ -f /tmp/tslabfs.log ] && tail -n 20 /tmp/tslabfs.log
	exit 1
}

for b in tslabfs mkfs.tslabfs tslabctl vm_fscheck rpc.nfsd rpc.mountd exportfs mount.nfs; do
	command -v "$b" >/dev/null || die "$b is not in the guest (run-vm.sh --bin)"
done
mkdir -p "$mnt" "$nfs"

mkfs.tslabfs -q "$dev" || die "mkfs.tslabfs $dev"
tslabfs -f "$dev" "$mnt" >/tmp/tslabfs.log 2>&1 &
i=0
until grep -q " $mnt fuse" /proc/mounts; do
	i=$((i + 1))
	[ $i -le 600 ] || die "tslabfs did not mount"
	sleep 0.1
done
say "tslabfs mounted on $dev"

# Content of file N of epoch E, deterministic.
gen() { # epoch n
	i=0
	while [ $i -lt $(($2 % 7 + 1)) ]; do
		echo "$1/$2 line $i of a tslabfs file exported over NFS"
		i=$((i + 1))
	done
}
for e in A B; do
	mkdir "$mnt/$e" || die "mkdir $mnt/$e"
	n=0
	while [ $n -lt 30 ]; do
		gen "$e" $n >"$mnt/$e/f$n" || die "write $mnt/$e/f$n"
		n=$((n + 1))
	done
done

# --- NFS server: v4 only, short grace period, export with an fsid ---
mkdir -p /proc/fs/nfsd /var/lib/nfs/v4recovery /var/lib/nfs/rpc_pipefs /run
mount -t nfsd nfsd /proc/fs/nfsd || die "mount nfsd filesystem"
cat >/etc/netconfig <<'NC'
udp        tpi_clts      v     inet     udp     -       -
tcp        tpi_cots_ord  v     inet     tcp     -       -
udp6       tpi_clts      v     inet6    udp     -       -
tcp6       tpi_cots_ord  v     inet6    tcp     -       -
rawip      tpi_raw       -     inet      -      -       -
local      tpi_cots_ord  -     loopback  -      -       -
unix       tpi_cots_ord  -     loopback  -      -       -
NC
printf "sunrpc 111/tcp portmapper\nsunrpc 111/udp portmapper\nnfs 2049/tcp\nnfs 2049/udp\n" >/etc/services
: >/var/lib/nfs/etab
: >/var/lib/nfs/rmtab
echo "$mnt 127.0.0.1(rw,fsid=14,no_subtree_check,no_root_squash,sync)" >/etc/exports
echo 10 >/proc/fs/nfsd/nfsv4leasetime
echo 10 >/proc/fs/nfsd/nfsv4gracetime
exportfs -ra || die "exportfs -ra"
rpc.mountd -N 2 -N 3 2>/tmp/mountd.err || die "rpc.mountd: $(cat /tmp/mountd.err)"
rpc.nfsd -d -N 3 -p 2049 4 2>/tmp/nfsd.err || die "rpc.nfsd: $(cat /tmp/nfsd.err; dmesg | tail -5)"
say "nfsd: $(cat /proc/fs/nfsd/versions), exports: $(exportfs -v | tr -s ' \n\t' ' ')"
i=0
until mount.nfs 127.0.0.1:"$mnt" "$nfs" -o vers=4.2,actimeo=0 2>/tmp/mount.err; do
	i=$((i + 1))
	[ $i -le 30 ] || die "mount.nfs: $(cat /tmp/mount.err)"
	sleep 2
done
say "mounted 127.0.0.1:$mnt on $nfs: $(grep " $nfs " /proc/mounts)"

# --- 1. both directions ---
bad=0
for e in A B; do
	n=0
	while [ $n -lt 30 ]; do
		gen "$e" $n | cmp -s - "$nfs/$e/f$n" || bad=$((bad + 1))
		n=$((n + 1))
	done
done
[ $bad -eq 0 ] && pass "60 files written through tslabfs read back over NFS" ||
	fail "$bad files differ over NFS"
mkdir "$nfs/C" || fail "mkdir of a new epoch over NFS"
n=0
while [ $n -lt 20 ]; do
	gen C $n >"$nfs/C/g$n" || fail "write $nfs/C/g$n"
	gen B $((n + 100)) >"$nfs/B/h$n" || fail "write $nfs/B/h$n"
	n=$((n + 1))
done
sync
bad=0
n=0
while [ $n -lt 20 ]; do
	gen C $n | cmp -s - "$mnt/C/g$n" || bad=$((bad + 1))
	gen B $((n + 100)) | cmp -s - "$mnt/B/h$n" || bad=$((bad + 1))
	n=$((n + 1))
done
[ $bad -eq 0 ] && pass "40 files written over NFS (one new epoch) read back through tslabfs" ||
	fail "$bad files written over NFS differ"
tslabctl stat "$mnt"

# --- 2. drop an epoch under an open NFS descriptor ---
# NFS file handles taken on the client (the NFS client exports its own
# handles, which wrap the server's). After the drop every cache is
# dropped, so the kernel must ask: the server decodes the handle, tslabfs
# answers the LOOKUP of "." with ESTALE.
vm_fscheck handle "$nfs/A/f5" /tmp/hA || fail "name_to_handle_at on NFS"
vm_fscheck handle "$nfs/B/f5" /tmp/hB || fail "name_to_handle_at on NFS"
out=$(vm_fscheck byhandle "$nfs" /tmp/hA)
[ $? -eq 0 ] && pass "NFS handle of A/f5 opens before the drop: $out" || fail "A/f5 by handle: $out"
tslabctl drop "$mnt/A" && pass "tslabctl drop $mnt/A (on the server)" || fail "tslabctl drop"
sync
echo 3 >/proc/sys/vm/drop_caches
out=$(vm_fscheck byhandle "$nfs" /tmp/hA)
case $out in
*ESTALE*) pass "NFS handle of a dropped epoch's file: $out" ;;
*) fail "NFS handle after the drop: '$out' (expected ESTALE)" ;;
esac
out=$(vm_fscheck byhandle "$nfs" /tmp/hB)
[ $? -eq 0 ] && pass "NFS handle of B/f5 still opens: $out" || fail "B/f5 by handle: $out"
err=$(stat "$nfs/A/f6" 2>&1)
case $err in
*"Stale file handle"* | *"No such file"*) pass "stat by name in the dropped epoch over NFS fails: $err" ;;
*) fail "stat after the drop: '$err'" ;;
esac
[ ! -e "$mnt/A" ] && pass "A is gone on the server" || fail "A still on the server"
bad=0
n=0
while [ $n -lt 30 ]; do
	gen B $n | cmp -s - "$nfs/B/f$n" || bad=$((bad + 1))
	n=$((n + 1))
done
[ $bad -eq 0 ] && pass "epoch B intact over NFS after the drop" || fail "$bad files of B differ"

# --- 3. zone map mounted, then of the unmounted device ---
tslabctl zones "$mnt" | cat || fail "tslabctl zones on the mount"
umount "$nfs" || fail "umount NFS"
exportfs -ua
rpc.nfsd 0
umount "$mnt" || fail "umount tslabfs"
i=0
while [ -n "$(pidof tslabfs)" ] && [ $i -lt 300 ]; do
	i=$((i + 1))
	sleep 0.1
done
say "tslabctl zones $dev (unmounted, read-only):"
tslabctl zones "$dev" | cat && pass "tslabctl zones on the unmounted ZNS device" ||
	fail "tslabctl zones $dev"
tslabctl stat "$dev" || fail "tslabctl stat $dev"

say "$checks checks, $fails failed"
[ $fails -eq 0 ]
