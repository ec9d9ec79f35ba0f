"""Fixtures of the Python suites: a real sidetrackd on a scratch ring and store, started once
per session, and the CLI to read back what it stored.

SIDETRACK_BUILD_DIR names the meson build directory (meson test sets it); the package is
imported from $SIDETRACK_BUILD_DIR/python, where the build lays it out as it is installed.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: pyutil
import pyutil  # noqa: E402
# SOURCE (the source tree) is imported from here by test_packaging.py.
from pyutil import AGENT, CLI, SOURCE, built, wait_for  # noqa: E402,F401
PYDIR = built("python")
sys.path.insert(0, PYDIR)
# Child processes (spawn, subprocess, Dask workers) import the same build.
os.environ["PYTHONPATH"] = PYDIR + (os.pathsep + os.environ["PYTHONPATH"]
                                    if os.environ.get("PYTHONPATH") else "")

# One ring and one store for the session: the package attaches to a ring once per process.
_TMP = tempfile.mkdtemp(prefix="sidetrack-pytest-")
RING = os.path.join(_TMP, "ring")
DATA = os.path.join(_TMP, "data")
os.makedirs(RING)
os.environ["SIDETRACK_RING_DIR"] = RING
os.environ.setdefault("SIDETRACK_LANE_MB", "64")
os.environ.pop("SIDETRACK_RUN_ID", None)


class Node:
    """The agent under test and read-back through the CLI."""

    def __init__(self):
        self.cli = CLI
        self.agentd = AGENT
        self.data = DATA
        self.ring = RING
        self.proc = subprocess.Popen([self.agentd, "-d", DATA, "-r", RING, "-i", "5",
                                      "-f", "0"], stderr=subprocess.PIPE, text=True)
        # Ready once it has published its status (its signal handlers are in place by then):
        # a test that ends at once (a skip) must not SIGTERM an agent still starting up.
        wait_for(lambda: os.path.exists(os.path.join(DATA, "agent.status")) or
                 self.proc.poll() is not None, timeout=60, what="sidetrackd to start")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err

    def run_cli(self, *args, check=True):
        return pyutil.cli(self.data, *args, check=check, timeout=30)

    def show(self, run_id):
        p = self.run_cli("runs", "show", run_id, "--json", check=False)
        return json.loads(p.stdout) if p.returncode == 0 else None

    def metric(self, run_id, key):
        p = self.run_cli("metrics", run_id, key, "--format", "json", check=False)
        return json.loads(p.stdout) if p.returncode == 0 else []

    def runs(self):
        return json.loads(self.run_cli("runs", "list", "--json").stdout)

    def artifact(self, run_id, path):
        out = os.path.join(_TMP, "artifact.out")
        self.run_cli("artifacts", run_id, "--get", path, "--out", out)
        with open(out, "rb") as f:
            return f.read()

    # Generous: the sanitizer builds run these on a loaded 2-core machine; a pass is fast.
    def wait(self, pred, timeout=60.0, what="the agent to store the records"):
        """Polls pred() until it returns something true; the agent drains asynchronously."""
        return wait_for(pred, timeout, what)

    def wait_run(self, run_id, pred=lambda r: True, timeout=60.0):
        """The run's `runs show --json` once pred(run) holds; on a timeout the message shows
        the run as last seen."""
        seen = {}

        def check():
            r = seen["run"] = self.show(run_id)
            return r if r and pred(r) else None
        return self.wait(check, timeout, lambda: f"run {run_id}; last seen: {seen.get('run')}")

    def wait_metric(self, run_id, key, count, timeout=60.0):
        return self.wait(lambda: (lambda m: m if len(m) >= count else None)(
            self.metric(run_id, key)), timeout, f"{count} points of {key} in run {run_id}")


_node = None


@pytest.fixture(scope="session")
def node():
    global _node
    if _node is None:
        _node = Node()
    yield _node


def pytest_sessionfinish(session, exitstatus):
    if _node is not None:
        try:
            import sidetrack

            while sidetrack.active_run() is not None:
                sidetrack.end_run()
        except Exception:
            pass
        rc, err = _node.stop()
        if rc != 0:
            print(f"\nsidetrackd exited {rc}:\n{err}", file=sys.stderr)
            session.exitstatus = 1
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_active_run():
    """Every test starts and ends with no active run in this process."""
    yield
    import sidetrack

    while sidetrack.active_run() is not None:
        sidetrack.end_run()


def metrics_of(show):
    return {m["key"]: m for m in show["metrics"]}
