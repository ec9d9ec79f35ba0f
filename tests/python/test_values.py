"""Metric values: numpy, torch tensors, and the off-thread reader that keeps each key's order."""
import threading
import time

import pytest

import sidetrack
from sidetrack import _values


def test_numpy_values(node):
    np = pytest.importorskip("numpy", reason="numpy not installed (Debian: python3-numpy)")
    with sidetrack.start_run(capture_context=False) as run:
        vals = [np.float64(0.5), np.float32(0.25), np.float16(2.0), np.int64(3), np.int8(-4),
                np.uint32(5), np.array(6.5), np.array([7.0]), np.bool_(True)]
        for i, v in enumerate(vals):
            sidetrack.log_metric("np", v, step=np.int64(i))
        with pytest.raises(ValueError, match="3 elements"):
            sidetrack.log_metric("np", np.array([1.0, 2.0, 3.0]))
        with pytest.raises(TypeError, match="must be a number"):
            sidetrack.log_metric("np", np.str_("x"))
    pts = node.wait_metric(run.run_id, "np", len(vals))
    assert [p["value"] for p in pts] == [0.5, 0.25, 2.0, 3, -4, 5, 6.5, 7.0, 1]
    assert [p["step"] for p in pts] == list(range(len(vals)))


def test_torch_cpu_tensors(node):
    torch = pytest.importorskip("torch", reason="torch not installed (Debian: python3-torch)")
    with sidetrack.start_run(capture_context=False) as run:
        sidetrack.log_metric("t", torch.tensor(1.5), step=0)
        sidetrack.log_metric("t", torch.tensor([2.5]), step=1)
        sidetrack.log_metric("t", torch.tensor(3, dtype=torch.int32), step=2)
        x = torch.ones(2, requires_grad=True)
        sidetrack.log_metric("t", (x * 2).sum(), step=torch.tensor(3))  # a grad-carrying loss
        sidetrack.log_metrics({"t2": torch.tensor(4.0), "t3": 5.0}, step=4)
        with pytest.raises(ValueError, match="2 elements"):
            sidetrack.log_metric("t", torch.ones(2))
    pts = node.wait_metric(run.run_id, "t", 4)
    assert [(p["step"], p["value"]) for p in pts] == [(0, 1.5), (1, 2.5), (2, 3), (3, 4.0)]
    assert node.wait_metric(run.run_id, "t2", 1)[0]["value"] == 4.0


def test_deferred_points_keep_each_keys_order(node):
    """Points queued off the thread (what a CUDA value takes) hold back later points of the
    same key, whatever their type, while other keys go straight through."""
    torch = pytest.importorskip("torch", reason="torch not installed (Debian: python3-torch)")
    _values.reader.hold = True
    _values.defer_cpu_tensors = True
    _values.reader.sweep_after = 3600  # everything from this thread: one lane, one order
    try:
        with sidetrack.start_run(capture_context=False) as run:
            for i in range(0, 300, 3):
                sidetrack.log_metric("loss", torch.tensor(float(i)), step=i)  # queued
                sidetrack.log_metric("loss", float(i + 1), step=i + 1)        # must wait
                sidetrack.log_metric("loss", i + 2, step=i + 2)
                sidetrack.log_metric("lr", 0.1, step=i)                       # not held
            node.wait_metric(run.run_id, "lr", 100)
            assert node.metric(run.run_id, "loss") == []  # the queue is held
            assert len(_values.reader) == 300
            _values.reader.hold = False
            assert sidetrack.flush(timeout=30)
            sidetrack.log_metric("loss", 999.0, step=300)  # nothing pending: direct again
    finally:
        _values.defer_cpu_tensors = False
        _values.reader.hold = False
        _values.reader.sweep_after = 1.0
    pts = node.wait_metric(run.run_id, "loss", 301)
    assert [p["step"] for p in pts] == list(range(301))
    assert [p["value"] for p in pts] == [float(i) for i in range(300)] + [999.0]
    assert _values.reader.errors == 0


def test_end_run_waits_for_queued_points(node):
    torch = pytest.importorskip("torch", reason="torch not installed (Debian: python3-torch)")
    _values.defer_cpu_tensors = True
    _values.reader.hold = True
    try:
        run = sidetrack.start_run(capture_context=False)
        for i in range(50):
            sidetrack.log_metric("q", torch.tensor(float(i)), step=i)
        threading.Timer(0.2, setattr, (_values.reader, "hold", False)).start()
        t0 = time.monotonic()
        sidetrack.end_run()
        assert time.monotonic() - t0 >= 0.1  # it waited for the queue
        assert len(_values.reader) == 0
    finally:
        _values.defer_cpu_tensors = False
        _values.reader.hold = False
    pts = node.wait_metric(run.run_id, "q", 50)
    assert [p["value"] for p in pts] == [float(i) for i in range(50)]
    # The timestamp is the one of the call, not of the read.
    assert pts[0]["timestamp"] <= pts[-1]["timestamp"]


def test_sweeper_logs_points_left_waiting(node):
    """A loop that stops logging still gets its queued points stored, by the sweeper."""
    pytest.importorskip("torch", reason="torch not installed (Debian: python3-torch)")
    import torch

    _values.defer_cpu_tensors = True
    old = _values.reader.sweep_after
    _values.reader.sweep_after = 0.2
    try:
        with sidetrack.start_run(capture_context=False) as run:
            for i in range(5):
                sidetrack.log_metric("idle", torch.tensor(float(i)), step=i)
            node.wait_metric(run.run_id, "idle", 5, timeout=10)  # no further call needed
    finally:
        _values.defer_cpu_tensors = False
        _values.reader.sweep_after = old


def test_cuda_tensor_is_not_synced_on_the_training_thread(node):
    torch = pytest.importorskip("torch", reason="torch not installed (Debian: python3-torch)")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here: the CUDA path runs on a GPU machine "
                    "(sidetrack-bench python --cuda measures it there)")
    dev = torch.device("cuda")
    a = torch.randn(4096, 4096, device=dev)
    with sidetrack.start_run(capture_context=False) as run:
        torch.cuda.synchronize()
        losses = []
        t0 = time.perf_counter()
        for i in range(20):
            loss = (a @ a).mean()  # a few ms of GPU work per step
            losses.append(loss)
            sidetrack.log_metric("cuda_loss", loss, step=i)
        issued = time.perf_counter() - t0
        torch.cuda.synchronize()
        total = time.perf_counter() - t0
        # Issuing 20 matmuls and their logging returned well before the GPU finished them.
        assert issued < total
    pts = node.wait_metric(run.run_id, "cuda_loss", 20)
    assert [p["step"] for p in pts] == list(range(20))
    assert [p["value"] for p in pts] == pytest.approx([float(x) for x in losses], rel=1e-6)
