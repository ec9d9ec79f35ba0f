"""sidetrack-server's HTTP(S) front itself (server/http.c), below MLflow's API: TLS with a CA
the test makes, tokens (Bearer and Basic, revoked by deleting the file), --api-auth token,
long request lines, keep-alive, routing errors, and refused bodies. Real processes on
loopback; run by meson (suite server) with SIDETRACK_BUILD_DIR set."""
import base64
import http.client
import json
import os
import ssl
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import pyutil  # noqa: E402
from pyutil import SERVER, free_port, make_pki, scratch, wait_for  # noqa: E402

TOKEN = "tok-" + "x" * 39


class Server:
    def __init__(self, root, tls=False, api_auth="open"):
        self.root = root
        self.data = os.path.join(root, "data")
        self.port = free_port()
        os.makedirs(os.path.join(self.data, "tokens.d"), exist_ok=True)
        args = [SERVER, "--data", self.data, "--zmq", "off",
                "--http", f"127.0.0.1:{self.port}", "--api-auth", api_auth]
        self.tls = tls
        if tls:
            args += ["--tls-cert", os.path.join(root, "server.pem"),
                     "--tls-key", os.path.join(root, "server.key")]
        self.log = os.path.join(root, "server.log")
        self.proc = pyutil.start(args, self.log)
        wait_for(self._up, what="the server's HTTP port")

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError("server exited: " + open(self.log).read())
        try:
            c = self.conn()
            c.request("GET", "/")
            c.getresponse().read()
            return True
        except (OSError, ssl.SSLError):
            return False

    def conn(self, ca="ca.pem"):
        if self.tls:
            ctx = ssl.create_default_context(cafile=os.path.join(self.root, ca))
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=10)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def stop(self):
        assert pyutil.stop(self.proc, timeout=20) == 0


@pytest.fixture
def root():
    with scratch("st-http-") as d:
        yield d


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    return r.status, r.getheaders(), data


def sync_post(conn, token=None, basic=None, body=b"\x00"):
    h = {"Content-Type": "application/x-sidetrack-frame"}
    if token:
        h["Authorization"] = "Bearer " + token
    if basic:
        h["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    return request(conn, "POST", "/api/sidetrack/v1/sync", body, h)


def write_token(data, name, secret):
    path = os.path.join(data, "tokens.d", name + ".token")
    with open(path, "w") as f:
        f.write(secret + "\n")
    os.chmod(path, 0o600)
    return path


def test_tls_with_a_ca_the_test_made_and_refusal_of_another_ca(root):
    make_pki(root)
    s = Server(root, tls=True)
    try:
        status, _, body = request(s.conn(), "GET", "/no/such/thing")
        assert status == 404
        assert json.loads(body)["error_code"] == "ENDPOINT_NOT_FOUND"
        with pytest.raises(ssl.SSLCertVerificationError):
            request(s.conn(ca="other-ca.pem"), "GET", "/")
    finally:
        s.stop()


def test_tokens_bearer_basic_wrong_missing_and_revoked(root):
    s = Server(root)
    try:
        path = write_token(s.data, "node1", TOKEN)
        time.sleep(1.2)  # the folder is looked at again at most once a second
        c = s.conn()
        status, headers, body = sync_post(c)
        assert status == 401
        assert json.loads(body)["error_code"] == "UNAUTHENTICATED"
        assert any(k.lower() == "www-authenticate" for k, _ in headers)
        c = s.conn()
        assert sync_post(c, token="tok-" + "y" * 39)[0] == 401
        c = s.conn()
        assert sync_post(c, basic="someone-else:" + TOKEN)[0] == 401
        # A valid token gets through to the protocol: the garbage frame is answered with a
        # protocol ERROR frame (200), not refused at the door.
        c = s.conn()
        status, headers, body = sync_post(c, token=TOKEN)
        assert status == 200, body
        assert dict((k.lower(), v) for k, v in headers)["content-type"] == \
            "application/x-sidetrack-frame"
        status, _, _ = sync_post(c, basic="node1:" + TOKEN)
        assert status == 200
        os.unlink(path)
        time.sleep(1.2)
        assert sync_post(s.conn(), token=TOKEN)[0] == 401
    finally:
        s.stop()


def test_api_auth_token_protects_every_route(root):
    s = Server(root, api_auth="token")
    try:
        write_token(s.data, "alice", TOKEN)
        time.sleep(1.2)
        status, _, body = request(s.conn(), "GET", "/api/2.0/mlflow/experiments/search")
        assert status == 401, body
        status, _, body = request(s.conn(), "GET", "/no/such/thing",
                                  headers={"Authorization": "Bearer " + TOKEN})
        assert status == 404
    finally:
        s.stop()


def test_long_request_lines_keep_alive_and_routing_errors(root):
    s = Server(root)
    try:
        c = s.conn()
        # 20 KB of query string on one connection, several requests in a row (keep-alive:
        # the same socket serves them all).
        long_path = "/nothing?" + "&".join(f"run_id={i:032x}" for i in range(600))
        assert len(long_path) > 20000
        for _ in range(3):
            status, headers, body = request(c, "GET", long_path)
            assert status == 404, body
            assert json.loads(body)["error_code"] == "ENDPOINT_NOT_FOUND"
        sock = c.sock
        request(c, "GET", "/again")
        assert c.sock is sock, "the connection was not kept alive"
        # A method the path does not take.
        status, _, body = request(c, "GET", "/api/sidetrack/v1/sync")
        assert status == 405
        assert json.loads(body)["error_code"] == "BAD_REQUEST"
    finally:
        s.stop()


def test_frame_bodies_of_the_wrong_type_are_refused(root):
    s = Server(root)
    try:
        write_token(s.data, "node1", TOKEN)
        time.sleep(1.2)
        status, _, body = request(s.conn(), "POST", "/api/sidetrack/v1/sync", b"{}",
                                  {"Authorization": "Bearer " + TOKEN,
                                   "Content-Type": "application/json"})
        assert status == 415, body
    finally:
        s.stop()


def test_bad_options_are_named(root):
    def run(*args):
        p = subprocess.run([SERVER, "--data", os.path.join(root, "d"), *args],
                           capture_output=True, text=True, timeout=20)
        return p.returncode, p.stderr

    rc, err = run("--http", "nonsense")
    assert rc == 1 and "ADDRESS:PORT" in err
    rc, err = run("--http", "127.0.0.1:1", "--tls-cert", "x.pem")
    assert rc == 2 and "--tls-key" in err
    rc, err = run("--zmq", "off")
    assert rc == 2 and "--http" in err
    rc, err = run("--api-auth", "maybe")
    assert rc == 2 and "open" in err
    with open(os.path.join(root, "bad.pem"), "w") as f:
        f.write("not a certificate\n")
    rc, err = run("--zmq", "off", "--http", f"127.0.0.1:{free_port()}",
                  "--tls-cert", os.path.join(root, "bad.pem"),
                  "--tls-key", os.path.join(root, "bad.pem"))
    assert rc == 1 and "PEM" in err
