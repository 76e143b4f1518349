#!/bin/bash
# Run a guest test script inside a QEMU (TCG) guest that sees a real NVMe
# zoned namespace through the Linux kernel's zoned block device support.
#
#   run-vm.sh --guest-script FILE [--bin PATH]... [--module NAME]...
#             [--timeout S] [--log FILE] [--keep]
#
# Guest environment (busybox sh as /init):
#   /dev/nvme0n1   conventional namespace, 64 MiB (raw, unformatted)
#   /dev/nvme0n2   host-managed zoned namespace: 16 zones of 64 MiB,
#                  capacity 60 MiB, max open/active 14
#   /dev/fuse      fuse module loaded; /mnt exists; /tmp is a tmpfs
#   every --bin PATH is at /usr/local/bin/BASENAME (in PATH), with the shared
#   libraries it needs; zbd and fusermount3 are there too.
#   every --module NAME (with its dependencies) is loaded at boot, after
#   nvme, fuse and mq_deadline; the loopback interface is up.
# The guest script runs as `sh /guest.sh` with cwd /tmp; its exit status is
# reported on the console as "TSLAB-VM-RESULT rc=N", which is what this script
# exits with. No result line (guest crash, hang, timeout) is a failure.
#
# Environment overrides: TSLAB_VM_KERNEL (kernel image; its modules must be in
# /lib/modules/VERSION or TSLAB_VM_MODULES), TSLAB_VM_QEMU (qemu binary).
#
# Exit 77 (skipped) only when QEMU cannot run here at all: no qemu binary, no
# kernel image, or no modules for it.
set -uo pipefail

prog=${0##*/}
die() {
	echo "$prog: error: $*" >&2
	exit 1
}
skip() {
	echo "$prog: SKIP: $*" >&2
	exit 77
}
usage() {
	echo "usage: $prog --guest-script FILE [--bin PATH]... [--module NAME]... [--timeout S] [--log FILE] [--keep]" >&2
	exit 2
}

guest_script=
bins=()
modules=()
timeout_s=600
log=
keep=0
while [ $# -gt 0 ]; do
	case $1 in
	--guest-script) [ $# -ge 2 ] || usage; guest_script=$2; shift 2 ;;
	--bin) [ $# -ge 2 ] || usage; bins+=("$2"); shift 2 ;;
	--module) [ $# -ge 2 ] || usage; modules+=("$2"); shift 2 ;;
	--timeout) [ $# -ge 2 ] || usage; timeout_s=$2; shift 2 ;;
	--log) [ $# -ge 2 ] || usage; log=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) usage ;;
	*) echo "$prog: unknown argument: $1" >&2; usage ;;
	esac
done
[ -n "$guest_script" ] || usage
[ -f "$guest_script" ] || die "guest script not found: $guest_script"
case $timeout_s in '' | *[!0-9]*) die "--timeout needs seconds, got '$timeout_s'" ;; esac
for b in "${bins[@]}"; do
	[ -f "$b" ] && [ -x "$b" ] || die "--bin $b: not an executable file"
done

# --- can QEMU run here at all? (the only reasons to skip) ---
qemu=${TSLAB_VM_QEMU:-$(command -v qemu-system-x86_64)}
[ -n "$qemu" ] && [ -x "$qemu" ] || skip "qemu-system-x86_64 not found${qemu:+ at $qemu} (apt-get install qemu-system-x86)"
kernel=${TSLAB_VM_KERNEL:-}
if [ -z "$kernel" ]; then
	kernel=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
fi
[ -n "$kernel" ] && [ -r "$kernel" ] || skip "no readable kernel image in /boot (apt-get install linux-image-amd64)"
kver=${kernel##*/vmlinuz-}
moddir=${TSLAB_VM_MODULES:-/lib/modules/$kver}
[ -f "$moddir/modules.dep" ] || skip "no modules for kernel $kver in $moddir"

for tool in cpio gzip ldd timeout; do
	command -v "$tool" >/dev/null || die "host tool '$tool' is missing"
done
busybox=$(command -v busybox) || die "busybox is missing (apt-get install busybox-static)"
# The guest has no libc of its own beyond what we copy: busybox must be static.
if ldd "$busybox" >/dev/null 2>&1; then
	die "$busybox is dynamically linked; install busybox-static"
fi
zbd_bin=$(command -v zbd) || die "zbd is missing (apt-get install zbd-utils)"

# --- work dir ---
work=$(mktemp -d "${TMPDIR:-/tmp}/tslab-vm.XXXXXX") || die "mktemp failed"
qemu_pid=
cleanup() {
	[ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null
	if [ "$keep" = 1 ]; then
		echo "$prog: kept work dir $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[ -n "$log" ] || log=$work/console.log
: >"$log" || die "cannot write log file $log"

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,lib/modules,dev,proc,sys,tmp,mnt,run,etc,root} ||
	die "cannot create initramfs tree"

# --- busybox and its applets ---
cp "$busybox" "$root/bin/busybox" || die "copy busybox"
while read -r applet; do
	[ "$applet" = bin/busybox ] && continue
	mkdir -p "$root/${applet%/*}"
	ln -sf /bin/busybox "$root/$applet"
done < <("$busybox" --list-full)
[ -e "$root/bin/sh" ] || ln -sf /bin/busybox "$root/bin/sh"

# --- kernel modules, dependency-ordered ---
# modules.dep: "kernel/x/a.ko: kernel/y/b.ko kernel/z/c.ko" (deps are complete,
# i.e. transitive). We order them depth-first so each module follows its deps.
declare -A mod_path=() mod_deps=() mod_seen=()
while IFS= read -r line; do
	m=${line%%:*}
	n=${m##*/}
	n=${n%%.ko*}
	n=${n//-/_}
	mod_path[$n]=$m
	mod_deps[$n]=${line#*: }
	[ "${mod_deps[$n]}" = "$line" ] && mod_deps[$n]=
done <"$moddir/modules.dep"
builtin_has() { # module name (normalized): built into the kernel?
	# No pipe into grep -q: with pipefail, sed dying of SIGPIPE when grep
	# exits at the first match would make a hit look like a miss.
	[ -f "$moddir/modules.builtin" ] &&
		grep -q "/$1\.ko\$" <<<"$(sed 's/-/_/g' "$moddir/modules.builtin")"
}
mod_order=()
mod_add() { # normalized module name
	local n=$1 d dn
	[ -n "${mod_seen[$n]:-}" ] && return 0
	mod_seen[$n]=1
	if [ -z "${mod_path[$n]:-}" ]; then
		builtin_has "$n" && return 0
		die "kernel module $n is neither in modules.dep nor built in ($moddir)"
	fi
	for d in ${mod_deps[$n]}; do
		dn=${d##*/}
		dn=${dn%%.ko*}
		mod_add "${dn//-/_}"
	done
	mod_order+=("$n")
}
# nvme: the controller and namespaces; fuse: for mounting tslabfs;
# mq_deadline: Linux only allows writes to sequential zones through a
# zone-write-locking scheduler (built in on Debian, but a module elsewhere).
for m in nvme fuse mq_deadline "${modules[@]}"; do
	mod_add "${m//-/_}"
done
: >"$root/etc/modules.order"
for n in "${mod_order[@]}"; do
	src=$moddir/${mod_path[$n]}
	dst=$root/lib/modules/$n.ko
	case $src in
	*.ko) cp "$src" "$dst" ;;
	*.ko.xz) xz -dc "$src" >"$dst" ;;
	*.ko.zst) zstd -qdc "$src" >"$dst" ;;
	*.ko.gz) gzip -dc "$src" >"$dst" ;;
	*) die "unknown module format: $src" ;;
	esac || die "cannot copy module $src"
	echo "$n" >>"$root/etc/modules.order"
done

# --- host binaries and their shared libraries ---
copy_lib() { # absolute path: copy to the same path, following symlinks
	local p=$1
	[ -e "$root$p" ] && return 0
	mkdir -p "$root${p%/*}" && cp -L "$p" "$root$p" || die "cannot copy library $p"
}
copy_bin() { # path: into /usr/local/bin under its basename, plus its libraries
	local b=$1 out lib
	cp -L "$b" "$root/usr/local/bin/${b##*/}" || die "cannot copy $b"
	out=$(ldd "$b" 2>&1) || {
		# static executables make ldd fail with "not a dynamic executable"
		case $out in *"not a dynamic executable"* | *"statically linked"*) return 0 ;; esac
		die "ldd $b failed: $out"
	}
	if grep -q "not found" <<<"$out"; then
		die "$b needs libraries that are not found: $(grep 'not found' <<<"$out" | tr -s '\n\t' ' ')"
	fi
	while read -r lib; do
		copy_lib "$lib"
	done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out")
}
copy_bin "$zbd_bin"
# glibc dlopen()s libgcc_s for pthread_cancel and unwinding; ldd does not list
# it. Without it libfuse's multithreaded loop aborts at unmount when it
# cancels its worker threads.
libgcc_s=$(ldconfig -p | awk '$1 == "libgcc_s.so.1" && /x86-64/ { print $NF; exit }')
[ -n "$libgcc_s" ] && copy_lib "$libgcc_s"
fusermount=$(command -v fusermount3) && copy_bin "$fusermount"
for b in "${bins[@]}"; do
	copy_bin "$b"
done
cp "$guest_script" "$root/guest.sh" || die "cannot copy guest script"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
: >"$root/etc/mtab"

cat >"$root/init" <<'EOF'
#!/bin/sh
# tslabfs QEMU guest init: set up, run /guest.sh, report, power off.
export PATH=/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin
export HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
ln -sf /proc/mounts /etc/mtab

finish() { # rc, reason
	echo "TSLAB-VM-RESULT rc=$1${2:+ ($2)}"
	if [ "$1" -ne 0 ]; then
		echo "TSLAB-VM: kernel log tail:"
		dmesg | tail -n 30
	fi
	if [ -b /dev/nvme0n2 ]; then
		echo "TSLAB-VM: zbd report /dev/nvme0n2 (after)"
		zbd report /dev/nvme0n2
	fi
	sync
	echo "TSLAB-VM: powering off"
	poweroff -f
	exit "$1"
}

echo "TSLAB-VM: kernel $(uname -r), $(nproc) cpus"
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
for m in $(cat /etc/modules.order); do
	insmod "/lib/modules/$m.ko" || finish 125 "insmod $m failed"
done

i=0
while [ ! -b /dev/nvme0n2 ]; do
	i=$((i + 1))
	[ $i -le 300 ] || finish 125 "/dev/nvme0n2 did not appear"
	sleep 0.1
done
[ -c /dev/fuse ] || finish 125 "/dev/fuse missing"

echo "TSLAB-VM: block devices:"
ls -l /dev/nvme*
q=/sys/block/nvme0n2/queue
echo "TSLAB-VM: nvme0n2 zoned=$(cat $q/zoned) nr_zones=$(cat $q/nr_zones 2>/dev/null)" \
	"chunk_sectors=$(cat $q/chunk_sectors) max_open_zones=$(cat $q/max_open_zones 2>/dev/null)" \
	"max_active_zones=$(cat $q/max_active_zones 2>/dev/null)" \
	"logical_block_size=$(cat $q/logical_block_size)" \
	"zone_append_max_bytes=$(cat $q/zone_append_max_bytes 2>/dev/null)"
# Linux serializes writes per sequential zone only in mq-deadline (zone write
# locking); with "none", concurrent regular writes to one zone can reach the
# device out of order. Guest scripts may switch it back to test that.
echo "TSLAB-VM: nvme0n2 scheduler at boot: $(cat $q/scheduler)"
echo mq-deadline >$q/scheduler || finish 125 "cannot select mq-deadline for nvme0n2"
echo "TSLAB-VM: nvme0n2 scheduler: $(cat $q/scheduler)"
[ "$(cat $q/zoned)" = host-managed ] || finish 125 "nvme0n2 is not host-managed"
echo "TSLAB-VM: zbd report /dev/nvme0n2 (before)"
zbd report /dev/nvme0n2 || finish 125 "zbd report failed"

echo "TSLAB-VM: running guest script"
cd /tmp
sh /guest.sh
finish $?
EOF
chmod +x "$root/init" "$root/guest.sh"

initrd=$work/initrd.gz
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$initrd" ||
	die "cannot build the initramfs"

# --- disks: sparse images ---
truncate -s 64M "$work/conv.img" && truncate -s 1G "$work/zns.img" ||
	die "cannot create disk images"

# --- boot ---
qemu_args=(
	-accel tcg -cpu max -smp 2 -m 1G
	-nographic -no-reboot -net none
	-kernel "$kernel" -initrd "$initrd"
	-append "console=ttyS0 quiet panic=-1"
	-device nvme,id=nvme0,serial=tslab0,zoned.zasl=5
	-drive "file=$work/conv.img,id=c0,format=raw,if=none"
	-device nvme-ns,drive=c0,bus=nvme0,nsid=1
	-drive "file=$work/zns.img,id=z0,format=raw,if=none"
	-device "nvme-ns,drive=z0,bus=nvme0,nsid=2,zoned=true,zoned.zone_size=64M,zoned.zone_capacity=60M,zoned.max_open=14,zoned.max_active=14"
)
echo "$prog: kernel $kernel, initramfs $(du -h "$initrd" | cut -f1), timeout ${timeout_s}s, log $log"
echo "$prog: $qemu ${qemu_args[*]}"
start=$(date +%s)
# stdin from /dev/null: the guest must not read the host terminal.
timeout -k 10 "$timeout_s" "$qemu" "${qemu_args[@]}" </dev/null 2>&1 |
	tr -d '\r' | tee "$log"
statuses=("${PIPESTATUS[@]}")
qrc=${statuses[0]}
elapsed=$(($(date +%s) - start))

result=$(sed -n 's/^TSLAB-VM-RESULT rc=\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
if [ -z "$result" ]; then
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		why="timed out after ${timeout_s}s"
	else
		why="qemu exited with $qrc"
	fi
	echo "$prog: FAIL: no TSLAB-VM-RESULT line from the guest ($why, ${elapsed}s); log tail:" >&2
	tail -n 40 "$log" >&2
	exit 1
fi
echo "$prog: guest result rc=$result after ${elapsed}s (qemu exit $qrc)"
if [ "$result" = 77 ]; then
	# A guest script that "skips" would hide a broken device path: only the
	# host side may skip, and only when QEMU cannot run.
	echo "$prog: FAIL: the guest script exited 77; guest scripts must not skip" >&2
	exit 1
fi
exit "$result"
