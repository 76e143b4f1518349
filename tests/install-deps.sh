#!/bin/bash
# Install what tslabfs needs to build and test on Debian 12, as root.
# Usage: tests/install-deps.sh [build|test|bench]   (each level includes the previous)
set -euo pipefail
level=${1:-build}

pkgs=(gcc pkg-config meson ninja-build libfuse3-dev fuse3 libzbd-dev zbd-utils
      liburing-dev libxxhash-dev libcmocka-dev util-linux python3 attr)
if [ "$level" = test ] || [ "$level" = bench ]; then
	pkgs+=(qemu-system-x86 linux-image-amd64 busybox-static cpio xz-utils kmod
	       nfs-kernel-server nfs-common)
	# tests/fuzz/run-fuzz.sh: libFuzzer targets under ASan/UBSan
	pkgs+=(clang-14 libfuzzer-14-dev libclang-rt-14-dev)
fi
if [ "$level" = bench ]; then
	pkgs+=(e2fsprogs xfsprogs btrfs-progs)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root or install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
