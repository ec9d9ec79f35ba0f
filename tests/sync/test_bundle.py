"""Bundle files end to end (`sidetrack export` / `sidetrack import`, sync/bundle.h): real agents
log through their rings, bundles are written from their stores and imported into fresh stores
and into a running server's store that also gets the same agents' data over ZeroMQ. What an
import leaves must equal what the agent holds (every point once, in order, artifact content
included), a second import must change nothing, and a damaged bundle must be refused with
words that say what is wrong, before anything is applied. Run by meson (suite sync) with
SIDETRACK_BUILD_DIR set."""
import json
import os
import signal
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
from pyutil import built, cli, sidetrack, wait_for  # noqa: E402
from cluster import Cluster, converge_and_compare, running, snapshot  # noqa: E402

STEPS = 3000  # per run: 4 metrics a step, so that bundles hold several batches


def export(data, out, *more):
    p = sidetrack("-d", data, "export", "--out", out, *more)
    assert p.returncode == 0, p.stderr
    return p


def import_(data, bundle, *more):
    p = sidetrack("-d", data, "import", bundle, *more)
    assert p.returncode == 0, p.stderr
    return p


def stored(data, run_id, steps, artifacts):
    """The agent has stored all of a run that the example trainer logged."""
    p = cli(data, "runs", "show", run_id, "--json", check=False)
    if p.returncode != 0:
        return False
    s = json.loads(p.stdout)
    return (s["info"]["status"] == "FINISHED" and len(s["metrics"]) == 4 and
            all(m["count"] == steps for m in s["metrics"]) and
            len(s["artifacts"]) == artifacts)


def train(c, name, run_name, steps=STEPS, artifact=None):
    run_id = c.train(name, steps, run_name, artifact=artifact)
    wait_for(lambda: stored(c.agents[name]["data"], run_id, steps, 2 if artifact else 1), 60,
             lambda: f"run {run_name} to be stored\n" + c.logs())
    return run_id


def applied(p):
    """(changes applied, changes already here) from import's summary line."""
    words = p.stdout.replace(",", "").split()
    i = words.index("applied")
    return int(words[i - 2]), int(words[i + 1])


@pytest.fixture
def cluster():
    with running(Cluster, "sidetrack-bundle-") as c:
        yield c


@pytest.fixture
def offline(cluster):
    """One agent, a1, whose server is never there: everything stays in its journal."""
    cluster.add_agent("a1")
    cluster.start_agent("a1")
    return cluster


def test_export_then_import_into_a_fresh_store(offline):
    c = offline
    big = os.path.join(c.root, "weights.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(3 << 20 | 12345))  # several chunks, the last one short
    train(c, "a1", "with-artifact", artifact=big)
    train(c, "a1", "plain")
    data = c.agents["a1"]["data"]
    bundle = os.path.join(c.root, "a1.bundle")
    p = export(data, bundle)
    # 3 artifacts, 2 contents: both checkpoints hold the same bytes, carried once
    assert p.stdout.startswith("exported 2 runs, 24,000 points, 2 artifacts"), p.stdout
    target = os.path.join(c.root, "target")
    chk = sidetrack("import", bundle, "--check")
    assert chk.returncode == 0 and "whole and sound" in chk.stdout, chk.stderr
    assert not os.path.exists(target)
    p = import_(target, bundle)
    ops, here = applied(p)
    assert ops > 0 and here == 0, p.stdout
    want = snapshot(data)
    assert len(want) == 2
    assert snapshot(target) == want  # artifact content compared by its digest too
    # Each run says which agent it came from, as over the network.
    source = chk.stdout.split(" bundle from store ")[1].split()[0]
    for rid in want:
        tags = json.loads(cli(target, "runs", "show", rid, "--json").stdout)["tags"]
        assert tags["sidetrack.origin.agent"] == source


def test_second_import_changes_nothing(offline):
    c = offline
    train(c, "a1", "once")
    data = c.agents["a1"]["data"]
    bundle = os.path.join(c.root, "once.bundle")
    export(data, bundle)
    target = os.path.join(c.root, "target")
    first = applied(import_(target, bundle))
    before = snapshot(target)
    again = applied(import_(target, bundle))
    assert again == (0, first[0]), again
    assert snapshot(target) == before == snapshot(data)


def test_incremental_exports_hold_only_what_is_new(offline):
    c = offline
    data = c.agents["a1"]["data"]
    train(c, "a1", "first")
    b1, b2 = os.path.join(c.root, "b1"), os.path.join(c.root, "b2")
    export(data, b1)
    p = sidetrack("-d", data, "export", "--out", b2)
    assert p.returncode == 0 and p.stdout.startswith("nothing new to export"), p.stdout
    assert not os.path.exists(b2)
    p = sidetrack("-d", data, "export", "--out", b1)
    assert p.returncode == 1 and "exists" in p.stderr and "--force" in p.stderr
    train(c, "a1", "second")
    p = export(data, b2)
    assert p.stdout.startswith("exported 1 run,"), p.stdout
    target = os.path.join(c.root, "target")
    # The second bundle alone would leave a hole: refused, with what to import first.
    p = sidetrack("-d", target, "import", b2)
    assert p.returncode == 1 and "first" in p.stderr and "import the bundle" in p.stderr, \
        p.stderr
    import_(target, b1)
    import_(target, b2)
    assert snapshot(target) == snapshot(data)
    # --since-start: all of it again, harmless to import.
    b3 = os.path.join(c.root, "b3")
    export(data, b3, "--since-start")
    assert applied(import_(target, b3))[0] == 0
    assert snapshot(target) == snapshot(data)


def damaged(path, out, how):
    data = bytearray(open(path, "rb").read())
    if how == "truncated":
        data = data[:len(data) * 2 // 3]
    elif how == "cut-before-trailer":
        data = data[:len(data) - 40]
    elif how == "flipped":
        data[len(data) // 2] ^= 0x20
    elif how == "header":
        data[40] ^= 1
    elif how == "appended":
        data += b"\n"
    elif how == "newer":
        data[16] = 7
    elif how == "garbage":
        data = bytearray(os.urandom(5000))
    elif how == "empty":
        data = bytearray()
    open(out, "wb").write(data)


@pytest.mark.parametrize("how,words", [
    ("truncated", "truncated: the file ends at byte"),
    ("cut-before-trailer", "truncated"),
    ("flipped", "corrupted: frame"),
    ("header", "corrupted: the header"),
    ("appended", "corrupted: 1 byte(s) follow the end"),
    ("newer", "made by a newer version"),
    ("garbage", "not a sidetrack bundle"),
    ("empty", "not a sidetrack bundle (it is empty)"),
])
def test_damaged_bundle_is_refused_before_anything_is_applied(offline, how, words):
    c = offline
    train(c, "a1", "victim", steps=2000)
    data = c.agents["a1"]["data"]
    good = os.path.join(c.root, "good")
    export(data, good)
    bad = os.path.join(c.root, "bad")
    damaged(good, bad, how)
    target = os.path.join(c.root, "target")
    p = sidetrack("-d", target, "import", bad)
    assert p.returncode == 1, p.stdout
    assert words in p.stderr, p.stderr
    assert not os.path.exists(target)  # checked whole before the store is even opened
    # A store that exists is left as it was.
    import_(target, good)
    before = snapshot(target)
    assert sidetrack("-d", target, "import", bad).returncode == 1
    assert snapshot(target) == before


def test_runs_snapshot_export_and_import(offline):
    c = offline
    data = c.agents["a1"]["data"]
    keep = train(c, "a1", "keep")
    train(c, "a1", "leave-out")
    bundle = os.path.join(c.root, "runs.bundle")
    p = export(data, bundle, "--run", keep[:8])
    assert p.stdout.startswith("exported 1 run, 12,000 points"), p.stdout
    target = os.path.join(c.root, "target")
    import_(target, bundle)
    got = snapshot(target)
    assert list(got) == [keep] and got[keep] == snapshot(data)[keep]
    # Idempotent, and the journal's mark did not move: a journal bundle still holds all.
    assert applied(import_(target, bundle))[0] == 0
    assert snapshot(target)[keep] == got[keep]
    full = os.path.join(c.root, "full.bundle")
    assert export(data, full).stdout.startswith("exported 2 runs")
    # --experiment: every run of it; unknown names and runs are refused.
    p = export(data, os.path.join(c.root, "exp.bundle"), "--experiment", "sync-test")
    assert p.stdout.startswith("exported 2 runs"), p.stdout
    p = sidetrack("-d", data, "export", "--out", os.path.join(c.root, "x"), "--experiment", "nope")
    assert p.returncode == 1 and "no experiment 'nope'" in p.stderr
    p = sidetrack("-d", data, "export", "--out", os.path.join(c.root, "x"), "--run", "ffffffff")
    assert p.returncode == 1 and "no run ffffffff" in p.stderr


def test_runs_snapshot_adds_only_what_the_target_lacks(offline):
    """A run that grows: its snapshot taken early, then later; the later one, imported where
    the early one was, appends only the new points (and ends the run)."""
    c = offline
    data = c.agents["a1"]["data"]
    env = dict(os.environ, SIDETRACK_RING_DIR=c.agents["a1"]["ring"], SIDETRACK_LANE_MB="8",
               PYTHONPATH=built("python"))
    preload = os.environ.get("SIDETRACK_PY_PRELOAD")
    if preload:  # an ASan build's extension: the runtime first, and the interpreter leaks
        env.update(LD_PRELOAD=preload, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1")
    script = ("import sys, sidetrack\n"
              "sidetrack.set_experiment('grow')\n"
              "with sidetrack.start_run(run_name='grows', capture_context=False) as r:\n"
              "    sidetrack.log_param('lr', 0.1)\n"
              "    for i in range(500): sidetrack.log_metric('loss', 1.0 / (i + 1), step=i)\n"
              "    print(r.run_id, flush=True)\n"
              "    sys.stdin.readline()\n"
              "    for i in range(500, 1200): sidetrack.log_metric('loss', 1.0 / (i + 1), step=i)\n"
              "    sidetrack.set_tag('phase', 'done')\n")
    py = subprocess.Popen([os.environ.get("SIDETRACK_PYTHON", sys.executable), "-c", script],
                          env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        run_id = py.stdout.readline().strip()
        assert len(run_id) == 32, "the Python client did not start a run"

        def series(n):
            p = cli(data, "runs", "show", run_id, "--json", check=False)
            return p.returncode == 0 and [m["count"] for m in json.loads(p.stdout)["metrics"]
                                          if m["key"] == "loss"] == [n]
        wait_for(lambda: series(500), 60, "the first 500 points")
        early = os.path.join(c.root, "early")
        export(data, early, "--run", run_id)
        py.stdin.write("\n")
        py.stdin.flush()
        assert py.wait(60) == 0
    finally:
        if py.poll() is None:
            py.kill()
    wait_for(lambda: stored_simple(data, run_id, 1200), 60, "the whole run")
    late = os.path.join(c.root, "late")
    export(data, late, "--run", run_id)
    target = os.path.join(c.root, "target")
    import_(target, early)
    mid = snapshot(target)[run_id]
    assert mid["status"] == "RUNNING" and len(mid["metrics"]["loss"]) == 500
    p = import_(target, late)
    assert "700 points" in p.stdout, p.stdout
    assert snapshot(target)[run_id] == snapshot(data)[run_id]
    # The early snapshot again: the ended run stays ended, nothing is added.
    assert applied(import_(target, early))[0] == 0
    assert snapshot(target)[run_id] == snapshot(data)[run_id]


def stored_simple(data, run_id, n):
    p = cli(data, "runs", "show", run_id, "--json", check=False)
    if p.returncode != 0:
        return False
    s = json.loads(p.stdout)
    return s["info"]["status"] == "FINISHED" and [m["count"] for m in s["metrics"]] == [n]


def test_bundles_and_network_apply_each_change_once(cluster):
    """A server gets one agent's changes by bundle first and then over ZeroMQ, the other's
    over ZeroMQ first and then by bundle: every change lands once, whichever came first."""
    c = cluster
    for n in ("a1", "a2"):
        c.add_agent(n)
        c.start_agent(n)           # no server yet: they keep everything in their journals
    train(c, "a1", "a1-offline")
    train(c, "a2", "a2-offline")
    b1, b2 = os.path.join(c.root, "a1.bundle"), os.path.join(c.root, "a2.bundle")
    a1 = c.agents["a1"]["proc"]
    a1.send_signal(signal.SIGTERM)  # a1 stays away until its bundle is in
    assert a1.wait(60) == 0
    export(c.agents["a1"]["data"], b1)
    export(c.agents["a2"]["data"], b2)   # while a2 runs
    c.start_server()
    # Bundle first: imported next to the running server, into its store.
    ops, here = applied(import_(c.server_data, b1))
    assert ops > 0 and here == 0
    wait_for(lambda: c.caught_up("a2"), 60, lambda: "a2 to catch up\n" + c.logs())
    # Network first: a2's bundle holds nothing the server lacks.
    ops, here = applied(import_(c.server_data, b2))
    assert ops == 0 and here > 0
    c.start_agent("a1")            # resumes after the bundle's changes: sends none of them
    train(c, "a1", "a1-online")
    train(c, "a2", "a2-online")
    want = converge_and_compare(c, ["a1", "a2"])
    assert len(want) == 4
    before = snapshot(c.server_data)
    for b in (b1, b2):             # and again, after all that: nothing
        assert applied(import_(c.server_data, b))[0] == 0
    assert snapshot(c.server_data) == before
    # The acknowledged changes left the journal: the next bundle says so instead of
    # carrying them.
    p = sidetrack("-d", c.agents["a1"]["data"], "export", "--out", os.path.join(c.root, "b3"))
    assert p.returncode == 0, p.stderr
    assert "a server has acknowledged every change" in p.stdout, p.stdout + p.stderr


def test_export_usage_errors(offline):
    c = offline
    data = c.agents["a1"]["data"]
    p = sidetrack("-d", data, "export")
    assert p.returncode == 2 and "--out FILE is required" in p.stderr
    p = sidetrack("-d", os.path.join(c.root, "nowhere"), "export", "--out",
                os.path.join(c.root, "x"))
    assert p.returncode == 1 and "no store at" in p.stderr
    assert not os.path.exists(os.path.join(c.root, "nowhere"))
    p = sidetrack("import")
    assert p.returncode == 2
    p = sidetrack("import", os.path.join(c.root, "missing.bundle"))
    assert p.returncode == 1 and "No such file" in p.stderr
