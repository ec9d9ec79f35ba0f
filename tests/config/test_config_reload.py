"""sidetrackd --config FILE and SIGHUP: a reload while a training job logs applies verbose
and fsync-interval, names what needs a restart, survives a broken file (FILE:LINE in the
log, old settings kept), and every logged point is stored."""
import os
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyutil  # noqa: E402

STEPS = 20000


def log_text(path):
    with open(path) as f:
        return f.read()


def points(data, run):
    p = pyutil.cli(data, "metrics", run, "train/loss", "--format", "csv")
    rows = [r for r in p.stdout.splitlines() if r.strip()]
    return len(rows) - 1  # the header


def test_sighup_reload_while_training():
    with pyutil.scratch("sidetrack-config-") as d:
        ring, data = os.path.join(d, "ring"), os.path.join(d, "data")
        conf, log = os.path.join(d, "agent.conf"), os.path.join(d, "agent.log")
        with open(conf, "w") as f:
            f.write(f"# test\ndata = {data}\nring-dir = {ring}\nfsync-interval = 100\n"
                    "verbose = no\nsystem-metrics-interval = 0\n")
        env = pyutil.agent_env()
        agent = pyutil.start([pyutil.AGENT, "--config", conf, "-i", "5"], log, env=env)
        try:
            pyutil.wait_for(lambda: os.path.exists(os.path.join(data, "agent.status")),
                            30, lambda: "sidetrackd to start\n" + log_text(log))
            first = pyutil.train(ring, 2000, "cfg", "before")

            results = {}
            job = threading.Thread(target=lambda: results.update(
                run=pyutil.train(ring, STEPS, "cfg", "during")))
            job.start()
            with open(conf, "w") as f:
                f.write(f"data = {data}\nring-dir = {ring}\nfsync-interval = 40\n"
                        "verbose = yes\nsystem-metrics-interval = 0\n")
            agent.send_signal(signal.SIGHUP)
            pyutil.wait_for(lambda: "reloaded " + conf in log_text(log), 20,
                            lambda: "the reload\n" + log_text(log))
            text = log_text(log)
            assert f"reloaded {conf}: fsync-interval 40, verbose 1" in text, text

            # A broken file: named with its line, the agent keeps running and its settings.
            with open(conf, "w") as f:
                f.write(f"data = {data}\n\nfsync-interval = soon\n")
            agent.send_signal(signal.SIGHUP)
            want = (f"{conf}:3: fsync-interval: expected a whole number of milliseconds "
                    "from 0 to 3600000, got 'soon'; keeping the old settings")
            pyutil.wait_for(lambda: want in log_text(log), 20,
                            lambda: "the broken file in the log\n" + log_text(log))

            # A key that needs a restart is named, and nothing else changes.
            with open(conf, "w") as f:
                f.write(f"data = {data}\nring-dir = {ring}-other\nfsync-interval = 40\n"
                        "verbose = yes\nsystem-metrics-interval = 0\n")
            agent.send_signal(signal.SIGHUP)
            pyutil.wait_for(lambda: f"ring-dir changed in {conf}: needs a restart"
                            in log_text(log), 20, lambda: "the restart note\n" + log_text(log))
            job.join(timeout=300)
            assert pyutil.alive(agent), log_text(log)
            second = results["run"]
            # Every point arrived: 2000 and STEPS values of "train/loss".
            pyutil.wait_for(lambda: points(data, first) == 2000 and points(data, second)
                            == STEPS, 30, lambda: "every point stored\n" + log_text(log))
        finally:
            code = pyutil.stop(agent)
        assert code == 0, log_text(log)
        assert "reloaded" in log_text(log)


def test_config_file_errors_stop_the_start():
    with pyutil.scratch("sidetrack-config-") as d:
        conf = os.path.join(d, "agent.conf")
        with open(conf, "w") as f:
            f.write("# x\nsync-intervall = 5\n")
        p = subprocess.run([pyutil.AGENT, "--config", conf], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 2
        assert f"{conf}:2: unknown key 'sync-intervall' (known: data ring-dir" in p.stderr
        p = subprocess.run([pyutil.AGENT, "--config", os.path.join(d, "none.conf")],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2
        assert "cannot read the configuration file" in p.stderr, p.stderr


def test_a_second_agent_on_the_same_store_refuses_to_start():
    """One writer per store: a second sidetrackd on the same --data says who holds it and
    exits 1 without touching it (under the sanitizers: without a fault on the way out)."""
    with pyutil.scratch("sidetrack-config-") as d:
        ring, data = os.path.join(d, "ring"), os.path.join(d, "data")
        log = os.path.join(d, "agent.log")
        first = pyutil.start([pyutil.AGENT, "--data", data, "--ring-dir", ring], log)
        try:
            lock = os.path.join(data, "agent.lock")
            pyutil.wait_for(lambda: os.path.exists(lock) and
                            open(lock).read().strip() == str(first.pid),
                            what="the first agent to take the store")
            p = subprocess.run([pyutil.AGENT, "--data", data, "--ring-dir", ring],
                               capture_output=True, text=True, timeout=30)
            assert p.returncode == 1, p.stderr
            assert f"another sidetrackd (pid {first.pid}) already uses {data}" in p.stderr
            assert "runtime error" not in p.stderr and "Sanitizer" not in p.stderr, p.stderr
            assert pyutil.alive(first)
        finally:
            pyutil.stop_all([("first agent", first)], lambda: pyutil.tail_logs([log]))


def test_sighup_applies_sync_pacing_and_the_system_metrics_interval():
    """sync-interval, sync-backlog and system-metrics-interval change without a restart (the
    replication thread and the sampler take the new values; system metrics off at start are
    switched on); a key the command line set keeps its value."""
    with pyutil.scratch("sidetrack-config-") as d:
        ring, data = os.path.join(d, "ring"), os.path.join(d, "data")
        conf, log = os.path.join(d, "agent.conf"), os.path.join(d, "agent.log")
        with open(conf, "w") as f:
            f.write(f"data = {data}\nring-dir = {ring}\nsync-interval = 1000\n"
                    "system-metrics-interval = 0\n")
        env = pyutil.agent_env()
        agent = pyutil.start([pyutil.AGENT, "--config", conf, "--sync-backlog", "500"], log,
                             env=env)
        try:
            pyutil.wait_for(lambda: os.path.exists(os.path.join(data, "agent.status")),
                            30, lambda: "sidetrackd to start\n" + log_text(log))
            with open(conf, "w") as f:
                f.write(f"data = {data}\nring-dir = {ring}\nsync-interval = 200\n"
                        "sync-backlog = 50\nsystem-metrics-interval = 1\n")
            agent.send_signal(signal.SIGHUP)
            pyutil.wait_for(lambda: "reloaded " + conf in log_text(log), 20,
                            lambda: "the reload\n" + log_text(log))
            text = log_text(log)
            assert (f"reloaded {conf}: sync-interval 200, system-metrics-interval 1"
                    in text), text
            assert f"sync-backlog changed in {conf}, but the command line sets it" in text
            assert "needs a restart" not in text, text
            # Off at start, on after the reload: the sampler was opened then.
            assert "recording system metrics every 1 s" in text, text
        finally:
            code = pyutil.stop(agent)
        assert code == 0, log_text(log)
