#!/usr/bin/env bash
# The main job, end to end on one node: install, build, start sidetrackd on its embedded
# store, run the example training loop, and show the run read back from the store.
#   scripts/main.sh            (as root on a fresh Debian 12 machine)
# Leaves the store in ./.scratch/demo/data so you can explore it with build/client/cli/sidetrack.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d build ] || meson setup build --buildtype=release -Dpython=/usr/bin/python3 >/dev/null
ninja -C build >/dev/null

demo="$PWD/.scratch/demo"
rm -rf "$demo"
mkdir -p "$demo"
export SIDETRACK_DATA="$demo/data"
export SIDETRACK_RING_DIR="/dev/shm/sidetrack-demo-$$"
[ -w /dev/shm ] || SIDETRACK_RING_DIR="$demo/rings"
cli=build/client/cli/sidetrack

echo "== starting sidetrackd (store: $SIDETRACK_DATA, rings: $SIDETRACK_RING_DIR)"
build/agent/sidetrackd --verbose &
agent=$!
trap 'kill $agent 2>/dev/null || true; rm -rf "$SIDETRACK_RING_DIR"' EXIT

echo "== training (C): 10,000 steps x 4 metrics, params, a tag and a checkpoint artifact"
run=$(build/examples/sidetrack-example-train --steps 10000)

echo "== training (Python, PyTorch): 5 epochs, the loss logged every step as a tensor"
pyrun=$(PYTHONPATH=build/python /usr/bin/python3 examples/train_torch.py --epochs 5)

echo "== stopping the agent (it drains everything published, then fsyncs)"
kill -TERM $agent
wait $agent
trap 'rm -rf "$SIDETRACK_RING_DIR"' EXIT

echo "== runs in the store"
$cli runs list
echo
echo "== the run, read back from the store"
$cli runs show "$run"
echo
echo "== the first steps of train/loss"
$cli metrics "$run" train/loss --format csv | head -6 || true  # head closes the pipe early
echo "..."
echo
echo "== the PyTorch run, read back from the store"
$cli runs show "$pyrun"
echo
echo "== the model it registered (a new version each time this runs; @candidate on it)"
$cli models show example-mlp
echo
echo "Explore more: $cli --data $SIDETRACK_DATA --help"
