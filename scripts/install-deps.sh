#!/usr/bin/env bash
# Installs the Debian 12 packages sidetrack builds and tests with. Run as root.
# Skips apt entirely when everything is present already (SIDETRACK_SKIP_APT=1 forces a skip).
set -euo pipefail
PKGS=(meson ninja-build pkg-config gcc clang libclang-rt-14-dev
      liblmdb-dev lmdb-utils libmsgpack-dev libzmq3-dev libcurl4-openssl-dev libssl-dev
      libmicrohttpd-dev libjansson-dev openssl
      libcmocka-dev python3 python3-dev ca-certificates
      python3-mesonpy python3-venv python3-pytest python3-numpy python3-torch
      python3-dask python3-distributed python3-matplotlib git
      libjs-chart.js chromium)
# The web UI's browser tests (tests/web) run on node; a machine with a node of its own (e.g.
# NodeSource's, which bundles npm) keeps it, else Debian's.
if ! command -v node >/dev/null 2>&1; then
  PKGS+=(nodejs npm)
fi
if [ "${SIDETRACK_SKIP_APT:-0}" = 1 ]; then
  echo "== packages: skipped (SIDETRACK_SKIP_APT=1)"
  exit 0
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "== packages: no dpkg-query here (not Debian?); assuming they are installed"
  exit 0
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "== packages: all installed"
  exit 0
fi
echo "== packages: installing ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
  echo "sidetrack: missing packages: ${missing[*]}; run this as root (or install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
