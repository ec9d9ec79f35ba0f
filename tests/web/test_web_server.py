"""sidetrack-server's side of the web UI (server/web.c), no browser: static files with their
content types and validators (ETag, Last-Modified, 304), no way out of the web root, --web,
--read-only (reads work, every write answers 403, the store's files stay as they were), and
`sidetrack ui`, which serves a node's store read-only and prints the URL. Real processes on
loopback; run by meson (suite web) with SIDETRACK_BUILD_DIR set."""
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import pyutil  # noqa: E402
from pyutil import CLI, SERVER, SOURCE, free_port, listening, scratch, wait_for  # noqa: E402

API = "/api/2.0/mlflow/"


@pytest.fixture
def root():
    with scratch("st-web-") as d:
        yield d


class Server:
    def __init__(self, root, *extra, data=None):
        self.data = data or os.path.join(root, "data")
        self.port = free_port()
        self.log = os.path.join(root, "server.log")
        self.proc = pyutil.start([SERVER, "--data", self.data, "--zmq", "off",
                                  "--http", f"127.0.0.1:{self.port}", *extra], self.log)
        wait_for(self._up, what=lambda: "the server to listen: " + open(self.log).read())

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError("server exited: " + open(self.log).read())
        return listening(self.port)

    def request(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        out = (r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        c.close()
        return out

    def api(self, method, path, obj=None):
        status, _, body = self.request(method, API + path,
                                       json.dumps(obj) if obj is not None else None,
                                       {"Content-Type": "application/json"})
        return status, json.loads(body or b"{}")

    def stop(self):
        assert pyutil.stop(self.proc, timeout=20) == 0, open(self.log).read()


def fill(srv):
    """An experiment and a run with a param, a metric and an artifact, through MLflow's API."""
    status, exp = srv.api("POST", "experiments/create", {"name": "web"})
    assert status == 200, exp
    status, run = srv.api("POST", "runs/create", {"experiment_id": exp["experiment_id"],
                                                  "run_name": "r1"})
    assert status == 200, run
    rid = run["run"]["info"]["run_id"]
    status, _ = srv.api("POST", "runs/log-batch", {
        "run_id": rid, "params": [{"key": "lr", "value": "0.1"}],
        "metrics": [{"key": "loss", "value": 0.5, "timestamp": 1, "step": 0}]})
    assert status == 200
    status, _, _ = srv.request(
        "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{exp['experiment_id']}/{rid}/artifacts/a.txt",
        b"hello")
    assert status == 200
    return exp["experiment_id"], rid


def test_static_files_have_their_content_types(root):
    s = Server(root)
    try:
        for path, ctype, needle in [
                ("/", "text/html", b"/static/app.js"),
                ("/static/app.js", "text/javascript", b"hashchange"),
                ("/static/style.css", "text/css", b"font-family"),
                ("/static/vendor/chart.min.js", "text/javascript", b"Chart")]:
            status, headers, body = s.request("GET", path)
            assert status == 200, (path, body[:200])
            assert headers["content-type"].startswith(ctype), (path, headers)
            assert needle in body, path
            assert headers["x-content-type-options"] == "nosniff"
        with open(os.path.join(SOURCE, "web", "app.js"), "rb") as f:
            assert s.request("GET", "/static/app.js")[2] == f.read()
        # The API's routes come first and are not shadowed by the UI's.
        status, body = s.api("GET", "experiments/search?max_results=10")
        assert status == 200 and "experiments" in body
    finally:
        s.stop()


def test_unchanged_files_answer_304(root):
    s = Server(root)
    try:
        status, headers, body = s.request("GET", "/static/app.js")
        assert status == 200 and headers["etag"] and headers["last-modified"]
        assert headers["cache-control"] == "no-cache"
        status, _, body = s.request("GET", "/static/app.js",
                                    headers={"If-None-Match": headers["etag"]})
        assert (status, body) == (304, b"")
        status, _, body = s.request("GET", "/static/app.js",
                                    headers={"If-Modified-Since": headers["last-modified"]})
        assert (status, body) == (304, b"")
        status, _, body = s.request("GET", "/static/app.js",
                                    headers={"If-None-Match": '"something-else"'})
        assert status == 200 and body
    finally:
        s.stop()


@pytest.mark.parametrize("path", [
    "/static/../meson.build", "/static/%2e%2e/meson.build", "/static/..%2fmeson.build",
    "/static/vendor/../../README.md", "/static/.hidden", "/static/", "/static//app.js",
    "/static/app.js/", "/static/no-such-file.js", "/static/%00app.js", "/static/app%5c..js",
    "/static/vendor/chart.js", "/static/vendor",
])
def test_nothing_outside_the_web_root_is_served(root, path):
    s = Server(root)
    try:
        status, headers, body = s.request("GET", path)
        assert status == 404, (path, body[:200])
        assert json.loads(body)["error_code"] == "ENDPOINT_NOT_FOUND"
    finally:
        s.stop()


def test_web_option_picks_the_folder_or_turns_the_ui_off(root):
    web = os.path.join(root, "myweb")
    os.makedirs(web)
    with open(os.path.join(web, "index.html"), "w") as f:
        f.write("<p>custom ui</p>")
    s = Server(root, "--web", web)
    try:
        status, headers, body = s.request("GET", "/")
        assert (status, body) == (200, b"<p>custom ui</p>")
        assert s.request("GET", "/static/app.js")[0] == 404
    finally:
        s.stop()
    s = Server(root, "--web", "off")
    try:
        assert s.request("GET", "/")[0] == 404
        assert s.api("GET", "experiments/search?max_results=10")[0] == 200
    finally:
        s.stop()
    p = subprocess.run([SERVER, "--data", os.path.join(root, "d2"), "--zmq", "off",
                        "--http", f"127.0.0.1:{free_port()}", "--web", os.path.join(root, "none")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1
    assert "cannot serve the web UI" in p.stderr and "no index.html" in p.stderr


def digest(data):
    h = hashlib.sha256()
    for name in sorted(os.listdir(data)):
        path = os.path.join(data, name)
        if os.path.isfile(path) and name != "lock.mdb":
            with open(path, "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest(), sorted(os.listdir(data))


def test_read_only_serves_reads_and_refuses_every_write(root):
    s = Server(root)
    try:
        exp, rid = fill(s)
    finally:
        s.stop()
    before = digest(s.data)
    s = Server(root, "--read-only", data=s.data)
    try:
        status, body = s.api("POST", "runs/search", {"experiment_ids": [exp]})
        assert status == 200 and [r["info"]["run_id"] for r in body["runs"]] == [rid]
        status, body = s.api("GET", f"runs/get?run_id={rid}")
        assert status == 200 and body["run"]["data"]["params"] == [{"key": "lr", "value": "0.1"}]
        status, _, body = s.request("GET", f"/get-artifact?path=a.txt&run_uuid={rid}")
        assert (status, body) == (200, b"hello")
        assert s.request("GET", "/")[0] == 200
        for prefix in ("", "/ajax-api/2.0/mlflow/"):
            for path, obj in [("experiments/create", {"name": "x"}),
                              ("runs/create", {"experiment_id": exp}),
                              ("runs/log-batch", {"run_id": rid, "params": [{"key": "k", "value": "v"}]}),
                              ("runs/log-metric", {"run_id": rid, "key": "m", "value": 1, "timestamp": 1}),
                              ("runs/set-tag", {"run_id": rid, "key": "t", "value": "v"}),
                              ("runs/update", {"run_id": rid, "status": "KILLED"}),
                              ("runs/delete", {"run_id": rid}),
                              ("experiments/delete", {"experiment_id": exp})]:
                full = (prefix + path) if prefix else (API + path)
                status, _, body = s.request("POST", full, json.dumps(obj))
                assert status == 403, (full, body)
                err = json.loads(body)
                assert err["error_code"] == "PERMISSION_DENIED" and "read-only" in err["message"]
        status, _, body = s.request(
            "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{rid}/artifacts/b.txt", b"x")
        assert status == 403, body
        status, _, body = s.request("POST", "/api/sidetrack/v1/sync", b"x")
        assert status == 403, body
        status, body = s.api("GET", f"runs/get?run_id={rid}")
        assert body["run"]["info"]["status"] == "RUNNING"  # the update above did not happen
    finally:
        s.stop()
    assert digest(s.data) == before


def test_read_only_does_not_make_a_missing_store(root):
    data = os.path.join(root, "nothing-here")
    p = subprocess.run([SERVER, "--data", data, "--read-only",
                        "--http", f"127.0.0.1:{free_port()}"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "cannot open the store" in p.stderr, p.stderr
    assert not os.path.exists(data)
    p = subprocess.run([SERVER, "--data", data, "--read-only"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "--read-only needs --http" in p.stderr


def test_sidetrack_ui_serves_the_store_read_only_and_prints_the_url(root):
    s = Server(root)
    try:
        exp, rid = fill(s)
    finally:
        s.stop()
    before = digest(s.data)
    p = subprocess.Popen([CLI, "--data", s.data, "ui", "--port", "0"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        m = re.search(r"open (http://127\.0\.0\.1:(\d+)/) \(read-only", line)
        assert m, line + p.stderr.read() if p.poll() is not None else line
        port = int(m.group(2))
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/")
        r = c.getresponse()
        assert r.status == 200 and b"/static/app.js" in r.read()
        c.request("POST", API + "runs/search", json.dumps({"experiment_ids": [exp]}))
        r = c.getresponse()
        assert r.status == 200 and rid.encode() in r.read()
        c.request("POST", API + "runs/create", json.dumps({"experiment_id": exp}))
        r = c.getresponse()
        assert r.status == 403, r.read()
        r.read()
        c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    assert p.returncode == -signal.SIGTERM  # the CLI re-raises what stopped it
    assert not listening(port)  # the server went with it
    assert digest(s.data) == before


def test_sidetrack_ui_says_when_there_is_no_store(root):
    p = subprocess.run([CLI, "--data", os.path.join(root, "none"), "ui"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1 and "no store at" in p.stderr
    p = subprocess.run([CLI, "ui", "--port", "70000"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "--port" in p.stderr
