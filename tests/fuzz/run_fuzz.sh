#!/bin/sh
# run_fuzz.sh TARGET SEEDS WORKDIR SECONDS — runs a libFuzzer target for SECONDS on the
# committed seed corpus SEEDS (only read), writing new inputs and any crash into WORKDIR.
set -eu
exe=$1 seeds=$2 work=$3 secs=$4
mkdir -p "$work/corpus"
# -error_exitcode=1: libFuzzer's default (77) is what meson reads as "skipped", so a crash
# would pass for a skip.
exec "$exe" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
    -error_exitcode=1 -timeout_exitcode=1 \
    -artifact_prefix="$work/" "$work/corpus" "$seeds"
