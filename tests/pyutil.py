"""What the Python-driven suites (tests/python, tests/sync, tests/server) share: the build's
programs, waiting, free ports, processes with a log file, the sidetrack CLI, a PKI made with
the openssl program, and scratch folders."""
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# meson test sets SIDETRACK_BUILD_DIR; by hand, ./build is the default.
BUILD = os.path.abspath(os.environ.get("SIDETRACK_BUILD_DIR") or os.path.join(SOURCE, "build"))
AGENT = os.path.join(BUILD, "agent", "sidetrackd")
SERVER = os.path.join(BUILD, "server", "sidetrack-server")
CLI = os.path.join(BUILD, "client", "cli", "sidetrack")
TRAIN = os.path.join(BUILD, "examples", "sidetrack-example-train")


def built(*parts):
    """A file of the build directory, e.g. built("tests", "sync", "replay_client")."""
    return os.path.join(BUILD, *parts)


def wait_for(pred, timeout=20.0, what="a condition", interval=0.05):
    """Polls pred() until it returns something true, and returns that; the processes under
    test work asynchronously. AssertionError naming `what` after timeout seconds (a callable
    `what` is called then, so that it can carry the logs of that moment)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def free_port():
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """Something accepts TCP connections on loopback's `port`."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_listening(port, timeout=10, what="the server to listen"):
    wait_for(lambda: listening(port), timeout, what)


def agent_env():
    """The environment without the SIDETRACK_* variables a daemon would take as settings
    (SIDETRACK_BUILD_DIR stays: the tests find the binaries by it)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("SIDETRACK_") or k == "SIDETRACK_BUILD_DIR"}


def start(args, log, **kw):
    """Popen(args) with its stderr appended to the file `log` (kept across restarts, read by
    tail_logs() when something fails)."""
    with open(log, "a") as f:  # the child holds its own descriptor
        return subprocess.Popen(args, stderr=f, **kw)


def stop(proc, timeout=60):
    """SIGTERM to proc if it still runs; its exit status (also when it had ended before)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def alive(proc):
    return proc is not None and proc.poll() is None


def kill(proc, sig=signal.SIGKILL, timeout=30):
    proc.send_signal(sig)
    proc.wait(timeout)


def stop_all(procs, logs=""):
    """SIGTERM to each (name, proc) still running: each must stop cleanly (exit 0; under
    AddressSanitizer that includes no leak)."""
    bad = []
    for name, p in procs:
        if alive(p) and stop(p) != 0:
            bad.append(f"{name} exited {p.returncode}")
    assert not bad, ", ".join(bad) + "\n" + (logs() if callable(logs) else logs)


def tail_logs(paths, size=4000):
    """The end of each log file that exists, for an assertion's message."""
    out = []
    for path in paths:
        if os.path.exists(path):
            with open(path) as f:
                out.append(f"--- {path}\n" + f.read()[-size:])
    return "\n".join(out)


def sidetrack(*args, check=False, timeout=120, **kw):
    """The sidetrack CLI, output captured as text; with check, a failure is an
    AssertionError that carries its stderr."""
    p = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"sidetrack {' '.join(args)}: {p.stderr}")
    return p


def cli(data, *args, check=True, timeout=60):
    """`sidetrack -d DATA ARGS...`; a failure is an AssertionError unless check=False."""
    p = sidetrack("-d", data, *args, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"sidetrack {' '.join(args)}: {p.stderr}")
    return p


def train(ring, steps, experiment, run_name, artifact=None, lane_mb="64", timeout=300):
    """The example training program logging one run into `ring`; its run id."""
    env = dict(os.environ, SIDETRACK_RING_DIR=ring)
    if lane_mb:
        env["SIDETRACK_LANE_MB"] = lane_mb
    p = subprocess.run([TRAIN, "--steps", str(steps), "--experiment", experiment,
                        "--run-name", run_name] + (["--artifact", artifact] if artifact
                                                   else []),
                       env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


class Pki:
    """Paths of what make_pki() wrote."""

    def __init__(self, d):
        self.ca = os.path.join(d, "ca.pem")
        self.other_ca = os.path.join(d, "other-ca.pem")
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")


def make_pki(d):
    """In folder d: a CA (ca.pem), a server certificate for 127.0.0.1 and localhost signed by
    it (server.pem, server.key), and another CA that signed nothing (other-ca.pem)."""
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "2", "-subj", f"/CN={ca}", "-keyout", f"{ca}.key",
                "-out", f"{ca}.pem", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", "7", "-days", "2", "-extfile", "server.ext", "-out", "server.pem",
            cwd=d)
    return Pki(d)


@contextlib.contextmanager
def scratch(prefix):
    """A temporary folder, removed afterwards unless SIDETRACK_KEEP_SCRATCH is set."""
    root = tempfile.mkdtemp(prefix=prefix)
    try:
        yield root
    finally:
        if os.environ.get("SIDETRACK_KEEP_SCRATCH"):
            print("scratch kept in", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


def http_request(port, method, path, body=None, query=None, raw=None, headers=None,
                 timeout=60):
    """One HTTP request to loopback's `port`: body is sent as JSON, raw as it is, query in the
    URL. (status, the parsed JSON where the answer is JSON and its bytes otherwise, the answer's
    headers); an error status is returned, not raised."""
    url = f"http://127.0.0.1:{port}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query, doseq=True)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                        else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, payload, hdrs = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, payload, hdrs = e.code, e.read(), e.headers
    if hdrs.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(payload), hdrs
    return status, payload, hdrs


class ServerProcess:
    """What a test's own sidetrack-server shares: self.proc started with start(), its log file
    self.log."""

    def logs(self):
        """The end of the server's log, for an assertion's message."""
        return open(self.log).read()[-4000:] if os.path.exists(self.log) else ""

    def stop(self):
        """SIGTERM if it still runs; it must exit 0 (under AddressSanitizer: no leak)."""
        if self.proc.poll() is None:
            assert stop(self.proc) == 0, self.logs()


@contextlib.contextmanager
def serving(server_class, prefix):
    """server_class(root) in a scratch folder named by prefix, stopped (and checked to stop
    cleanly) afterwards: a test module's server."""
    with scratch(prefix) as root:
        s = server_class(root)
        try:
            yield s
        finally:
            s.stop()


def api_error(resp, status, code):
    """The message of an MLflow error answer (status, JSON), which must have that HTTP status and
    error_code."""
    s, j = resp
    assert s == status, (s, j)
    assert j["error_code"] == code, j
    return j["message"]


_unique = itertools.count(1)


def unique_name(prefix):
    """prefix-N, with an N this process has not given before: names that tests sharing one
    server do not collide on."""
    return f"{prefix}-{next(_unique)}"
