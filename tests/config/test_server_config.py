"""sidetrack-server's configuration file, end to end: a server started with --config FILE serves
on the file's port with the file's store and --api-auth, an option overrides a file value,
$SIDETRACK_SRV_<KEY> overrides the file, and a broken file (or a missing one given with
--config) stops the start with exit 2 and FILE:LINE on stderr. Real processes on loopback;
run by meson (suite server) with SIDETRACK_BUILD_DIR set."""
import http.client
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import pyutil  # noqa: E402
from pyutil import SERVER, free_port, scratch, wait_for  # noqa: E402

TOKEN = "tok-" + "c" * 39
EXPERIMENT = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"


@pytest.fixture
def root():
    with scratch("st-srvconf-") as d:
        yield d


def server_env(**extra):
    """The test's environment without any SIDETRACK_SRV_* of its own, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDETRACK_SRV_")}
    env.update(extra)
    return env


def write_conf(root, text):
    path = os.path.join(root, "server.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def prepare_store(data):
    """A store folder with one token, so that api-auth token has something to accept."""
    os.makedirs(os.path.join(data, "tokens.d"))
    path = os.path.join(data, "tokens.d", "node1.token")
    with open(path, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(path, 0o600)


def get(port, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", EXPERIMENT,
                  headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


class Server:
    def __init__(self, root, args, env):
        self.log = os.path.join(root, "server.log")
        self.proc = pyutil.start([SERVER] + args, self.log, env=env)

    def wait_serving(self, port):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("server exited: " + open(self.log).read())
            try:
                return get(port) in (200, 401)
            except OSError:
                return False
        wait_for(up, what=lambda: "the server's HTTP port: " + open(self.log).read())

    def stop(self):
        assert pyutil.stop(self.proc, timeout=30) == 0, open(self.log).read()


def base_conf(data, port):
    return ("# sidetrack-server, from a test\n"
            f"data = {data}\n"
            "zmq = off\n"
            f"http = 127.0.0.1:{port}\n"
            "api-auth = token\n"
            "web = off\n")


def test_serves_per_the_file(root):
    data, port = os.path.join(root, "central"), free_port()
    prepare_store(data)
    conf = write_conf(root, base_conf(data, port))
    s = Server(root, ["--config", conf], server_env())
    try:
        s.wait_serving(port)
        assert get(port) == 401  # api-auth = token
        assert get(port, TOKEN) == 200
        assert os.path.exists(os.path.join(data, "data.mdb"))  # the file's store
        assert "read the configuration file " + conf in open(s.log).read()
    finally:
        s.stop()


def test_an_option_overrides_the_file(root):
    data, port = os.path.join(root, "central"), free_port()
    prepare_store(data)
    conf = write_conf(root, base_conf(data, port))
    s = Server(root, ["-c", conf, "--api-auth", "open"], server_env())
    try:
        s.wait_serving(port)
        assert get(port) == 200  # open, though the file says token
    finally:
        s.stop()


def test_the_environment_overrides_the_file(root):
    data, file_port, env_port = os.path.join(root, "central"), free_port(), free_port()
    prepare_store(data)
    conf = write_conf(root, base_conf(data, file_port))
    s = Server(root, ["--config=" + conf],
               server_env(SIDETRACK_SRV_HTTP=f"127.0.0.1:{env_port}",
                          SIDETRACK_SRV_API_AUTH="open",
                          SIDETRACK_DATA=os.path.join(root, "agent-data")))
    try:
        s.wait_serving(env_port)
        assert get(env_port) == 200
        assert not pyutil.listening(file_port)
        # SIDETRACK_DATA is the agent's variable: the server keeps the file's store.
        assert os.path.exists(os.path.join(data, "data.mdb"))
        assert not os.path.exists(os.path.join(root, "agent-data"))
    finally:
        s.stop()


def run_to_exit(args, env):
    p = subprocess.run([SERVER] + args, capture_output=True, text=True, timeout=30, env=env)
    return p.returncode, p.stderr


def test_a_broken_file_stops_the_start(root):
    data, port = os.path.join(root, "central"), free_port()
    conf = write_conf(root, base_conf(data, port) + "http-threads = lots\n")
    rc, err = run_to_exit(["--config", conf], server_env())
    assert rc == 2, err
    assert (f"sidetrack-server: {conf}:7: http-threads: expected a whole number from 1 to "
            "256, got 'lots'") in err
    assert not os.path.exists(data)  # nothing was started

    conf = write_conf(root, f"data = {data}\nzmq = off\napi-auth = maybe\n")
    rc, err = run_to_exit(["--config", conf, "--http", f"127.0.0.1:{port}"], server_env())
    assert rc == 2 and f"{conf}:3: api-auth: expected open or token, got 'maybe'" in err, err

    conf = write_conf(root, f"data = {data}\nlisten = 127.0.0.1:{port}\n")
    rc, err = run_to_exit(["--config", conf], server_env())
    assert rc == 2 and f"{conf}:2: unknown key 'listen' (known: data zmq key" in err, err

    missing = os.path.join(root, "nonexistent.conf")
    rc, err = run_to_exit(["--config", missing], server_env())
    assert rc == 2 and f"cannot read the configuration file {missing}" in err, err

    conf = write_conf(root, base_conf(data, port))
    rc, err = run_to_exit(["--config", conf], server_env(SIDETRACK_SRV_READ_ONLY="perhaps"))
    assert rc == 2 and "$SIDETRACK_SRV_READ_ONLY: read-only: expected true or false" in err, err
    rc, err = run_to_exit(["--config", conf, "--http-threads", "0"], server_env())
    assert rc == 2 and "--http-threads: expected a whole number from 1 to 256, got '0'" in err


def test_help_names_the_configuration_file():
    p = subprocess.run([SERVER, "--help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    assert "--config FILE" in p.stdout and "/etc/sidetrack/server.conf" in p.stdout
    assert "SIDETRACK_SRV_" in p.stdout
