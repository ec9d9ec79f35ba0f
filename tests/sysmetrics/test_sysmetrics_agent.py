"""sidetrackd --system-metrics-interval: a real agent reading a fake proc/ and sys/ tree
($SIDETRACK_PROC_ROOT) records MLflow's system/ metrics on a run while it is RUNNING, and
none on a run that had finished before; its network figures count the physical NIC, not the
veth, bridge or lo beside it."""
import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyutil  # noqa: E402

TRAINER = pyutil.built("tests", "sysmetrics", "sysm_trainer")


def fake_tree(root, jiffies):
    os.makedirs(os.path.join(root, "proc", "net"), exist_ok=True)
    with open(os.path.join(root, "proc", "meminfo"), "w") as f:
        f.write("MemTotal: 2000000 kB\nMemFree: 1 kB\nMemAvailable: 500000 kB\n")
    with open(os.path.join(root, "proc", "net", "dev"), "w") as f:
        f.write("Inter-| Receive | Transmit\n face |bytes packets|bytes packets\n"
                "    lo: 7 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n"
                "  eth0: 1000 1 0 0 0 0 0 0 2000 1 0 0 0 0 0 0\n")
    write_stat(root, jiffies)
    net = os.path.join(root, "sys", "class", "net")
    for name, physical in (("eth0", True), ("lo", False), ("docker0", False),
                           ("veth9a8b7c", False)):
        os.makedirs(os.path.join(net, name, "statistics"))
        if physical:
            os.symlink("../../../0000:03:00.0", os.path.join(net, name, "device"))
        write_bytes(root, name, 1000, 2000)


def write_bytes(root, name, rx, tx):
    d = os.path.join(root, "sys", "class", "net", name, "statistics")
    for f, v in (("rx_bytes", rx), ("tx_bytes", tx)):
        with open(os.path.join(d, f), "w") as out:
            out.write(f"{v}\n")


def write_stat(root, n):
    """Each call adds 100 jiffies, a quarter of them busy: the agent sees 25 %."""
    tmp = os.path.join(root, "proc", "stat.tmp")
    with open(tmp, "w") as f:
        f.write(f"cpu  {25 * n} 0 0 {75 * n} 0 0 0 0 0 0\n")
    os.replace(tmp, os.path.join(root, "proc", "stat"))


def system_metrics(data, run_id):
    p = pyutil.cli(data, "runs", "show", run_id, "--json", check=False)
    if p.returncode != 0:
        return {}
    m = json.loads(p.stdout).get("metrics", {})
    if isinstance(m, list):
        m = {x["key"]: x["latest"]["value"] for x in m}
    return {k: v for k, v in m.items() if k.startswith("system/")}


def test_agent_records_system_metrics_on_running_runs_only():
    with pyutil.scratch("sidetrack-sysm-") as d:
        root, ring, data = (os.path.join(d, x) for x in ("root", "ring", "data"))
        os.makedirs(ring)
        fake_tree(root, 1)
        stop = threading.Event()

        def tick():
            n = 2
            while not stop.wait(0.2):
                write_stat(root, n)
                n += 1
        ticker = threading.Thread(target=tick)
        ticker.start()
        env = dict(os.environ, SIDETRACK_PROC_ROOT=root, SIDETRACK_RING_DIR=ring,
                   SIDETRACK_LANE_MB="8")
        agent = subprocess.Popen([pyutil.AGENT, "-d", data, "-r", ring, "-i", "5", "-f", "0",
                                  "--system-metrics-interval", "1"], env=env,
                                 stderr=subprocess.PIPE, text=True)
        trainer = None
        try:
            pyutil.wait_for(lambda: os.path.exists(os.path.join(data, "agent.status")),
                            30, "sidetrackd to start")
            # The agent took its first network reading before writing agent.status: from
            # here the NIC moves 3 MB in, and the veth and bridge carry the same bytes again.
            write_bytes(root, "eth0", 3001000, 2000)
            write_bytes(root, "veth9a8b7c", 3001000, 2000)
            write_bytes(root, "docker0", 3001000, 2000)
            write_bytes(root, "lo", 50001000, 50002000)
            done = pyutil.train(ring, 10, "sysm", "finished-before", lane_mb="8")
            trainer = subprocess.Popen([TRAINER, "6"], env=env, stdout=subprocess.PIPE,
                                       text=True)
            run = trainer.stdout.readline().strip()
            assert len(run) == 32, run
            keys = ["system/cpu_utilization_percentage",
                    "system/system_memory_usage_megabytes",
                    "system/system_memory_usage_percentage",
                    "system/disk_usage_percentage", "system/disk_usage_megabytes",
                    "system/disk_available_megabytes", "system/network_receive_megabytes",
                    "system/network_transmit_megabytes"]
            got = pyutil.wait_for(
                lambda: (lambda m: m if all(k in m for k in keys) and
                         m["system/network_receive_megabytes"] > 0 else None)(
                    system_metrics(data, run)), 20, "system metrics on the running run")
            assert got["system/cpu_utilization_percentage"] == 25.0
            assert got["system/system_memory_usage_percentage"] == 75.0
            assert got["system/system_memory_usage_megabytes"] == 1500000 * 1024 / 1e6
            assert got["system/network_receive_megabytes"] == 3.0  # eth0 only
            assert got["system/network_transmit_megabytes"] == 0.0
            assert not any(k.startswith("system/gpu_") for k in got)  # no NVML here
            assert trainer.wait(timeout=30) == 0
            assert system_metrics(data, done) == {}
        finally:
            stop.set()
            ticker.join()
            if trainer and trainer.poll() is None:
                trainer.kill()
                trainer.wait()
            agent.terminate()
            _, err = agent.communicate(timeout=30)
        assert agent.returncode == 0, err
        assert "recording system metrics every 1 s" in err


def memory_steps(data, run_id):
    p = pyutil.cli(data, "metrics", run_id, "system/system_memory_usage_percentage",
                   "--format", "csv", check=False)
    if p.returncode != 0:
        return []
    return [int(line.split(",")[0]) for line in p.stdout.splitlines()[1:] if line.strip()]


def test_steps_go_on_after_an_agent_restart():
    """A run that trains through an agent restart: its system metrics' steps go on from where
    the store has them, instead of starting again at 0."""
    with pyutil.scratch("sidetrack-sysm-") as d:
        root, ring, data = (os.path.join(d, x) for x in ("root", "ring", "data"))
        os.makedirs(ring)
        fake_tree(root, 1)
        env = dict(os.environ, SIDETRACK_PROC_ROOT=root, SIDETRACK_RING_DIR=ring,
                   SIDETRACK_LANE_MB="8")
        args = [pyutil.AGENT, "-d", data, "-r", ring, "-i", "5",
                "--system-metrics-interval", "1"]
        log = os.path.join(d, "agent.log")
        agent = pyutil.start(args, log, env=env)
        trainer = subprocess.Popen([TRAINER, "30"], env=env, stdout=subprocess.PIPE, text=True)
        try:
            run = trainer.stdout.readline().strip()
            pyutil.wait_for(lambda: len(memory_steps(data, run)) >= 2, 20,
                            lambda: "two samples\n" + pyutil.tail_logs([log]))
            assert pyutil.stop(agent) == 0
            before = memory_steps(data, run)
            agent = pyutil.start(args, log, env=env)
            pyutil.wait_for(lambda: len(memory_steps(data, run)) >= len(before) + 2, 20,
                            lambda: "two more samples\n" + pyutil.tail_logs([log]))
            steps = memory_steps(data, run)
            assert steps == list(range(len(steps))), steps
        finally:
            trainer.kill()
            trainer.wait()
            code = pyutil.stop(agent)
        assert code == 0, pyutil.tail_logs([log])
