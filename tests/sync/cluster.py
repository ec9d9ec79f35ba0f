"""What the process-level sync tests share (test_sync_e2e.py, test_https.py, test_bundle.py):
a server and named agents under one scratch folder, each process logging to a file there, and
the comparison of the server's store with the agents' (every point once, in order).
The test file puts tests/ on sys.path first (pyutil)."""
import contextlib
import hashlib
import json
import os
import shutil
import tempfile

from pyutil import (AGENT, SERVER, cli, free_port, kill, scratch, sidetrack, start,
                    stop_all, tail_logs, train, wait_for, wait_listening)


class Nodes:
    """A server (its store in root/server) and agents root/NAME, each with a ring and a
    store; the transport is the subclass's."""
    experiment = "sync-test"

    def __init__(self, root):
        self.root = root
        self.port = free_port()
        self.server_data = os.path.join(root, "server")
        self.server_log = os.path.join(root, "server.log")
        self.server = None
        self.agents = {}

    def _start_server(self, args):
        self.server = start(args, self.server_log)
        wait_listening(self.port, 10, lambda: "the server to listen\n" + self.logs())
        return self.server

    def kill_server(self):
        kill(self.server)

    def _new_agent(self, name):
        d = os.path.join(self.root, name)
        os.makedirs(os.path.join(d, "ring"))
        self.agents[name] = {"dir": d, "data": os.path.join(d, "data"),
                             "ring": os.path.join(d, "ring"), "proc": None}
        return self.agents[name]

    def _start_agent(self, name, args):
        a = self.agents[name]
        a["proc"] = start(args, os.path.join(a["dir"], "agent.log"))
        return a["proc"]

    def train(self, name, steps, run_name, artifact=None):
        return train(self.agents[name]["ring"], steps, self.experiment, run_name, artifact)

    def sync_status(self, name):
        p = cli(self.agents[name]["data"], "sync", "status", "--json", check=False)
        return json.loads(p.stdout) if p.stdout else {}

    def caught_up(self, name):
        st = self.sync_status(name)
        return st.get("connected") and st.get("backlog_ops") == 0

    def stop_all(self):
        """SIGTERM to everything still running: each must stop cleanly."""
        procs = [(n, a["proc"]) for n, a in self.agents.items()] + [("server", self.server)]
        stop_all(procs, self.logs)

    def logs(self):
        return tail_logs([self.server_log] + [os.path.join(a["dir"], "agent.log")
                                              for a in self.agents.values()])


class Cluster(Nodes):
    """Agents replicating to the server over ZeroMQ with CURVE keys."""

    def __init__(self, root):
        super().__init__(root)
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        os.makedirs(os.path.join(self.server_data, "agents.d"))
        # The server's key pair before anything starts: agents may start first.
        sidetrack("keys", "gen", "server", "--dir", self.server_data, check=True)

    def start_server(self):
        return self._start_server([SERVER, "-d", self.server_data, "-z", self.endpoint])

    def add_agent(self, name, allowed=True):
        a = self._new_agent(name)
        sidetrack("keys", "gen", name, "--dir", a["dir"], check=True)
        if allowed:
            shutil.copy(os.path.join(a["dir"], name + ".pub"),
                        os.path.join(self.server_data, "agents.d", name + ".pub"))
        return a

    def start_agent(self, name):
        a = self.agents[name]
        return self._start_agent(name, [
            AGENT, "-d", a["data"], "-r", a["ring"], "-s", self.endpoint,
            "--server-key", os.path.join(self.server_data, "server.pub"),
            "--key", os.path.join(a["dir"], name + ".key"), "--sync-interval", "100"])


@contextlib.contextmanager
def running(kind, prefix):
    """A `kind` (Cluster or another Nodes) in a scratch folder; everything it started must
    stop cleanly at the end."""
    with scratch(prefix) as root:
        c = kind(root)
        yield c
        c.stop_all()


def snapshot(data):
    """Everything a store holds that replication must carry, comparable across stores."""
    runs = json.loads(cli(data, "runs", "list", "--json").stdout)
    out = {}
    for r in runs:
        rid = r["run_id"]
        show = json.loads(cli(data, "runs", "show", rid, "--json").stdout)
        tags = {k: v for k, v in show["tags"].items() if not k.startswith("sidetrack.origin.")}
        metrics = {}
        for m in show["metrics"]:
            pts = json.loads(cli(data, "metrics", rid, m["key"], "--format", "json").stdout)
            metrics[m["key"]] = [(p["step"], p["timestamp"], p["value"]) for p in pts]
        for a in show["artifacts"]:  # the content itself, not only the reference
            out_file = os.path.join(tempfile.gettempdir(), f"st-sync-{os.getpid()}.blob")
            cli(data, "artifacts", rid, "--get", a["path"], "--out", out_file)
            digest = hashlib.sha256(open(out_file, "rb").read()).hexdigest()
            os.unlink(out_file)
            assert digest == a["sha256"], (data, rid, a["path"])
        info = show["info"]
        out[rid] = {"name": info["run_name"], "experiment": info["experiment"],
                    "status": info["status"], "start": info["start_time"],
                    "end": info["end_time"], "params": show["params"], "tags": tags,
                    "metrics": metrics,
                    "artifacts": sorted((a["path"], a["sha256"]) for a in show["artifacts"])}
    return out


def union(*snaps):
    u = {}
    for s in snaps:
        assert not (set(u) & set(s)), "two agents hold the same run id"
        u.update(s)
    return u


ALL_FIELDS = ("name", "experiment", "status", "start", "end", "params", "tags", "artifacts")


def converge_and_compare(c, names, timeout=120, fields=ALL_FIELDS):
    """Once each agent in `names` has caught up, the server's store holds the union of theirs:
    same runs, `fields` equal, every metric point once, in order. The union, by run id."""
    for n in names:
        wait_for(lambda n=n: c.caught_up(n), timeout,
                 lambda n=n: f"agent {n} to catch up\n" + c.logs())
    snaps = [snapshot(c.agents[n]["data"]) for n in names]
    server = snapshot(c.server_data)
    want = union(*snaps)
    assert set(server) == set(want), c.logs()
    for rid in want:
        for field in fields:
            assert server[rid][field] == want[rid][field], (rid, field)
        assert server[rid]["metrics"].keys() == want[rid]["metrics"].keys()
        for k, pts in want[rid]["metrics"].items():
            got = server[rid]["metrics"][k]
            assert len(got) == len(pts), (rid, k, len(got), len(pts))  # no gap, no duplicate
            assert got == pts, (rid, k)
    return want
