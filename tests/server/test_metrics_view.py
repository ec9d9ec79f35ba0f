"""sidetrack's chart endpoint, /api/sidetrack/v1/metrics/view, over real HTTP on loopback:
several runs x keys in one request, downsampled series that keep spikes and NaN gaps (as
null), step ranges, GET and POST alike, limits and MLflow-style errors; and the CLI's
`metrics --view/--steps` on the same store. Run by meson (suite server) with
SIDETRACK_BUILD_DIR set."""
import json
import math
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyutil  # noqa: E402
from pyutil import SERVER, free_port, scratch, wait_for  # noqa: E402

VIEW = "/api/sidetrack/v1/metrics/view"
API = "/api/2.0/mlflow/"
LONG = 5000       # points of run A's "loss"
SPIKE = 3210      # its step with a spike
NAN_STEP = 4321   # its step with a NaN


class Server:
    def __init__(self, root):
        self.data = os.path.join(root, "data")
        self.port = free_port()
        self.log = os.path.join(root, "server.log")
        self.proc = pyutil.start([SERVER, "--data", self.data, "--zmq", "off",
                                  "--http", f"127.0.0.1:{self.port}"], self.log)

        def ready():
            assert self.proc.poll() is None, open(self.log).read()
            return pyutil.listening(self.port) and \
                self.call("GET", API + "experiments/get", query={"experiment_id": "0"})[0] == 200
        wait_for(ready, 20, "the server to serve HTTP")

    def call(self, method, path, body=None, query=None):
        url = f"http://127.0.0.1:{self.port}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def ok(self, path, body):
        s, j = self.call("POST", API + path, body)
        assert s == 200, (path, s, j)
        return j

    def view(self, **query):
        return self.call("GET", VIEW, query=query)

    def stop(self):
        assert pyutil.stop(self.proc) == 0, open(self.log).read()[-4000:]


def loss(step):
    if step == SPIKE:
        return 1000.0
    if step == NAN_STEP:
        return "NaN"
    return 1.0 / (1 + step) + (step % 7) * 0.001


@pytest.fixture(scope="module")
def srv():
    with scratch("st-mview-") as root:
        s = Server(root)
        try:
            a = s.ok("runs/create", {"experiment_id": "0", "start_time": 1})["run"]["info"]
            b = s.ok("runs/create", {"experiment_id": "0", "start_time": 2})["run"]["info"]
            s.a, s.b = a["run_id"], b["run_id"]
            for first in range(0, LONG, 1000):
                ms = [{"key": "loss", "value": loss(i), "timestamp": 10_000 + i, "step": i}
                      for i in range(first, first + 1000)]
                s.ok("runs/log-batch", {"run_id": s.a, "metrics": ms})
            s.ok("runs/log-batch", {"run_id": s.a, "metrics": [
                {"key": "acc", "value": i / 20, "timestamp": 50 + i, "step": i}
                for i in range(20)]})
            s.ok("runs/log-batch", {"run_id": s.b, "metrics": [
                {"key": "loss", "value": v, "timestamp": 7 + i, "step": i}
                for i, v in enumerate([0.5, "Infinity", 0.25, "-Infinity", 0.125])]})
            yield s
        finally:
            s.stop()


def check_shape(ser):
    assert set(ser) == {"run_id", "key", "count", "downsampled", "steps", "timestamps",
                        "values"}
    assert len(ser["steps"]) == len(ser["timestamps"]) == len(ser["values"])


def test_several_runs_and_keys_in_one_request(srv):
    s, j = srv.view(run_id=[srv.a, srv.b], key=["loss", "acc"], points=100)
    assert s == 200, j
    got = [(x["run_id"], x["key"]) for x in j["series"]]
    assert got == [(srv.a, "loss"), (srv.a, "acc"), (srv.b, "loss"), (srv.b, "acc")]
    for x in j["series"]:
        check_shape(x)
    long_, acc, small, missing = j["series"]

    # the long series: downsampled in step order, spike and NaN gap kept, the ends kept
    assert long_["count"] == LONG and long_["downsampled"] is True
    assert 50 <= len(long_["steps"]) <= 100
    assert long_["steps"] == sorted(long_["steps"])
    assert long_["steps"][0] == 0 and long_["steps"][-1] == LONG - 1
    pts = dict(zip(long_["steps"], long_["values"]))
    assert pts[SPIKE] == 1000.0
    assert NAN_STEP in pts and pts[NAN_STEP] is None
    for st, ts, v in zip(long_["steps"], long_["timestamps"], long_["values"]):
        assert ts == 10_000 + st
        if st != NAN_STEP:
            assert v == loss(st)

    # a series of fewer points than asked for comes whole
    assert acc["count"] == 20 and acc["downsampled"] is False
    assert acc["steps"] == list(range(20))
    assert acc["timestamps"] == [50 + i for i in range(20)]
    assert acc["values"] == [i / 20 for i in range(20)]

    # infinities are gaps too (null), exact values elsewhere
    assert small["values"] == [0.5, None, 0.25, None, 0.125]
    assert small["count"] == 5

    # a run without the metric: an empty series, not an error
    assert missing == {"run_id": srv.b, "key": "acc", "count": 0, "downsampled": False,
                       "steps": [], "timestamps": [], "values": []}


def test_post_takes_the_same_fields_as_json(srv):
    q = {"run_id": [srv.a], "key": ["loss"], "points": 300, "start_step": 100,
         "end_step": 2099}
    s, post = srv.call("POST", VIEW, q)
    assert s == 200, post
    s, get = srv.view(**q)
    assert s == 200, get
    assert post == get
    ser = post["series"][0]
    assert ser["count"] == 2000 and ser["downsampled"] is True
    assert len(ser["steps"]) <= 300
    assert min(ser["steps"]) == 100 and max(ser["steps"]) == 2099
    # single strings are accepted for the repeated fields too
    s, one = srv.call("POST", VIEW, dict(q, run_id=srv.a, key="loss"))
    assert s == 200 and one == post


def test_step_range_and_default_points(srv):
    s, j = srv.view(run_id=srv.a, key="loss", start_step=SPIKE - 5, end_step=SPIKE + 5)
    assert s == 200, j
    ser = j["series"][0]
    assert ser["count"] == 11 and ser["downsampled"] is False
    assert ser["steps"] == list(range(SPIKE - 5, SPIKE + 6))
    assert 1000.0 in ser["values"]
    # no points: 2000 by default, so the whole 5000-point series is downsampled to <= 2000
    s, j = srv.view(run_id=srv.a, key="loss")
    ser = j["series"][0]
    assert ser["downsampled"] and 1000 <= len(ser["values"]) <= 2000
    assert sum(1 for v in ser["values"] if v is None) == 1
    assert all(v is None or math.isfinite(v) for v in ser["values"])
    # a range past the end: nothing, but the series is there
    s, j = srv.view(run_id=srv.a, key="loss", start_step=LONG, end_step=LONG + 10)
    assert s == 200 and j["series"][0]["count"] == 0 and j["series"][0]["steps"] == []


@pytest.mark.parametrize("query, what", [
    ({"points": "0"}, "points"),
    ({"points": "100001"}, "points"),
    ({"points": "many"}, "points"),
    ({"start_step": "10", "end_step": "5"}, "start_step"),
    ({"key": []}, "key"),
    ({"run_id": []}, "run_id"),
    ({"key": ["k%d" % i for i in range(101)]}, "key"),
    ({"run_id": ["%032x" % i for i in range(101)]}, "run_id"),
    ({"key": ["x" * 300]}, "x"),
])
def test_bad_fields_are_invalid_parameter_value(srv, query, what):
    q = {"run_id": srv.a, "key": "loss"}
    q.update(query)
    q = {k: v for k, v in q.items() if v != []}
    s, j = srv.view(**q)
    assert s == 400, j
    assert j["error_code"] == "INVALID_PARAMETER_VALUE"
    assert what in j["message"]


def test_bad_json_types_are_invalid_parameter_value(srv):
    for body in ({"run_id": [7], "key": ["loss"]}, {"run_id": [srv.a], "key": "loss",
                                                    "points": "x"},
                 {"run_id": srv.a, "key": [""]}):
        s, j = srv.call("POST", VIEW, body)
        assert s == 400 and j["error_code"] == "INVALID_PARAMETER_VALUE", (body, j)


def test_unknown_run_is_resource_does_not_exist(srv):
    s, j = srv.view(run_id=[srv.a, "0" * 32], key="loss")
    assert s == 404, j
    assert j["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "0" * 32 in j["message"]
    s, j = srv.view(run_id="not-a-run", key="loss")
    assert s == 404 and j["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_cli_view_and_steps(srv):
    p = pyutil.cli(srv.data, "metrics", srv.a, "loss", "--view", "40", "--format", "json")
    pts = json.loads(p.stdout)
    assert 20 <= len(pts) <= 40
    assert [q["step"] for q in pts] == sorted(q["step"] for q in pts)
    assert any(q["step"] == SPIKE and q["value"] == 1000.0 for q in pts)
    p = pyutil.cli(srv.data, "metrics", srv.a, "loss", "--steps", "10:14")
    assert p.stdout.splitlines()[0] == "step,timestamp,value"
    assert [ln.split(",")[0] for ln in p.stdout.splitlines()[1:]] == ["10", "11", "12", "13",
                                                                     "14"]
    p = pyutil.cli(srv.data, "metrics", srv.a, "loss", "--steps", "4990:", "--view", "3")
    assert len(p.stdout.splitlines()) == 1 + 3
    p = pyutil.cli(srv.data, "metrics", srv.a, "loss", "--view", "0", check=False)
    assert p.returncode != 0 and "--view" in p.stderr
    p = pyutil.cli(srv.data, "metrics", srv.a, "loss", "--steps", "9:1", check=False)
    assert p.returncode != 0 and "--steps" in p.stderr
