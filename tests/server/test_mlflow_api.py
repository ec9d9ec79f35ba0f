"""MLflow's REST API on sidetrack-server, over real HTTP on loopback: every tracking endpoint
(and its /ajax-api twin), MLflow's limits and error codes, the artifacts proxy with binary
content, and a run that arrived from an agent over ZeroMQ found through the API. Run by meson
(suite server) with SIDETRACK_BUILD_DIR set."""
import os
import re
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyutil  # noqa: E402
from pyutil import AGENT, SERVER, free_port, sidetrack, train, wait_for  # noqa: E402
from pyutil import api_error as err  # noqa: E402

API = "/api/2.0/mlflow/"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


class Server(pyutil.ServerProcess):
    def __init__(self, root):
        self.root = root
        self.data = os.path.join(root, "server")
        os.makedirs(os.path.join(self.data, "agents.d"))
        sidetrack("keys", "gen", "server", "--dir", self.data, check=True)
        self.port, self.zport = free_port(), free_port()
        self.log = os.path.join(root, "server.log")
        self.proc = pyutil.start(
            [SERVER, "--data", self.data, "--http", f"127.0.0.1:{self.port}",
             "--zmq", f"tcp://127.0.0.1:{self.zport}"], self.log)

        def ready():  # the port opens a moment before the routes are in
            assert self.proc.poll() is None, self.logs()
            if not pyutil.listening(self.port):
                return False
            return self.get("experiments/get", experiment_id="0")[0] == 200
        wait_for(ready, 20, "the server to serve the MLflow API")

    def request(self, method, path, body=None, query=None, raw=None, headers=None):
        """(status, parsed JSON or raw bytes, headers)."""
        return pyutil.http_request(self.port, method, path, body, query, raw, headers)

    def post(self, endpoint, body, prefix=API):
        s, j, _ = self.request("POST", prefix + endpoint, body=body)
        return s, j

    def get(self, endpoint, prefix=API, **query):
        s, j, _ = self.request("GET", prefix + endpoint, query=query)
        return s, j

    def ok(self, method, endpoint, body=None, **query):
        s, j = self.post(endpoint, body) if method == "POST" else self.get(endpoint, **query)
        assert s == 200, (endpoint, s, j)
        return j


@pytest.fixture(scope="module")
def srv():
    with pyutil.serving(Server, "sidetrack-mlflow-") as s:
        yield s


def new_experiment(srv, prefix="exp"):
    name = pyutil.unique_name(prefix)
    return srv.ok("POST", "experiments/create", {"name": name})["experiment_id"], name


def new_run(srv, exp_id="0", **extra):
    return srv.ok("POST", "runs/create", {"experiment_id": exp_id, "start_time": 1000,
                                           **extra})["run"]


# ---- experiments -------------------------------------------------------------------------

def test_experiment_create_get_and_by_name(srv):
    eid = srv.ok("POST", "experiments/create",
                 {"name": "vision", "tags": [{"key": "team", "value": "cv"}]})["experiment_id"]
    assert re.fullmatch(r"\d+", eid) and eid != "0"
    e = srv.ok("GET", "experiments/get", experiment_id=eid)["experiment"]
    assert e["name"] == "vision" and e["lifecycle_stage"] == "active"
    assert e["artifact_location"] == f"mlflow-artifacts:/{eid}"
    assert e["tags"] == [{"key": "team", "value": "cv"}]
    assert isinstance(e["creation_time"], int) and isinstance(e["last_update_time"], int)
    assert srv.ok("GET", "experiments/get-by-name", experiment_name="vision")["experiment"] == e
    err(srv.post("experiments/create", {"name": "vision"}), 400, "RESOURCE_ALREADY_EXISTS")
    err(srv.get("experiments/get", experiment_id="987654"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(srv.get("experiments/get", experiment_id="x y"), 400, "INVALID_PARAMETER_VALUE")
    err(srv.get("experiments/get-by-name", experiment_name="nope"), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(srv.get("experiments/get"), 400, "INVALID_PARAMETER_VALUE")  # missing field


def test_experiment_name_rules(srv):
    err(srv.post("experiments/create", {"name": ""}), 400, "INVALID_PARAMETER_VALUE")
    err(srv.post("experiments/create", {"name": "n" * 501}), 400, "INVALID_PARAMETER_VALUE")
    srv.ok("POST", "experiments/create", {"name": "n" * 500})
    err(srv.post("experiments/create", {"name": ["a"]}), 400, "INVALID_PARAMETER_VALUE")


def test_experiment_delete_restore_and_name_reuse(srv):
    eid, name = new_experiment(srv)
    srv.ok("POST", "experiments/delete", {"experiment_id": eid})
    e = srv.ok("GET", "experiments/get", experiment_id=eid)["experiment"]
    assert e["lifecycle_stage"] == "deleted"
    # a deleted experiment keeps its name, as in MLflow
    err(srv.post("experiments/create", {"name": name}), 400, "RESOURCE_ALREADY_EXISTS")
    err(srv.post("runs/create", {"experiment_id": eid}), 400, "INVALID_PARAMETER_VALUE")
    err(srv.post("experiments/update", {"experiment_id": eid, "new_name": "x"}), 400,
        "INVALID_STATE")
    srv.ok("POST", "experiments/restore", {"experiment_id": eid})
    assert srv.ok("GET", "experiments/get", experiment_id=eid)["experiment"][
        "lifecycle_stage"] == "active"
    err(srv.post("experiments/delete", {"experiment_id": "0"}), 400, "INVALID_PARAMETER_VALUE")
    err(srv.post("experiments/delete", {"experiment_id": "424242"}), 404,
        "RESOURCE_DOES_NOT_EXIST")


def test_experiment_update_and_tag(srv):
    eid, name = new_experiment(srv)
    other, other_name = new_experiment(srv)
    srv.ok("POST", "experiments/update", {"experiment_id": eid, "new_name": name + "-renamed"})
    assert srv.ok("GET", "experiments/get", experiment_id=eid)["experiment"]["name"] == \
        name + "-renamed"
    err(srv.post("experiments/update", {"experiment_id": eid, "new_name": other_name}), 400,
        "RESOURCE_ALREADY_EXISTS")
    srv.ok("POST", "experiments/set-experiment-tag", {"experiment_id": eid, "key": "k",
                                                       "value": "v1"})
    srv.ok("POST", "experiments/set-experiment-tag", {"experiment_id": eid, "key": "k",
                                                       "value": "v2"})
    assert srv.ok("GET", "experiments/get", experiment_id=eid)["experiment"]["tags"] == \
        [{"key": "k", "value": "v2"}]
    err(srv.post("experiments/set-experiment-tag", {"experiment_id": eid, "key": "bad*key",
                                                     "value": "v"}), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.post("experiments/set-experiment-tag", {"experiment_id": eid, "key": "k",
                                                     "value": "v" * 5001}), 400,
        "INVALID_PARAMETER_VALUE")


def test_experiment_search_get_and_post(srv):
    _, name = new_experiment(srv, "searchme")
    found = srv.ok("POST", "experiments/search",
                   {"filter": f"name = '{name}'", "max_results": 10})["experiments"]
    assert [e["name"] for e in found] == [name]
    found = srv.ok("GET", "experiments/search", filter=f"name LIKE '{name}%'")["experiments"]
    assert [e["name"] for e in found] == [name]
    page = srv.ok("GET", "experiments/search", max_results="1")
    assert len(page["experiments"]) == 1 and page["next_page_token"]
    nxt = srv.ok("GET", "experiments/search", max_results="1",
                 page_token=page["next_page_token"])
    assert nxt["experiments"][0]["experiment_id"] != page["experiments"][0]["experiment_id"]
    err(srv.post("experiments/search", {"filter": "name ~ 'x'"}), 400, "INVALID_PARAMETER_VALUE")
    err(srv.post("experiments/search", {"max_results": 50001}), 400, "INVALID_PARAMETER_VALUE")


# ---- runs ----------------------------------------------------------------------------------

def test_run_create_shape(srv):
    eid, _ = new_experiment(srv)
    run = srv.ok("POST", "runs/create", {"experiment_id": eid, "start_time": 1234,
                                          "tags": [{"key": "mlflow.user", "value": "ada"},
                                                   {"key": "team", "value": "nlp"}]})["run"]
    info = run["info"]
    assert re.fullmatch(r"[0-9a-f]{32}", info["run_id"]) and info["run_uuid"] == info["run_id"]
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,3}", info["run_name"])
    assert info["experiment_id"] == eid and info["user_id"] == "ada"
    assert info["status"] == "RUNNING" and info["start_time"] == 1234
    assert info["lifecycle_stage"] == "active" and "end_time" not in info
    assert info["artifact_uri"] == f"mlflow-artifacts:/{eid}/{info['run_id']}/artifacts"
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags == {"mlflow.runName": info["run_name"], "mlflow.user": "ada", "team": "nlp"}
    named = new_run(srv, eid, run_name="my-run")
    assert named["info"]["run_name"] == "my-run"
    assert {"key": "mlflow.runName", "value": "my-run"} in named["data"]["tags"]
    err(srv.post("runs/create", {"start_time": 1}), 400, "INVALID_PARAMETER_VALUE")
    err(srv.post("runs/create", {"experiment_id": "5555"}), 404, "RESOURCE_DOES_NOT_EXIST")


def test_run_get_update_delete_restore(srv):
    run = new_run(srv)
    rid = run["info"]["run_id"]
    assert srv.ok("GET", "runs/get", run_id=rid)["run"] == run
    info = srv.ok("POST", "runs/update", {"run_id": rid, "status": "FINISHED",
                                           "end_time": 5000, "run_name": "renamed"})["run_info"]
    assert (info["status"], info["end_time"], info["run_name"]) == ("FINISHED", 5000, "renamed")
    got = srv.ok("GET", "runs/get", run_id=rid)["run"]
    assert {"key": "mlflow.runName", "value": "renamed"} in got["data"]["tags"]
    err(srv.post("runs/update", {"run_id": rid, "status": "DONE"}), 400,
        "INVALID_PARAMETER_VALUE")
    srv.ok("POST", "runs/delete", {"run_id": rid})
    assert srv.ok("GET", "runs/get", run_id=rid)["run"]["info"]["lifecycle_stage"] == "deleted"
    err(srv.post("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": 1}),
        400, "INVALID_PARAMETER_VALUE")
    srv.ok("POST", "runs/restore", {"run_id": rid})
    assert srv.ok("GET", "runs/get", run_id=rid)["run"]["info"]["lifecycle_stage"] == "active"
    missing = "0" * 32
    for resp in (srv.get("runs/get", run_id=missing), srv.get("runs/get", run_id="zz"),
                 srv.post("runs/delete", {"run_id": missing}),
                 srv.post("runs/update", {"run_id": missing, "status": "FAILED"}),
                 srv.post("runs/log-batch", {"run_id": missing, "metrics": []})):
        assert "not found" in err(resp, 404, "RESOURCE_DOES_NOT_EXIST")


def test_log_metric_param_tag(srv):
    rid = new_run(srv)["info"]["run_id"]
    srv.ok("POST", "runs/log-metric", {"run_id": rid, "key": "acc", "value": 0.5,
                                        "timestamp": 10, "step": 1})
    srv.ok("POST", "runs/log-metric", {"run_id": rid, "key": "acc", "value": 0.7,
                                        "timestamp": 5, "step": 2})
    srv.ok("POST", "runs/log-metric", {"run_id": rid, "key": "acc", "value": 0.1,
                                        "timestamp": 99, "step": 0})
    err(srv.post("runs/log-metric", {"run_id": rid, "key": "acc", "value": 1}), 400,
        "INVALID_PARAMETER_VALUE")  # timestamp is required
    err(srv.post("runs/log-metric", {"run_id": rid, "key": "acc", "value": "high",
                                     "timestamp": 1}), 400, "INVALID_PARAMETER_VALUE")
    srv.ok("POST", "runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.1"})
    srv.ok("POST", "runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.1"})
    msg = err(srv.post("runs/log-parameter", {"run_id": rid, "key": "lr", "value": "0.2"}),
              400, "INVALID_PARAMETER_VALUE")
    assert "Changing param values is not allowed" in msg and "0.1" in msg and "0.2" in msg
    srv.ok("POST", "runs/set-tag", {"run_id": rid, "key": "stage", "value": "a"})
    srv.ok("POST", "runs/set-tag", {"run_id": rid, "key": "stage", "value": "b"})
    srv.ok("POST", "runs/set-tag", {"run_id": rid, "key": "gone", "value": "x"})
    srv.ok("POST", "runs/delete-tag", {"run_id": rid, "key": "gone"})
    err(srv.post("runs/delete-tag", {"run_id": rid, "key": "gone"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    data = srv.ok("GET", "runs/get", run_id=rid)["run"]["data"]
    # MLflow's latest: the greatest step, then timestamp
    assert data["metrics"] == [{"key": "acc", "value": 0.7, "timestamp": 5, "step": 2}]
    assert data["params"] == [{"key": "lr", "value": "0.1"}]
    tags = {t["key"]: t["value"] for t in data["tags"]}
    assert tags["stage"] == "b" and "gone" not in tags


@pytest.mark.parametrize("key,why", [
    ("bad*char", "Names may only contain"), ("a/../b", "resolve to"), ("/lead", "resolve to"),
    ("a//b", "resolve to"), ("trail/", "resolve to"), ("..", "resolve to"),
    ("k" * 251, "exceeded length limit of 250"),
])
def test_bad_keys_are_refused(srv, key, why):
    rid = new_run(srv)["info"]["run_id"]
    for endpoint, body in (("runs/log-metric", {"value": 1, "timestamp": 1}),
                           ("runs/log-parameter", {"value": "v"}),
                           ("runs/set-tag", {"value": "v"}),
                           ("runs/log-batch", None)):
        if body is None:
            body = {"metrics": [{"key": key, "value": 1, "timestamp": 1, "step": 0}]}
        else:
            body = dict(body, key=key)
        msg = err(srv.post(endpoint, dict(body, run_id=rid)), 400, "INVALID_PARAMETER_VALUE")
        assert why in msg, (endpoint, msg)
    srv.ok("POST", "runs/log-parameter", {"run_id": rid, "key": "k" * 250, "value": "v"})
    srv.ok("POST", "runs/set-tag", {"run_id": rid, "key": "a.b-c/d e_f", "value": "v"})


def test_value_length_limits(srv):
    rid = new_run(srv)["info"]["run_id"]
    srv.ok("POST", "runs/log-parameter", {"run_id": rid, "key": "p", "value": "v" * 6000})
    err(srv.post("runs/log-parameter", {"run_id": rid, "key": "q", "value": "v" * 6001}), 400,
        "INVALID_PARAMETER_VALUE")
    srv.ok("POST", "runs/set-tag", {"run_id": rid, "key": "t", "value": "é" * 5000})
    err(srv.post("runs/set-tag", {"run_id": rid, "key": "t", "value": "v" * 5001}), 400,
        "INVALID_PARAMETER_VALUE")


def test_log_batch_writes_everything_once(srv):
    rid = new_run(srv)["info"]["run_id"]
    metrics = [{"key": f"m{i % 3}", "value": float(i), "timestamp": 1000 + i, "step": i}
               for i in range(30)]
    srv.ok("POST", "runs/log-batch", {
        "run_id": rid, "metrics": metrics,
        "params": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}],
        "tags": [{"key": "t", "value": "x"}]})
    data = srv.ok("GET", "runs/get", run_id=rid)["run"]["data"]
    assert {m["key"]: m["value"] for m in data["metrics"]} == {"m0": 27.0, "m1": 28.0,
                                                               "m2": 29.0}
    hist = srv.ok("GET", "metrics/get-history", run_id=rid, metric_key="m1")["metrics"]
    assert [(p["step"], p["value"]) for p in hist] == [(i, float(i)) for i in range(1, 30, 3)]
    # the same params again: fine
    srv.ok("POST", "runs/log-batch", {"run_id": rid, "params": [{"key": "a", "value": "1"}]})


def test_log_batch_is_all_or_nothing(srv):
    rid = new_run(srv)["info"]["run_id"]
    srv.ok("POST", "runs/log-parameter", {"run_id": rid, "key": "fixed", "value": "1"})
    bad = {"run_id": rid, "metrics": [{"key": "x", "value": 1, "timestamp": 1, "step": 0}],
           "params": [{"key": "fresh", "value": "y"}, {"key": "fixed", "value": "2"}],
           "tags": [{"key": "t", "value": "v"}]}
    err(srv.post("runs/log-batch", bad), 400, "INVALID_PARAMETER_VALUE")
    # an invalid entry late in the batch: nothing of it either
    bad2 = {"run_id": rid, "metrics": [{"key": "x", "value": 1, "timestamp": 1, "step": 0}],
            "tags": [{"key": "t", "value": "v"}, {"key": "no*pe", "value": "v"}]}
    err(srv.post("runs/log-batch", bad2), 400, "INVALID_PARAMETER_VALUE")
    data = srv.ok("GET", "runs/get", run_id=rid)["run"]["data"]
    assert "metrics" not in data
    assert data["params"] == [{"key": "fixed", "value": "1"}]
    assert "t" not in {t["key"] for t in data["tags"]}
    s, j = srv.get("metrics/get-history", run_id=rid, metric_key="x")
    assert s == 200 and not j.get("metrics")


def test_log_batch_limits(srv):
    rid = new_run(srv)["info"]["run_id"]
    m = lambda n: [{"key": "k", "value": 1.0, "timestamp": 1, "step": i} for i in range(n)]
    kv = lambda n: [{"key": f"k{i}", "value": "v"} for i in range(n)]
    for body, what in (({"metrics": m(1001)}, "1000 metrics"), ({"params": kv(101)}, "100 params"),
                       ({"tags": kv(101)}, "100 tags"),
                       ({"metrics": m(900), "params": kv(100), "tags": kv(1)},
                        "1000 metrics, params, and tags")):
        msg = err(srv.post("runs/log-batch", dict(body, run_id=rid)), 400,
                  "INVALID_PARAMETER_VALUE")
        assert f"at most {what}" in msg, msg
    msg = err(srv.post("runs/log-batch", {"run_id": rid, "params": [
        {"key": "d", "value": "1"}, {"key": "d", "value": "1"}]}), 400, "INVALID_PARAMETER_VALUE")
    assert "Duplicate parameter keys" in msg
    big = {"run_id": rid, "tags": [{"key": f"t{i}", "value": "v" * 4900} for i in range(100)],
           "params": [{"key": f"p{i}", "value": "v" * 5900} for i in range(100)]}
    msg = err(srv.post("runs/log-batch", big), 400, "INVALID_PARAMETER_VALUE")
    assert "at most 1000000 bytes" in msg
    srv.ok("POST", "runs/log-batch", {"run_id": rid, "metrics": m(1000)})
    assert srv.ok("GET", "runs/get", run_id=rid)["run"]["data"]["metrics"][0]["step"] == 999


def test_log_batch_json_details(srv):
    """log-batch has a parser of its own: JSON's corners must read as any JSON reader would."""
    rid = new_run(srv)["info"]["run_id"]
    body = ('{ "metrics" : [ {"step": 2, "key": "caf\\u00e9\\/x", "extra": {"a": [1, {"b": null}]},'
            ' "timestamp": 7, "value": -1.5e2, "model_id": "m"} ],\n'
            '  "unknown": [true, false, null, "s\\"q"], "run_id": "%s",'
            ' "tags": [{"key": "t", "value": "line\\nbreak \\ud83d\\ude00"}], "params": [] }' % rid)
    s, j, _ = srv.request("POST", API + "runs/log-batch", raw=body.encode())
    assert s == 200, j
    data = srv.ok("GET", "runs/get", run_id=rid)["run"]["data"]
    assert data["metrics"] == [{"key": "caf\u00e9/x", "value": -150.0, "timestamp": 7, "step": 2}]
    assert {"key": "t", "value": "line\nbreak \U0001F600"} in data["tags"]
    for bad in (b'{"run_id": "%s", "metrics": [' % rid.encode(),
                b'{"run_id": "%s", "run_id": "%s"}' % (rid.encode(), rid.encode()),
                b'{"run_id": "x"} trailing', b'{"metrics": [{"key": "a", "value": 01}]}',
                b'{"tags": [{"key": "\\ud800", "value": "v"}]}', b'{"tags": "\xff"}',
                b'[]', b''):
        s, j, _ = srv.request("POST", API + "runs/log-batch", raw=bad)
        assert s == 400 and j["error_code"] == "MALFORMED_REQUEST", (bad, j)
    for bad in ({"run_id": rid, "metrics": [{"key": "a", "value": True, "timestamp": 1}]},
                {"run_id": rid, "metrics": [{"key": "a", "value": 1, "timestamp": -1}]},
                {"run_id": rid, "metrics": [{"key": "a", "value": 1, "timestamp": 1.5}]},
                {"run_id": rid, "metrics": [{"key": "a", "value": 1, "step": "x"}]},
                {"run_id": rid, "metrics": [5]}, {"run_id": rid, "params": [{"key": 1}]},
                {"run_id": 7}, {"metrics": []}):
        err(srv.post("runs/log-batch", bad), 400, "INVALID_PARAMETER_VALUE")
    assert len(srv.ok("GET", "runs/get", run_id=rid)["run"]["data"]["metrics"]) == 1


def test_non_finite_values_round_trip(srv):
    rid = new_run(srv)["info"]["run_id"]
    srv.ok("POST", "runs/log-batch", {"run_id": rid, "metrics": [
        {"key": "v", "value": "NaN", "timestamp": 1, "step": 0},
        {"key": "v", "value": "Infinity", "timestamp": 1, "step": 1},
        {"key": "v", "value": "-Infinity", "timestamp": 1, "step": 2},
        {"key": "v", "value": 1e300, "timestamp": "2", "step": "3"}]})
    hist = srv.ok("GET", "metrics/get-history", run_id=rid, metric_key="v")["metrics"]
    assert [p["value"] for p in hist] == ["NaN", "Infinity", "-Infinity", 1e300]
    assert hist[3]["timestamp"] == 2 and hist[3]["step"] == 3


def test_metric_history_pages(srv):
    rid = new_run(srv)["info"]["run_id"]
    srv.ok("POST", "runs/log-batch", {"run_id": rid, "metrics": [
        {"key": "loss", "value": i / 10, "timestamp": i, "step": i} for i in range(25)]})
    got, token = [], None
    while True:
        q = {"run_id": rid, "metric_key": "loss", "max_results": "10"}
        if token:
            q["page_token"] = token
        page = srv.ok("GET", "metrics/get-history", **q)
        got += page["metrics"]
        token = page.get("next_page_token")
        if not token:
            break
    assert [p["step"] for p in got] == list(range(25))
    err(srv.get("metrics/get-history", run_id=rid, metric_key="loss", page_token="zz"), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.get("metrics/get-history", run_id="f" * 32, metric_key="loss"), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(srv.get("metrics/get-history", run_id=rid), 400, "INVALID_PARAMETER_VALUE")


def test_history_bulk_interval_samples_steps(srv):
    a, b = new_run(srv)["info"]["run_id"], new_run(srv)["info"]["run_id"]
    for rid, steps in ((a, range(0, 100)), (b, range(50, 150))):
        srv.ok("POST", "runs/log-batch", {"run_id": rid, "metrics": [
            {"key": "loss", "value": float(s), "timestamp": s, "step": s} for s in steps]})
    full = srv.ok("GET", "metrics/get-history-bulk-interval", prefix="/ajax-api/2.0/mlflow/",
                  run_ids=[a, b], metric_key="loss", max_results="1000")["metrics"]
    assert len(full) == 200 and {m["run_id"] for m in full} == {a, b}
    some = srv.ok("GET", "metrics/get-history-bulk-interval", prefix="/ajax-api/2.0/mlflow/",
                  run_ids=[a, b], metric_key="loss", max_results="10", start_step="40",
                  end_step="120")["metrics"]
    steps = sorted({m["step"] for m in some})
    assert len(steps) == 10 and steps[0] == 40 and steps[-1] == 120
    assert [m["step"] for m in some if m["run_id"] == a] == [s for s in steps if s < 100]
    err(srv.get("metrics/get-history-bulk-interval", run_ids=[a], metric_key="loss",
                start_step="5"), 400, "INVALID_PARAMETER_VALUE")
    err(srv.get("metrics/get-history-bulk-interval", run_ids=[a] * 101, metric_key="loss"), 400,
        "INVALID_PARAMETER_VALUE")


def test_log_inputs(srv):
    rid = new_run(srv)["info"]["run_id"]
    ds = {"tags": [{"key": "mlflow.data.context", "value": "train"}],
          "dataset": {"name": "mnist", "digest": "abc123", "source_type": "local",
                      "source": "{\"uri\": \"/data/mnist\"}"}}
    srv.ok("POST", "runs/log-inputs", {"run_id": rid, "datasets": [ds]})
    srv.ok("POST", "runs/log-inputs", {"run_id": rid, "datasets": [ds]})  # same dataset: once
    assert srv.ok("GET", "runs/get", run_id=rid)["run"]["inputs"] == {"dataset_inputs": [ds]}
    bad = {"dataset": {"name": "x", "digest": "d" * 37, "source_type": "l", "source": "s"}}
    err(srv.post("runs/log-inputs", {"run_id": rid, "datasets": [bad]}), 400,
        "INVALID_PARAMETER_VALUE")


def test_run_search(srv):
    eid, _ = new_experiment(srv, "search-runs")
    ids = []
    for i in range(5):
        rid = new_run(srv, eid, run_name=f"r{i}", start_time=1000 + i)["info"]["run_id"]
        srv.ok("POST", "runs/log-batch", {"run_id": rid, "metrics": [
            {"key": "acc", "value": i / 10, "timestamp": 1, "step": 0}],
            "params": [{"key": "lr", "value": str(i)}]})
        ids.append(rid)
    got = srv.ok("POST", "runs/search", {"experiment_ids": [eid], "filter": "metrics.acc > 0.15",
                                          "order_by": ["metrics.acc DESC"]})["runs"]
    assert [r["info"]["run_id"] for r in got] == ids[:1:-1]
    assert got[0]["data"]["params"] == [{"key": "lr", "value": "4"}]
    # default order: start_time DESC; pages
    page = srv.ok("POST", "runs/search", {"experiment_ids": [eid], "max_results": 2})
    assert [r["info"]["run_id"] for r in page["runs"]] == [ids[4], ids[3]]
    page2 = srv.ok("POST", "runs/search", {"experiment_ids": [eid], "max_results": 2,
                                            "page_token": page["next_page_token"]})
    assert [r["info"]["run_id"] for r in page2["runs"]] == [ids[2], ids[1]]
    srv.ok("POST", "runs/delete", {"run_id": ids[0]})
    assert len(srv.ok("POST", "runs/search", {"experiment_ids": [eid]})["runs"]) == 4
    deleted = srv.ok("POST", "runs/search", {"experiment_ids": [eid],
                                              "run_view_type": "DELETED_ONLY"})["runs"]
    assert [r["info"]["run_id"] for r in deleted] == [ids[0]]
    msg = err(srv.post("runs/search", {"experiment_ids": [eid], "filter": "metrics.acc >"}),
              400, "INVALID_PARAMETER_VALUE")
    assert msg


# ---- the HTTP surface ----------------------------------------------------------------------

def test_bad_json_wrong_method_unknown_endpoint(srv):
    s, j, _ = srv.request("POST", API + "runs/create", raw=b"{not json",
                          headers={"Content-Type": "application/json"})
    assert s == 400 and j["error_code"] in ("MALFORMED_REQUEST", "BAD_REQUEST",
                                             "INVALID_PARAMETER_VALUE")
    s, j, _ = srv.request("POST", API + "runs/create", raw=b"[1, 2]")
    assert s == 400 and "error_code" in j
    s, j, _ = srv.request("GET", API + "runs/create")
    assert s == 405 and "error_code" in j
    s, j, _ = srv.request("DELETE", API + "runs/get")
    assert s == 405
    s, j, _ = srv.request("GET", API + "runs/nothing-here")
    assert s == 404 and j["error_code"] == "ENDPOINT_NOT_FOUND"


def test_long_query_string(srv):
    rid = new_run(srv)["info"]["run_id"]
    s, j = srv.get("runs/get", run_id=rid, padding="p" * 16384)
    assert s == 200 and j["run"]["info"]["run_id"] == rid


def test_ajax_prefix_serves_the_same_handlers(srv):
    rid = new_run(srv)["info"]["run_id"]
    a = srv.get("runs/get", run_id=rid)
    b = srv.get("runs/get", prefix="/ajax-api/2.0/mlflow/", run_id=rid)
    assert a == b and a[0] == 200
    s, j = srv.post("runs/set-tag", {"run_id": rid, "key": "via", "value": "ajax"},
                    prefix="/ajax-api/2.0/mlflow/")
    assert s == 200


# ---- artifacts -----------------------------------------------------------------------------

def test_artifact_upload_list_download(srv):
    run = new_run(srv)["info"]
    uri = run["artifact_uri"]
    assert uri.startswith("mlflow-artifacts:/")
    base = ARTIFACTS + "/" + uri[len("mlflow-artifacts:/"):]
    blob = bytes(range(256)) * 4096 + os.urandom(1000)
    s, j, _ = srv.request("PUT", base + "/model/weights.bin", raw=blob)
    assert s == 200, j
    s, j, _ = srv.request("PUT", base + "/model/MLmodel", raw=b"flavors: {}\n")
    assert s == 200, j
    s, j, _ = srv.request("PUT", base + "/notes.json", raw=b'{"a": 1}')
    assert s == 200, j
    s, body, hdrs = srv.request("GET", base + "/model/weights.bin")
    assert s == 200 and body == blob
    assert hdrs["Content-Type"] == "application/octet-stream"
    s, body, hdrs = srv.request("GET", base + "/notes.json")
    assert s == 200 and body == {"a": 1} and hdrs["Content-Type"] == "application/json"
    s, j, _ = srv.request("GET", ARTIFACTS, query={"path": uri[len("mlflow-artifacts:/"):]})
    assert s == 200 and j["files"] == [{"path": "model", "is_dir": True},
                                       {"path": "notes.json", "is_dir": False, "file_size": 8}]
    s, j, _ = srv.request("GET", ARTIFACTS,
                          query={"path": uri[len("mlflow-artifacts:/"):] + "/model"})
    assert j["files"] == [{"path": "MLmodel", "is_dir": False, "file_size": 12},
                          {"path": "weights.bin", "is_dir": False, "file_size": len(blob)}]
    listed = srv.ok("GET", "artifacts/list", run_id=run["run_id"], path="model")
    assert listed["root_uri"] == uri
    assert [f["path"] for f in listed["files"]] == ["model/MLmodel", "model/weights.bin"]
    # replacing a file with other content
    s, _, _ = srv.request("PUT", base + "/notes.json", raw=b"[]")
    s, body, _ = srv.request("GET", base + "/notes.json")
    assert body == []


def test_artifact_errors(srv):
    run = new_run(srv)["info"]
    base = ARTIFACTS + "/" + run["artifact_uri"][len("mlflow-artifacts:/"):]
    s, j, _ = srv.request("GET", base + "/nothing.txt")
    assert s == 404 and j["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    s, j, _ = srv.request("PUT", ARTIFACTS + f"/0/{'0' * 32}/artifacts/x", raw=b"x")
    assert s == 404 and j["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    s, j, _ = srv.request("PUT", base + "/a/../b", raw=b"x")
    assert s in (400, 404)
    s, j, _ = srv.request("PUT", base + "/a//b", raw=b"x")
    assert s == 400 and j["error_code"] == "INVALID_PARAMETER_VALUE"
    s, j, _ = srv.request("PUT", ARTIFACTS + "/not-a-path", raw=b"x")
    assert s == 400
    s, _, _ = srv.request("PUT", base + "/keep.txt", raw=b"keep")
    s, j, _ = srv.request("DELETE", base + "/keep.txt")
    assert s == 501 and j["error_code"] == "NOT_IMPLEMENTED"
    s, body, _ = srv.request("GET", base + "/keep.txt")
    assert s == 200 and body == b"keep"


# ---- a run from an agent -------------------------------------------------------------------

def test_run_from_an_agent_is_served(srv):
    d = os.path.join(srv.root, "agent")
    os.makedirs(os.path.join(d, "ring"))
    sidetrack("keys", "gen", "a1", "--dir", d, check=True)
    shutil.copy(os.path.join(d, "a1.pub"), os.path.join(srv.data, "agents.d", "a1.pub"))
    agent = pyutil.start(
        [AGENT, "-d", os.path.join(d, "data"), "-r", os.path.join(d, "ring"),
         "-s", f"tcp://127.0.0.1:{srv.zport}",
         "--server-key", os.path.join(srv.data, "server.pub"),
         "--key", os.path.join(d, "a1.key"), "--sync-interval", "100"],
        os.path.join(d, "agent.log"))
    try:
        rid = train(os.path.join(d, "ring"), 300, "from-agent", "agent-run", lane_mb=None,
                    timeout=120)

        def arrived():
            s, j = srv.get("runs/get", run_id=rid)
            if s != 200:
                return None
            r = j["run"]
            keys = {m["key"]: m for m in r["data"].get("metrics", [])}
            done = r["info"]["status"] == "FINISHED" and keys.get("lr", {}).get("step") == 299
            return r if done else None
        run = wait_for(arrived, 60, "the agent's run to reach the server\n" + srv.logs())
        exp = srv.ok("GET", "experiments/get-by-name", experiment_name="from-agent")["experiment"]
        assert run["info"]["experiment_id"] == exp["experiment_id"]
        assert run["info"]["run_name"] == "agent-run"
        assert {"key": "mlflow.runName", "value": "agent-run"} in run["data"]["tags"]
        assert {"key": "learning_rate", "value": "0.05"} in run["data"]["params"]
        found = srv.ok("POST", "runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                "filter": "params.optimizer = 'sgd'"})["runs"]
        assert [r["info"]["run_id"] for r in found] == [rid]
        hist = srv.ok("GET", "metrics/get-history", run_id=rid, metric_key="train/loss")
        assert [m["step"] for m in hist["metrics"]] == list(range(300))
        # the checkpoint the example logs, through the artifacts API once its content is here
        base = ARTIFACTS + "/" + run["info"]["artifact_uri"][len("mlflow-artifacts:/"):]

        def checkpoint():
            s, body, _ = srv.request("GET", base + "/model/checkpoint.json")
            return body if s == 200 else None
        body = wait_for(checkpoint, 60, "the artifact's content")
        assert body
        # and the API may go on writing to it, like any other run
        srv.ok("POST", "runs/set-tag", {"run_id": rid, "key": "reviewed", "value": "yes"})
    finally:
        pyutil.stop(agent)
