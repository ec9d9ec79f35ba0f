"""systemd integration: both daemons speak sd_notify(3) to a NOTIFY_SOCKET this test opens,
and the generated unit files pass `systemd-analyze verify`.

The agent's watchdog pings come from its main loop: SIGSTOP (a stand-in for a hung loop)
must stop them, SIGCONT bring them back."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyutil  # noqa: E402
from pyutil import AGENT, BUILD, SERVER, free_port, listening  # noqa: E402

WATCHDOG_USEC = 400000  # pings every 0.2 s


@pytest.fixture
def scratch():
    d = tempfile.mkdtemp(prefix="sidetrack-systemd-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Notify:
    """The receiving end of NOTIFY_SOCKET: a datagram socket at a path or, for '@name', in
    the abstract namespace."""

    def __init__(self, address):
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.got = []  # every message received, in order

    def recv(self, timeout):
        """The messages arriving within timeout seconds."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            out.extend(data.decode().split("\n"))
        self.got.extend(out)
        return out

    def wait(self, pred, timeout, what):
        """Reads until a message satisfies pred; that message."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            for m in data.decode().split("\n"):
                self.got.append(m)
                if pred(m):
                    return m
        raise AssertionError(f"timed out waiting for {what}; got {self.got[-20:]}")

    def drain(self):
        self.sock.setblocking(False)
        try:
            while True:
                self.got.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            pass

    def close(self):
        self.sock.close()


def notify_env(address, **extra):
    env = dict(os.environ, NOTIFY_SOCKET=address, WATCHDOG_USEC=str(WATCHDOG_USEC))
    env.pop("WATCHDOG_PID", None)
    env.update(extra)
    return env


def stopped(pid):
    """The process is in the stopped state (T) by now."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")


def cleanup(proc):
    """After a failed assertion: the process must not outlive the test (nor stay stopped)."""
    if pyutil.alive(proc):
        proc.send_signal(signal.SIGCONT)
        pyutil.kill(proc)


def start_agent(scratch, env):
    ring, data = os.path.join(scratch, "ring"), os.path.join(scratch, "data")
    os.makedirs(ring, exist_ok=True)
    log = os.path.join(scratch, "agent.log")
    return pyutil.start([AGENT, "-d", data, "-r", ring, "-i", "5", "-f", "0"], log, env=env), log


def test_agent_notify_and_watchdog(scratch):
    n = Notify(os.path.join(scratch, "notify.sock"))
    proc, log = start_agent(scratch, notify_env(n.address))
    try:
        n.wait(lambda m: m == "READY=1", 60, "READY=1 from sidetrackd")
        status = n.wait(lambda m: m.startswith("STATUS="), 30, "a STATUS= line")
        assert "records/s" in status and "lanes" in status and "no sync" in status, status
        msgs = n.recv(3.0)
        assert msgs.count("WATCHDOG=1") >= 3, msgs  # every 0.2 s: about 15

        # A hung loop: no pings while the agent is stopped.
        proc.send_signal(signal.SIGSTOP)
        pyutil.wait_for(lambda: stopped(proc.pid), 10, "the agent to stop")
        n.drain()  # sent before it stopped
        msgs = n.recv(1.5)
        assert "WATCHDOG=1" not in msgs, msgs
        proc.send_signal(signal.SIGCONT)
        n.wait(lambda m: m == "WATCHDOG=1", 10, "pings again after SIGCONT")

        proc.send_signal(signal.SIGTERM)
        n.wait(lambda m: m == "STOPPING=1", 30, "STOPPING=1")
        assert proc.wait(60) == 0, pyutil.tail_logs([log])
    finally:
        cleanup(proc)
        n.close()


def test_agent_watchdog_of_another_pid(scratch):
    """$WATCHDOG_PID naming another process: the watchdog is not ours, no pings."""
    n = Notify(os.path.join(scratch, "notify.sock"))
    proc, log = start_agent(scratch, notify_env(n.address, WATCHDOG_PID="1"))
    try:
        n.wait(lambda m: m == "READY=1", 60, "READY=1 from sidetrackd")
        msgs = n.recv(1.5)
        assert "WATCHDOG=1" not in msgs, msgs
        assert any(m.startswith("STATUS=") for m in n.got), n.got
        assert pyutil.stop(proc) == 0, pyutil.tail_logs([log])
    finally:
        cleanup(proc)
        n.close()


def test_agent_without_notify_socket(scratch):
    """No $NOTIFY_SOCKET (not under systemd): the agent runs as before."""
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    proc, log = start_agent(scratch, env)
    try:
        pyutil.wait_for(lambda: os.path.exists(os.path.join(scratch, "data", "agent.status")),
                        60, "sidetrackd to start")
        assert pyutil.stop(proc) == 0, pyutil.tail_logs([log])
    finally:
        cleanup(proc)


def test_server_notify_abstract_socket(scratch):
    """sidetrack-server, and an abstract-namespace NOTIFY_SOCKET ('@name')."""
    n = Notify(f"@sidetrack-test-{os.getpid()}-{os.path.basename(scratch)}")
    port = free_port()
    log = os.path.join(scratch, "server.log")
    proc = pyutil.start([SERVER, "--data", os.path.join(scratch, "srv"), "--http",
                         f"127.0.0.1:{port}", "--zmq", "off", "--web", "off"], log,
                        env=notify_env(n.address))
    try:
        n.wait(lambda m: m == "READY=1", 60, "READY=1 from sidetrack-server")
        assert listening(port), "READY=1 came before the server listened"
        status = n.wait(lambda m: m.startswith("STATUS="), 30, "a STATUS= line")
        assert "batches" in status, status
        msgs = n.recv(3.0)
        assert msgs.count("WATCHDOG=1") >= 3, msgs
        proc.send_signal(signal.SIGTERM)
        n.wait(lambda m: m == "STOPPING=1", 30, "STOPPING=1")
        assert proc.wait(60) == 0, pyutil.tail_logs([log])
    finally:
        cleanup(proc)
        n.close()


UNITS = ["sidetrackd.service", "sidetrack-server.service"]


def verify(paths, cwd):
    """systemd-analyze verify: its complaints about these files (it exits 0 on most)."""
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="warning")
    p = subprocess.run(["systemd-analyze", "verify", "--man=no"] + paths, cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=120)
    names = [os.path.basename(x) for x in paths]
    bad = [line for line in p.stderr.splitlines() if any(nm in line for nm in names)]
    return p.returncode, bad, p.stderr


def test_units_verify(scratch):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    # verify wants ExecStart='s programs to exist: the installed paths, moved to this build.
    bindir = os.path.join(scratch, "sbin")
    os.makedirs(bindir)
    os.symlink(AGENT, os.path.join(bindir, "sidetrackd"))
    os.symlink(SERVER, os.path.join(bindir, "sidetrack-server"))
    paths = []
    for u in UNITS:
        with open(os.path.join(BUILD, "systemd", u)) as f:
            text = f.read()
        for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "User=sidetrack",
                    "ProtectSystem=strict", "NoNewPrivileges=yes"):
            assert key in text, f"{u} lacks {key}"
        text, k = re.subn(r"^ExecStart=\S*/(sidetrackd|sidetrack-server) ",
                          lambda m: f"ExecStart={bindir}/{m.group(1)} ", text, flags=re.M)
        assert k == 1, f"{u}: no ExecStart= to rewrite"
        path = os.path.join(scratch, u)
        with open(path, "w") as f:
            f.write(text)
        paths.append(path)
    rc, bad, err = verify(paths, scratch)
    assert rc == 0 and not bad, err

    # The check above catches a mistake: the same unit with an unknown key.
    broken = os.path.join(scratch, "sidetrack-broken.service")
    with open(paths[0]) as f:
        text = f.read()
    with open(broken, "w") as f:
        f.write(text.replace("[Service]\n", "[Service]\nProtectSystem=bogus\n"))
    rc, bad, err = verify([broken], scratch)
    assert rc != 0 or bad, err


def test_sysusers_and_tmpfiles_entries():
    """The sysusers.d and tmpfiles.d entries parse (as systemd-sysusers and systemd-tmpfiles
    read them, without applying anything)."""
    sysusers = os.path.join(BUILD, "systemd", "sidetrack.sysusers")
    tmpfiles = os.path.join(BUILD, "systemd", "sidetrack.tmpfiles")
    with open(sysusers) as f:
        assert re.search(r"^u sidetrack ", f.read(), re.M)
    with open(tmpfiles) as f:
        assert re.search(r"^d /dev/shm/sidetrack 1777 ", f.read(), re.M)
    if shutil.which("systemd-sysusers"):
        with tempfile.TemporaryDirectory() as root:  # an empty system: nothing is written
            p = subprocess.run(["systemd-sysusers", "--dry-run", f"--root={root}", sysusers],
                               capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        assert "Creating user 'sidetrack'" in p.stderr + p.stdout, p.stderr
