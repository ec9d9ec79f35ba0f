"""The mlflow sync target end to end, on loopback: runs logged by a real agent (the example
training program) pushed with `sidetrack push --mlflow` into sidetrack-server's own MLflow REST
API, and read back through that API point by point. A second push sends nothing, more points
only the new ones; a push killed -9 while a request is in flight, or a server killed -9 and
restarted mid-push, still leaves every point on the server exactly once. Also: sidetrackd
--mlflow pushing by itself. Run by meson (suite sync) with SIDETRACK_BUILD_DIR set."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyutil  # noqa: E402
from pyutil import AGENT, SERVER, built, free_port, wait_for  # noqa: E402

LOG_MORE = built("tests", "sync", "mlflow_log_more")
SOURCE_TAG = "sidetrack.source_run_id"


class Server:
    """sidetrack-server with its MLflow API on a loopback port; restartable on the same port
    and data."""

    def __init__(self, root):
        self.root = root
        self.data = os.path.join(root, "server")
        self.port = free_port()
        self.zport = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.proc = pyutil.start(
            [SERVER, "-d", self.data, "--http", f"127.0.0.1:{self.port}",
             "-z", f"tcp://127.0.0.1:{self.zport}"], os.path.join(self.root, "server.log"))

        def answers():
            try:
                self.get("experiments/get-by-name", experiment_name="Default")
                return True
            except (OSError, urllib.error.URLError):
                return False
        wait_for(answers, 20, "the server's MLflow API")

    def kill(self, sig=signal.SIGKILL):
        pyutil.kill(self.proc, sig)

    def stop(self):
        if pyutil.alive(self.proc):
            assert pyutil.stop(self.proc) == 0, "the server did not stop cleanly"

    def get(self, endpoint, **q):
        url = f"{self.url}/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(q)}"
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path, body):
        req = urllib.request.Request(f"{self.url}/api/2.0/mlflow/{path}",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def find_run(self, local_id):
        """The remote run pushed from local_id (by the tag the push sets), or None."""
        exps = self.post("experiments/search", {"max_results": 1000}).get("experiments", [])
        runs = self.post("runs/search", {
            "experiment_ids": [e["experiment_id"] for e in exps],
            "filter": f"tags.`{SOURCE_TAG}` = '{local_id}'", "run_view_type": "ALL"})
        runs = runs.get("runs", [])
        assert len(runs) <= 1, f"{len(runs)} remote runs for local run {local_id}"
        return runs[0] if runs else None

    def history(self, run_id, key):
        pts, token = [], None
        while True:
            q = {"run_id": run_id, "metric_key": key, "max_results": 10000}
            if token:
                q["page_token"] = token
            r = self.get("metrics/get-history", **q)
            pts += [(m["step"], int(m["timestamp"]), float(m["value"]))
                    for m in r.get("metrics", [])]
            token = r.get("next_page_token")
            if not token:
                return pts

    def count(self, local_id, key):
        run = self.find_run(local_id)
        return len(self.history(run["info"]["run_id"], key)) if run else 0

    def artifacts(self, run, path=""):
        """{path: sha256 of the content} of a remote run, read through the API."""
        out = {}
        listing = self.get("artifacts/list", run_id=run["info"]["run_id"], path=path)
        for f in listing.get("files", []):
            if f["is_dir"]:
                out.update(self.artifacts(run, f["path"]))
                continue
            rest = run["info"]["artifact_uri"][len("mlflow-artifacts:"):].lstrip("/")
            url = f"{self.url}/api/2.0/mlflow-artifacts/artifacts/{rest}/{f['path']}"
            with urllib.request.urlopen(url, timeout=30) as r:
                out[f["path"]] = hashlib.sha256(r.read()).hexdigest()
        return out


class Agent:
    def __init__(self, root, name="agent"):
        self.dir = os.path.join(root, name)
        self.data = os.path.join(self.dir, "data")
        self.ring = os.path.join(self.dir, "ring")
        os.makedirs(self.ring)
        self.proc = None

    def start(self, *extra):
        self.proc = pyutil.start([AGENT, "-d", self.data, "-r", self.ring, *extra],
                                 os.path.join(self.dir, "agent.log"))
        wait_for(lambda: os.path.exists(os.path.join(self.data, "agent.status")), 20,
                 "the agent to start")

    def stop(self):
        if pyutil.alive(self.proc):
            assert pyutil.stop(self.proc) == 0, "the agent did not stop cleanly"

    def env(self):
        return dict(os.environ, SIDETRACK_RING_DIR=self.ring, SIDETRACK_LANE_MB="64")

    def train(self, steps, experiment, run_name, artifact=None):
        rid = pyutil.train(self.ring, steps, experiment, run_name, artifact)
        wait_for(lambda: self.stored(rid, "train/loss") == steps and
                 self.show(rid)["info"]["status"] == "FINISHED", 60, "the run to be stored")
        return rid

    def log_more(self, rid, n):
        before = self.stored(rid, "train/loss")
        p = subprocess.run([LOG_MORE, rid, str(n)], env=self.env(), capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        wait_for(lambda: self.stored(rid, "train/loss") == before + n and
                 self.stored(rid, "extra/metric") == n, 60, "the new points to be stored")

    def cli(self, *args):
        return pyutil.cli(self.data, *args, timeout=120).stdout

    def show(self, rid):
        return json.loads(self.cli("runs", "show", rid, "--json"))

    def stored(self, rid, key):
        p = pyutil.cli(self.data, "runs", "show", rid, "--json", check=False, timeout=120)
        if p.returncode != 0:  # not drained yet
            return 0
        for m in json.loads(p.stdout)["metrics"]:
            if m["key"] == key:
                return m["count"]
        return 0

    def snapshot(self, rid):
        show = self.show(rid)
        metrics = {}
        for m in show["metrics"]:
            pts = json.loads(self.cli("metrics", rid, m["key"], "--format", "json"))
            metrics[m["key"]] = [(p["step"], p["timestamp"], float(p["value"])) for p in pts]
        arts = {}
        for a in show["artifacts"]:
            out = os.path.join(self.dir, "artifact.out")
            self.cli("artifacts", rid, "--get", a["path"], "--out", out)
            arts[a["path"]] = hashlib.sha256(open(out, "rb").read()).hexdigest()
        return show, metrics, arts

    def push(self, url, *args, check=True):
        p = pyutil.cli(self.data, "push", "--mlflow", url, "--json", *args, check=False,
                       timeout=240)
        if check:
            assert p.returncode == 0, f"push: {p.stderr}\n{p.stdout}"
        return json.loads(p.stdout) if p.stdout.strip() else None, p

    def push_background(self, url, *args):
        return subprocess.Popen(
            [pyutil.CLI, "-d", self.data, "push", "--mlflow", url, "--json", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_same(agent, server, rid, experiment=None):
    """The remote run holds what the local one does: params, tags, every metric point (in
    order, once), artifacts' content, status and times."""
    show, metrics, arts = agent.snapshot(rid)
    run = server.find_run(rid)
    assert run, f"run {rid} is not on the server"
    info, data = run["info"], run["data"]
    remote_id = info["run_id"]
    if experiment:
        exp = server.get("experiments/get", experiment_id=info["experiment_id"])["experiment"]
        assert exp["name"] == experiment
    assert info["run_name"] == show["info"]["run_name"]
    assert info["status"] == show["info"]["status"]
    assert int(info["start_time"]) == show["info"]["start_time"]
    if show["info"]["end_time"]:
        assert int(info["end_time"]) == show["info"]["end_time"]
    params = {p["key"]: p["value"] for p in data.get("params", [])}
    assert params == show["params"]
    tags = {t["key"]: t["value"] for t in data.get("tags", [])}
    for k, v in show["tags"].items():
        assert tags.get(k) == v, f"tag {k}: remote {tags.get(k)!r}, local {v!r}"
    assert tags[SOURCE_TAG] == rid
    remote_keys = {m["key"] for m in data.get("metrics", [])}
    assert remote_keys == set(metrics)
    for key, pts in metrics.items():
        got = server.history(remote_id, key)
        assert len(got) == len(pts), f"{key}: {len(got)} points on the server, {len(pts)} here"
        assert got == pts, f"{key}: the points differ"
    assert server.artifacts(run) == arts


@pytest.fixture
def env(tmp_path):
    root = str(tmp_path)
    server = Server(root)
    server.start()
    agent = Agent(root)
    agent.start()
    yield server, agent
    agent.stop()
    server.stop()


def test_push_then_nothing_then_only_the_new_points(env, tmp_path):
    server, agent = env
    art = os.path.join(str(tmp_path), "weights.bin")
    with open(art, "wb") as f:
        f.write(os.urandom(300000))
    r1 = agent.train(2000, "mlflow-exp", "first", artifact=art)
    r2 = agent.train(500, "mlflow-other", "second")

    dry, _ = agent.push("http://127.0.0.1:1", "--dry-run", "--experiment-prefix", "pushed/")
    assert (dry["runs"], dry["runs_created"], dry["points"], dry["requests"]) == (2, 2, 10000, 0)

    st, _ = agent.push(server.url, "--experiment-prefix", "pushed/")
    assert (st["runs"], st["runs_created"], st["runs_updated"]) == (2, 2, 0)
    assert (st["points"], st["params"], st["artifacts"], st["skipped"]) == (10000, 6, 3, 0)
    assert_same(agent, server, r1, "pushed/mlflow-exp")
    assert_same(agent, server, r2, "pushed/mlflow-other")

    # a second push has nothing to send: not one request
    st, _ = agent.push(server.url, "--experiment-prefix", "pushed/")
    assert (st["runs_created"], st["runs_updated"], st["points"], st["requests"]) == (0, 0, 0, 0)

    # more points, a new param, a changed tag: only those go
    agent.log_more(r1, 3000)
    st, _ = agent.push(server.url, "--experiment-prefix", "pushed/")
    assert (st["runs_created"], st["runs_updated"]) == (0, 1)
    assert (st["points"], st["params"], st["tags"], st["artifacts"]) == (6000, 1, 1, 0)
    assert_same(agent, server, r1, "pushed/mlflow-exp")
    assert agent.show(r1)["tags"]["model"] == "toy-linear-v2"


def test_an_item_the_server_refuses_is_skipped_once(env):
    """The server refuses a param (another value is there already): the batch that carries it
    is answered 400; its items are then sent one by one, the param recorded as refused, the
    rest (points included, exactly once) goes, and the next push does not try it again."""
    server, agent = env
    rid = agent.train(300, "mlflow-refused", "refused")
    agent.push(server.url, "--run", rid)
    remote = server.find_run(rid)["info"]["run_id"]
    server.post("runs/log-parameter", {"run_id": remote, "key": "added_later", "value": "no"})
    agent.log_more(rid, 1500)
    st, p = agent.push(server.url, "--run", rid, check=False)
    assert p.returncode == 0, p.stderr
    assert (st["skipped"], st["params"], st["tags"], st["points"]) == (1, 0, 1, 3000)
    assert "param 'added_later' refused by the server" in p.stderr
    run = server.find_run(rid)
    for key in ("train/loss", "extra/metric"):
        local = json.loads(agent.cli("metrics", rid, key, "--format", "json"))
        assert server.history(run["info"]["run_id"], key) == [
            (q["step"], q["timestamp"], float(q["value"])) for q in local]
    st, p = agent.push(server.url, "--run", rid)
    assert (st["requests"], st["skipped"]) == (0, 0)


def test_push_killed_while_a_request_is_in_flight(env):
    """The server is paused so that the push waits on a log-batch; the push is killed -9, then
    the server goes on and applies that request. The next push must find out (the pending
    marker, metrics/get-history) and send none of those points again."""
    server, agent = env
    rid = agent.train(50000, "mlflow-big", "killed-push")
    push = agent.push_background(server.url, "--run", rid)
    wait_for(lambda: push.poll() is not None or server.count(rid, "grad_norm") >= 1000, 60,
             "the push to be under way", interval=0.01)
    server.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(0.5)
        # meanwhile a second push to the same server from the same store stands aside
        _, second = agent.push(server.url, "--run", rid, check=False)
        assert second.returncode == 1 and "another push" in second.stderr, second.stderr
        push.kill()
        push.communicate(timeout=30)
    finally:
        server.proc.send_signal(signal.SIGCONT)
    assert push.returncode == -signal.SIGKILL, "the push ended before it could be killed"
    partial = server.count(rid, "grad_norm")
    assert 1000 <= partial < 50000 or server.count(rid, "train/loss") < 50000

    st, _ = agent.push(server.url, "--run", rid)
    assert st["runs_failed"] == 0 and st["runs_created"] == 0
    assert st["points"] < 200000
    assert_same(agent, server, rid)
    # and once more: nothing
    st, _ = agent.push(server.url, "--run", rid)
    assert (st["points"], st["requests"]) == (0, 0)


def test_server_killed_and_restarted_mid_push(env):
    server, agent = env
    rid = agent.train(50000, "mlflow-big", "server-restarted")
    push = agent.push_background(server.url, "--run", rid, "--retry-max", "120")
    wait_for(lambda: push.poll() is not None or server.count(rid, "grad_norm") >= 1000, 60,
             "the push to be under way", interval=0.01)
    server.kill(signal.SIGKILL)
    assert push.poll() is None, "the push ended before the server was killed"
    time.sleep(1.0)  # the push meets a closed port and retries
    server.start()
    out, err = push.communicate(timeout=180)
    assert push.returncode == 0, err
    st = json.loads(out)
    assert st["retries"] >= 1 and st["runs_failed"] == 0
    assert "retrying" in err
    assert_same(agent, server, rid)


def test_agent_pushes_by_itself(tmp_path):
    root = str(tmp_path)
    server = Server(root)
    server.start()
    agent = Agent(root, "pushing-agent")
    try:
        agent.start("--mlflow", server.url, "--mlflow-interval", "1")
        rid = agent.train(1000, "agent-pushed", "by-the-agent")

        def up_to_date():
            run = server.find_run(rid)
            return (run and run["info"]["status"] == "FINISHED" and
                    len(server.history(run["info"]["run_id"], "train/loss")) == 1000)
        wait_for(up_to_date, 60, "the agent to push the run")
        assert_same(agent, server, rid, "agent-pushed")
        status = json.load(open(os.path.join(agent.data, "agent.status")))
        assert status["mlflow_url"] == server.url
        assert status["mlflow_last_ok_ms"] > 0 and status["mlflow_last_error"] == ""
    finally:
        agent.stop()
        server.stop()
