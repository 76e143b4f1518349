#!/bin/bash
# Build tslabfs and run it on the embedded default: an image file with
# emulated zones, formatted on first use and mounted at a default mountpoint.
#
#   ./run.sh                 build, format /var/tmp/tslabfs.img if needed, mount at /mnt/tslab
#   ./run.sh stop            unmount (flushes everything) and stop the daemon
#   TSLAB_IMAGE=... TSLAB_MNT=... TSLAB_SIZE=8G ./run.sh    other places / size
set -euo pipefail
cd "$(dirname "$0")"
img=${TSLAB_IMAGE:-/var/tmp/tslabfs.img}
mnt=${TSLAB_MNT:-/mnt/tslab}
size=${TSLAB_SIZE:-4G}

if [ "${1:-}" = stop ]; then
	if mountpoint -q "$mnt"; then
		fusermount3 -u "$mnt" && echo "unmounted $mnt"
	else
		echo "$mnt is not mounted"
	fi
	exit 0
fi

tests/install-deps.sh build
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

if [ ! -e "$img" ]; then
	build/mkfs/mkfs.tslabfs --size "$size" -L default "$img"
else
	echo "using the existing image $img (delete it to start afresh)"
fi

if [ ! -x build/fs/tslabfs ]; then
	echo "the filesystem daemon is not built in this checkout; the image is formatted"
	exit 0
fi
if mountpoint -q "$mnt"; then
	echo "$mnt is already mounted; './run.sh stop' unmounts it"
	exit 0
fi
mkdir -p "$mnt"
build/fs/tslabfs "$img" "$mnt"
cat <<MSG
tslabfs is mounted at $mnt (image $img).
  mkdir $mnt/2026-11-21T13                 # each top-level directory is an epoch
  echo 21.5 > $mnt/2026-11-21T13/sensor-0042
  getfattr -d -m user.tslab $mnt/2026-11-21T13   # the epoch's files, bytes, slabs, zones
  rmdir $mnt/2026-11-21T13                 # drops the whole epoch at once
  df -h $mnt; df -i $mnt
Unmount with: ./run.sh stop   (or fusermount3 -u $mnt)
MSG
