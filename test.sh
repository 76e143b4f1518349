#!/bin/bash
# Run every tslabfs test: installs what it needs (Debian 12, root), builds with
# -Werror, runs the unit, integration (real FUSE mounts, crash tests) and vm
# (QEMU guest with a real NVMe ZNS namespace) and crash (crash states of write
# logs, tests/crash) suites, then the unit suite again
# under AddressSanitizer + UndefinedBehaviorSanitizer, fuzzes the on-disk
# parsers (tests/fuzz), and prints one summary.
set -uo pipefail
cd "$(dirname "$0")"
top=$PWD

tests/install-deps.sh test || exit 1

setup() { # dir, extra meson args...
	local dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" -Dwerror=true "$@" >/dev/null
	else
		meson setup "$dir" -Dwerror=true "$@" >/dev/null
	fi
}

pass=0 fail=0 skip=0
count() { # dir: add the results of the last meson test run in DIR
	local log=$1/meson-logs/testlog.json
	[ -f "$log" ] || return 0
	read -r p f s < <(python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
	)
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
}

rc=0
setup build || exit 1
ninja -C build || exit 1
# FUSE over io_uring is off by default in the kernel; it only affects
# daemons that ask for it at INIT (suite integration-uring).
uring_param=/sys/module/fuse/parameters/enable_uring
[ -w "$uring_param" ] && echo 1 >"$uring_param"
meson test -C build --print-errorlogs --suite unit --suite integration \
	--suite integration-uring --suite crash --suite vm || rc=1
count build

setup build-asan -Db_sanitize=address,undefined -Db_lundef=false || exit 1
ninja -C build-asan || exit 1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C build-asan --print-errorlogs --suite unit || rc=1
count build-asan

# Every on-disk parser under libFuzzer, a bounded time per target
# (TSLAB_FUZZ_SECONDS, default 15); crash inputs kept in tests/fuzz/regress
# are run first.
nice -n 5 tests/fuzz/run-fuzz.sh "${TSLAB_FUZZ_SECONDS:-15}"
case $? in
0) pass=$((pass + 1)) ;;
77) skip=$((skip + 1)) ;;
*) fail=$((fail + 1)) rc=1 ;;
esac

echo
echo "tests: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] || rc=1
exit $rc
