#!/bin/bash
# Large-file benchmark (tslabfs vs ext4, same disk, one run); see the
# header of extents_bench.py for what is measured. Needs root, a build
# directory (fs/tslabfs, mkfs/mkfs.tslabfs), e2fsprogs, util-linux, fuse3.
#   sudo tests/bench/run-extents-bench.sh [--build DIR] [--scratch DIR] [--scale F]
exec python3 "$(dirname "$0")/extents_bench.py" "$@"
