#!/bin/bash
# Build the libFuzzer targets (tests/fuzz/fuzz_targets.c) with clang-14 under
# AddressSanitizer + UndefinedBehaviorSanitizer in build-fuzz/, run every
# regression input, then fuzz each target for SECONDS (default 15) from a
# seed corpus (mkfs + a small workload: the "image" target builds its own;
# the others start from blocks cut out of such an image).
#
#   tests/fuzz/run-fuzz.sh [SECONDS] [TARGET...]
#
# Prints one line per target: executions, new crashes. A crash input is
# copied to tests/fuzz/regress/TARGET/ (keep it: it becomes a regression
# input) and the script exits 1. Exit 77 when clang-14/libFuzzer is missing.
set -uo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
secs=${1:-15}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sb page record ckpt emul image)

cc=${CC_FUZZ:-clang-14}
if ! command -v "$cc" >/dev/null ||
	! ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
	echo "run-fuzz: $cc or libFuzzer missing: skipped"
	exit 77
fi

bdir=$top/build-fuzz
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# clang warns about a GNU extension the code uses (flexible array members
# inside structs); the fuzz build is not the -Werror build.
cflags="-fsanitize=fuzzer-no-link $san -g -O1 -Wno-gnu-variable-sized-type-not-at-end"
if [ ! -f "$bdir/build.ninja" ]; then
	CC=$cc meson setup "$bdir" -Dtests=false -Db_lundef=false \
		-Dc_args="$cflags" >/dev/null || exit 1
fi
ninja -C "$bdir" slab/libtslab_slab.a zns/libtslab_zns.a >/dev/null || exit 1

libs="$bdir/slab/libtslab_slab.a $bdir/zns/libtslab_zns.a \
	$(pkg-config --libs libxxhash libzbd liburing 2>/dev/null || echo -lxxhash -lzbd -luring) -lpthread"
declare -A num=([sb]=1 [page]=2 [record]=3 [ckpt]=4 [image]=5 [emul]=6)

work=$(mktemp -d "${TMPDIR:-/tmp}/tslab-fuzz.XXXXXX")
export TSLAB_FUZZ_DIR=$work
trap 'rm -rf "$work"' EXIT

# Seed corpus: blocks of a real image (the image target needs none).
seed_img=$work/seed.img
"$top/build/mkfs/mkfs.tslabfs" -q -f -s 16M -z 1M "$seed_img" >/dev/null 2>&1 || true

rc=0
for t in "${targets[@]}"; do
	n=${num[$t]:-}
	[ -n "$n" ] || { echo "run-fuzz: unknown target $t"; exit 2; }
	bin=$bdir/fuzz-$t
	$cc $cflags -fsanitize=fuzzer -DFUZZ_TARGET="$n" -D_GNU_SOURCE \
		-DTSLAB_VERSION='"fuzz"' -I"$top" -I"$bdir" \
		tests/fuzz/fuzz_targets.c -o "$bin" $libs || exit 1
	corpus=$work/corpus-$t
	mkdir -p "$corpus" "tests/fuzz/regress/$t"
	if [ -f "$seed_img" ]; then
		# superblock copy, zone table, first pages of the first zones
		# (emul: the first 8 KiB, header and zone table)
		[ "$t" = emul ] && dd if="$seed_img" of="$corpus/seed-head" bs=8192 count=1 status=none
		for off in 0 4096 1048576 2097152 3145728 4194304 5242880; do
			dd if="$seed_img" of="$corpus/seed-$off" bs=4096 count=1 \
				skip=$((off / 4096)) status=none 2>/dev/null
		done
	fi
	# regression inputs first: each must run clean
	if ls "tests/fuzz/regress/$t"/* >/dev/null 2>&1; then
		if ! "$bin" "tests/fuzz/regress/$t"/* >"$work/regress-$t.log" 2>&1; then
			echo "fuzz $t: a regression input fails:"
			tail -30 "$work/regress-$t.log"
			rc=1
			continue
		fi
	fi
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 \
		"$bin" -max_total_time="$secs" -rss_limit_mb=1024 -malloc_limit_mb=512 \
		-timeout=30 -artifact_prefix="$work/crash-$t-" -print_final_stats=1 \
		"$corpus" >"$work/fuzz-$t.log" 2>&1
	frc=$?
	execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/fuzz-$t.log" |
		grep -o '[0-9]*$')
	found=0
	for c in "$work"/crash-"$t"-*; do
		[ -e "$c" ] || continue
		found=$((found + 1))
		cp "$c" "tests/fuzz/regress/$t/"
	done
	echo "fuzz $t: ${execs:-?} executions in ${secs}s, $found new crash inputs (exit $frc)"
	if [ "$found" -gt 0 ] || [ "$frc" -ne 0 ]; then
		tail -40 "$work/fuzz-$t.log"
		rc=1
	fi
done
exit $rc
