"""python -m sidetrack.bench: what one log_metric call costs a Python training loop.

Prints JSON lines (scenario, ns_per_call, ...), measured side by side in one run so that the
ratios hold on a noisy machine:

  py-list-append   the floor: list.append((key, value, step)), what any in-process buffer costs
  py-list-append-1k  the same into a list emptied every 1024 appends (a stricter floor: no
                   memory touched for the first time, tuples freed as they go)
  py-float         sidetrack.log_metric(key, float, step=i)
  py-numpy         the same with a numpy.float32 scalar
  py-tensor        the same with a one-element CPU torch tensor
  py-tensorboard   torch.utils.tensorboard SummaryWriter.add_scalar (when tensorboard is there)
  py-cuda-loop     with --cuda: step time of a small PyTorch training loop that logs its CUDA
                   loss every step, over the same loop without logging (step_ratio)

Each scenario runs --reps times, interleaved with the others, and the median is reported. An
agent (sidetrackd) drains a scratch ring into a scratch store during the run, as on a node;
the garbage collector is off inside the timed loops, which makes the list.append floor as
cheap as it gets (with it on, appending a million tuples costs about twice as much).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional


def _emit(obj: Dict) -> None:
    print(json.dumps(obj), flush=True)


def _timed(fn: Callable[[int], None], n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter_ns()
        fn(n)
        return (time.perf_counter_ns() - t0) / n
    finally:
        gc.enable()


def _loops(key: str):
    import sidetrack

    log = sidetrack.log_metric
    out: Dict[str, Callable[[int], None]] = {}

    def list_append(n: int) -> None:
        buf: List = []
        app = buf.append
        k, v = key, 0.5
        for i in range(n):
            app((k, v, i))

    def list_append_small(n: int) -> None:
        # The same appends into a buffer emptied every 1024 points: no first-touch memory,
        # tuples freed as they go (the strictest floor; reported beside the one).
        buf: List = []
        app, clear = buf.append, buf.clear
        k, v = key, 0.5
        for i in range(n):
            app((k, v, i))
            if not i & 1023:
                clear()

    def logging(key: str, value) -> Callable[[int], None]:
        def loop(n: int, k=key, v=value, log=log) -> None:  # locals, as in the floors
            for i in range(n):
                log(k, v, step=i)
        return loop

    out["py-list-append"] = list_append
    out["py-list-append-1k"] = list_append_small
    out["py-float"] = logging(key, 0.5)
    try:
        import numpy as np

        out["py-numpy"] = logging(key + "_np", np.float32(0.5))
    except ImportError:
        _emit({"scenario": "py-numpy", "skipped": "numpy is not installed"})
    try:
        import torch

        out["py-tensor"] = logging(key + "_t", torch.tensor(0.5))
    except ImportError:
        _emit({"scenario": "py-tensor", "skipped": "torch is not installed"})
    return out


def _tensorboard(n: int, reps: int) -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception as e:  # ImportError, or tensorboard missing under torch
        _emit({"scenario": "py-tensorboard",
               "skipped": f"torch.utils.tensorboard is not usable here ({e.__class__.__name__}:"
                          f" {e})"})
        return
    d = tempfile.mkdtemp(prefix="sidetrack-bench-tb-")
    try:
        w = SummaryWriter(d)

        def add(k: int) -> None:
            for i in range(k):
                w.add_scalar("loss", 0.5, i)

        runs = [_timed(add, n) for _ in range(reps)]
        w.close()
        _emit({"scenario": "py-tensorboard", "ns_per_call": round(statistics.median(runs), 1),
               "ops": n, "reps": reps})
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _cuda_loop(steps: int, reps: int) -> None:
    try:
        import torch
    except ImportError:
        _emit({"scenario": "py-cuda-loop", "skipped": "torch is not installed"})
        return
    if not torch.cuda.is_available():
        _emit({"scenario": "py-cuda-loop", "skipped": "no CUDA device"})
        return
    import sidetrack

    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.ReLU(),
                                torch.nn.Linear(2048, 2048), torch.nn.ReLU(),
                                torch.nn.Linear(2048, 10)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(512, 1024, device=dev)
    y = torch.randint(0, 10, (512,), device=dev)
    lossf = torch.nn.CrossEntropyLoss()

    def loop(log: bool) -> float:
        torch.cuda.synchronize()
        t0 = time.perf_counter_ns()
        for i in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(x), y)
            loss.backward()
            opt.step()
            if log:
                sidetrack.log_metric("loss", loss, step=i)
        torch.cuda.synchronize()
        t = (time.perf_counter_ns() - t0) / steps
        if log:
            sidetrack.flush()
        return t

    loop(False)
    loop(True)  # warm up both (allocator, pinned pool, cuBLAS handles)
    base, logged = [], []
    for _ in range(reps):
        base.append(loop(False))
        logged.append(loop(True))
    b, l = statistics.median(base), statistics.median(logged)
    _emit({"scenario": "py-cuda-loop", "step_ns_base": round(b), "step_ns_logged": round(l),
           "step_ratio": round(l / b, 4), "steps": steps, "reps": reps,
           "gpu": torch.cuda.get_device_name(0)})


def _start_agent(agent: str, ring: str, data: str) -> subprocess.Popen:
    p = subprocess.Popen([agent, "--data", data, "--ring-dir", ring], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(0.2)
    if p.poll() is not None:
        raise SystemExit(f"sidetrack.bench: sidetrackd exited at start: {p.stderr.read()}")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sidetrack.bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", type=int, default=0, help="calls per scenario and rep "
                    "(default 1,000,000; --quick 50,000)")
    ap.add_argument("--reps", type=int, default=0, help="repetitions (default 7; --quick 2)")
    ap.add_argument("--quick", action="store_true", help="a few seconds in all (smoke test)")
    ap.add_argument("--cuda", action="store_true", help="also the CUDA training-loop scenario")
    ap.add_argument("--agent", default=os.environ.get("SIDETRACK_AGENT") or
                    shutil.which("sidetrackd"),
                    help="sidetrackd to drain the scratch ring (default $SIDETRACK_AGENT, "
                         "else the PATH)")
    a = ap.parse_args(argv)
    n = a.ops or (50_000 if a.quick else 1_000_000)
    reps = a.reps or (2 if a.quick else 7)
    if not a.agent or not os.access(a.agent, os.X_OK):
        ap.error("no sidetrackd found: pass --agent PATH or set $SIDETRACK_AGENT")

    root = tempfile.mkdtemp(prefix="sidetrack-bench-py-", dir="/dev/shm"
                            if os.path.isdir("/dev/shm") else None)
    data = tempfile.mkdtemp(prefix="sidetrack-bench-py-store-")
    ring = os.path.join(root, "ring")
    os.makedirs(ring)
    os.environ["SIDETRACK_RING_DIR"] = ring
    os.environ.setdefault("SIDETRACK_LANE_MB", "64")
    os.environ["SIDETRACK_CAPTURE"] = "0"
    agent = _start_agent(a.agent, ring, data)
    try:
        import sidetrack

        _emit({"scenario": "python-env", "python": platform.python_version(),
               "implementation": platform.python_implementation(),
               "cpu": _cpu_model(), "cores": os.cpu_count(), "ops": n, "reps": reps})
        sidetrack.start_run(experiment_name="sidetrack-bench", run_name="python")
        loops = _loops("loss")
        results: Dict[str, List[float]] = {k: [] for k in loops}
        for _ in range(reps):
            for name, fn in loops.items():
                results[name].append(_timed(fn, n))
        floor = statistics.median(results["py-list-append"])
        floor_1k = statistics.median(results["py-list-append-1k"])
        for name, runs in results.items():
            med = statistics.median(runs)
            line = {"scenario": name, "ns_per_call": round(med, 1), "ops": n, "reps": reps,
                    "ns_min": round(min(runs), 1), "ns_max": round(max(runs), 1)}
            if not name.startswith("py-list-append"):
                line["vs_list_append"] = round(med / floor, 3)
                line["vs_list_append_1k"] = round(med / floor_1k, 3)
            _emit(line)
        _tensorboard(min(n, 100_000), reps)
        if a.cuda:
            _cuda_loop(200 if a.quick else 1000, reps)
        stats = sidetrack.get_stats()
        sidetrack.end_run()
        _emit({"scenario": "delivery", **stats})
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(60)
        except subprocess.TimeoutExpired:
            agent.kill()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
