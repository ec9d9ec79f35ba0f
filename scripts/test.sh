#!/usr/bin/env bash
# scripts/test.sh — the test command. On a fresh Debian 12 machine, as root, from any
# directory:  bash scripts/test.sh
#
#   1. installs the build and test packages (skipped when all are installed already, or with
#      SIDETRACK_SKIP_APT=1);
#   2. builds four trees, all with --werror:
#        build-ci    plain (debugoptimized)                      -> every suite
#        build-asan  AddressSanitizer + UndefinedBehaviorSanitizer -> every suite (the Python
#                    suites with the ASan runtime preloaded into /usr/bin/python3)
#        build-tsan  ThreadSanitizer, ring tests only (-Dtsan_only=true) -> suite ring
#        build-fuzz  clang, the libFuzzer targets of tests/fuzz (-Dfuzz=true) -> suite fuzz
#                    (each target 15 s on its seed corpus; see tests/fuzz/README.md)
#   3. runs `meson test` in each and adds up meson's counts (suite python: one meson test per
#      pytest file, run by Debian's /usr/bin/python3, which python3-torch is built for).
#
# The last line of the output is always `N passed, N failed, N skipped` (all builds together;
# a timeout counts as failed, and so does a build that did not build). The exit status is
# non-zero when anything failed.
#
# Environment: SIDETRACK_SKIP_APT=1 (no apt), SIDETRACK_TEST_JOBS (parallel tests, default:
# the number of CPUs, at most 4), SIDETRACK_TEST_BUILDS (e.g. "ci tsan": a subset; default
# "ci asan tsan fuzz"),
# RING_TEST_RECORDS (records per producer in the ring concurrency tests).
set -uo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." || exit 1
root=$PWD

total_pass=0
total_fail=0
total_skip=0
summaries=()

finish() {
    echo
    echo "== summary"
    local s
    for s in "${summaries[@]}"; do
        echo "$s"
    done
    echo "$total_pass passed, $total_fail failed, $total_skip skipped"
    if [ "$total_fail" -gt 0 ]; then
        exit 1
    fi
    exit 0
}

# ---- 1. packages ------------------------------------------------------------------------
# One list, in install-deps.sh, for this script and main.sh.
install_packages() {
    bash "$root/scripts/install-deps.sh"
}

if ! install_packages; then
    echo "sidetrack: installing packages failed" >&2
    total_fail=$((total_fail + 1))
    summaries+=("packages: FAILED to install")
    finish
fi

# ---- 2. test sizes ----------------------------------------------------------------------
# Measured on a 2-vCPU KVM guest (Debian 12, gcc 12): the whole run, three builds from scratch
# and every suite, takes about 70 s with the full sizes (ring concurrency tests: 2,000,000
# records per producer plain and ASan, 200,000 under TSan), so CI=true needs no smaller sizes.
# RING_TEST_RECORDS, when set, applies to every build, TSan included. The fourth build,
# build-fuzz, adds about 65 s (15 s to build with clang, 6 targets x 15 s two at a time).

ncpu=$(nproc 2>/dev/null || echo 2)
jobs=${SIDETRACK_TEST_JOBS:-$((ncpu < 4 ? ncpu : 4))}
builds=${SIDETRACK_TEST_BUILDS:-"ci asan tsan fuzz"}

# ---- 3. build and test ------------------------------------------------------------------
# setup DIR OPTIONS...: configures DIR with OPTIONS, reconfiguring an existing tree (a fresh
# setup when that fails, e.g. after a meson upgrade).
setup() {
    local dir=$1
    shift
    if [ -f "$dir/meson-private/coredata.dat" ]; then
        meson setup --reconfigure "$dir" "$@" && return 0
        echo "== $dir: reconfigure failed, setting up afresh"
        rm -rf "$dir"
    fi
    meson setup "$dir" "$@"
}

# count LOG KEY: the number on meson's summary line "KEY: N" (0 when absent).
count() {
    local n
    n=$(sed -n "s/^$2:[[:space:]]*\([0-9][0-9]*\).*/\1/p" "$1" | tail -n 1)
    echo "${n:-0}"
}

# run_build NAME DIR "SUITE ARGS" "TEST ARGS" OPTIONS...
run_build() {
    local name=$1 dir=$2 suites=$3 testargs=$4
    shift 4
    local log="$root/$dir/test-summary.log" t0 t1 t2
    echo
    echo "== $name: configure and build ($dir)"
    t0=$(date +%s)
    if ! setup "$dir" "$@" || ! ninja -C "$dir"; then
        echo "sidetrack: $name did not build" >&2
        total_fail=$((total_fail + 1))
        summaries+=("$name: BUILD FAILED (counted as 1 failure)")
        return
    fi
    t1=$(date +%s)
    echo
    echo "== $name: meson test $suites"
    # shellcheck disable=SC2086  # suites and testargs are word lists
    meson test -C "$dir" --print-errorlogs --num-processes "$jobs" $suites $testargs 2>&1 |
        tee "$log"
    local rc=${PIPESTATUS[0]}
    t2=$(date +%s)
    local ok xfail fail xpass skip tmo pass failed
    ok=$(count "$log" "Ok")
    xfail=$(count "$log" "Expected Fail")
    fail=$(count "$log" "Fail")
    xpass=$(count "$log" "Unexpected Pass")
    skip=$(count "$log" "Skipped")
    tmo=$(count "$log" "Timeout")
    pass=$((ok + xfail))
    failed=$((fail + xpass + tmo))
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        echo "sidetrack: meson test in $dir exited with $rc without a failing test" >&2
        failed=1
    fi
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + failed))
    total_skip=$((total_skip + skip))
    summaries+=("$name: $pass passed, $failed failed, $skip skipped (build $((t1 - t0)) s, tests $((t2 - t1)) s)")
    pytest_detail "$name" "$dir"
}

# pytest_detail NAME DIR: the pytest cases inside suite python (each file is one meson test
# above), with the reason of every skip, from the JUnit files the suites write.
pytest_detail() {
    local xmls
    xmls=$(find "$root/$2/tests/python" -name 'test_*.xml' -newer "$root/$2/build.ninja" 2>/dev/null)
    [ -n "$xmls" ] || return 0
    local line
    line=$(python3 - $xmls <<'PY'
import sys, xml.etree.ElementTree as ET
n = f = s = 0
why = []
for path in sys.argv[1:]:
    for case in ET.parse(path).getroot().iter("testcase"):
        n += 1
        if case.find("failure") is not None or case.find("error") is not None:
            f += 1
        sk = case.find("skipped")
        if sk is not None:
            s += 1
            why.append(f"{case.get('name')}: {sk.get('message', '')[:120]}")
print(f"  pytest cases in suite python: {n - f - s} passed, {f} failed, {s} skipped")
for w in why:
    print(f"    skipped {w}")
PY
)
    summaries+=("$line")
}

for b in $builds; do
    case $b in
    ci)
        run_build build-ci build-ci "" "" \
            --buildtype=debugoptimized --werror -Dpython=/usr/bin/python3
        ;;
    asan)
        run_build build-asan build-asan "" "--timeout-multiplier 2" \
            --buildtype=debugoptimized --werror -Dpython=/usr/bin/python3 \
            -Db_sanitize=address,undefined -Db_lundef=false
        ;;
    tsan)
        run_build build-tsan build-tsan "--suite ring" "--timeout-multiplier 2" \
            --buildtype=debugoptimized --werror \
            -Db_sanitize=thread -Db_lundef=false -Dtsan_only=true -Dpython_client=disabled
        ;;
    fuzz)
        # libFuzzer needs clang; the sanitizers go on the fuzz executables only (their
        # meson.build), so the rest of this tree is a plain clang build (also --werror).
        CC=clang run_build build-fuzz build-fuzz "--suite fuzz" "" \
            --buildtype=debugoptimized --werror -Dfuzz=true -Dpython_client=disabled
        ;;
    *)
        echo "sidetrack: unknown build '$b' in SIDETRACK_TEST_BUILDS (ci, asan, tsan, fuzz)" >&2
        total_fail=$((total_fail + 1))
        summaries+=("$b: unknown build")
        ;;
    esac
done

finish
