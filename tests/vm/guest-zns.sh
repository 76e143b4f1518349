#!/bin/sh
# Guest script for run-vm.sh (busybox sh inside the QEMU guest): the zoned
# device contract test and mkfs.tslabfs against the real host-managed NVMe ZNS
# namespace /dev/nvme0n2 (16 zones of 64 MiB, capacity 60 MiB).
# Needs test_zns_contract, mkfs.tslabfs and zbd in PATH; a missing one fails.
set -u
dev=/dev/nvme0n2
out=/tmp/out
fails=0 checks=0

for b in test_zns_contract mkfs.tslabfs zbd; do
	if ! command -v "$b" >/dev/null; then
		echo "guest-zns: FAIL: $b is not in the guest (pass it with run-vm.sh --bin)"
		exit 1
	fi
done

check() { # description, expected exit code, command...
	what=$1 want=$2
	shift 2
	echo "guest-zns: \$ $*"
	"$@" >"$out" 2>&1
	got=$?
	cat "$out"
	checks=$((checks + 1))
	if [ "$got" -ne "$want" ]; then
		echo "guest-zns: FAIL: $what: exit $got, expected $want"
		fails=$((fails + 1))
	else
		echo "guest-zns: ok: $what"
	fi
}

expect_out() { # description, extended regex the last command's output must match
	checks=$((checks + 1))
	if grep -qE "$2" "$out"; then
		echo "guest-zns: ok: $1"
	else
		echo "guest-zns: FAIL: $1: output lacks /$2/"
		fails=$((fails + 1))
	fi
}

report() { # file: zone report of $dev
	zbd report "$dev" >"$1" || {
		echo "guest-zns: FAIL: zbd report $dev"
		exit 1
	}
}

nonempty_zones() { # report file: number of zones whose condition is not empty
	grep '^Zone' "$1" | grep -vc ', em, '
}

# 1. The zns layer's contract against the kernel's zoned block device.
check "device contract test on $dev" 0 env TSLAB_ZNS_DEV="$dev" test_zns_contract

# 2. mkfs on the real device takes its geometry from the device.
check "mkfs.tslabfs $dev" 0 mkfs.tslabfs "$dev"
expect_out "mkfs reports 16 zones of 64 MiB" "zones +16 x 64 MiB"
expect_out "mkfs reports the 60 MiB zone capacity" "capacity 60 MiB"
report /tmp/zones.fmt
echo "guest-zns: zbd report after mkfs:"
cat /tmp/zones.fmt
n=$(nonempty_zones /tmp/zones.fmt)
checks=$((checks + 1))
if [ "${n:-0}" -ge 1 ]; then
	echo "guest-zns: ok: mkfs wrote to $n zone(s)"
else
	echo "guest-zns: FAIL: every zone is empty after mkfs"
	fails=$((fails + 1))
fi

# 3. Without -f, mkfs refuses the formatted device and leaves it untouched.
check "mkfs refuses an existing tslabfs without -f" 1 mkfs.tslabfs "$dev"
expect_out "refusal says why" "already contains tslabfs"
report /tmp/zones.refused
checks=$((checks + 1))
if cmp -s /tmp/zones.fmt /tmp/zones.refused; then
	echo "guest-zns: ok: zone report unchanged by the refused mkfs"
else
	echo "guest-zns: FAIL: the refused mkfs changed the zones:"
	diff /tmp/zones.fmt /tmp/zones.refused
	fails=$((fails + 1))
fi

# 4. With -f it formats again.
check "mkfs -f overwrites" 0 mkfs.tslabfs -f "$dev"
report /tmp/zones.force
echo "guest-zns: zbd report after mkfs -f:"
cat /tmp/zones.force
n=$(nonempty_zones /tmp/zones.force)
checks=$((checks + 1))
if [ "${n:-0}" -ge 1 ]; then
	echo "guest-zns: ok: mkfs -f wrote to $n zone(s)"
else
	echo "guest-zns: FAIL: every zone is empty after mkfs -f"
	fails=$((fails + 1))
fi

echo "guest-zns: $checks checks, $fails failed"
[ "$fails" -eq 0 ]
