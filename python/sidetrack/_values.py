"""Metric values that are not plain Python numbers.

The C fast path reads float and int objects itself. Everything else comes here once per call:
numpy scalars and 0-d arrays (whose types are then handed back to C, which reads them with
float() from then on), torch tensors, and values of CUDA tensors, which must not be read on
the training thread: reading one waits for the GPU (50-150 µs a step on an H200).

A CUDA value is copied into a small pinned host buffer with a non-blocking copy, and an event
is recorded behind the copy on the tensor's stream; the point waits in a queue. The queue is
emptied by the training thread itself, at its next call for a queued key, taking only the
points whose event has completed (cudaEventQuery: no wait). Logging from the training thread
keeps every point of a key in that thread's lane of the ring, so the agent receives each key's
points in the order they were logged; and no other Python thread competes for the GIL in the
training loop. While points of a key wait, later points of that key, whatever their type,
queue behind them (the C side checks a per-key counter). A sweeper thread logs what has waited
longer than a second (a loop that stopped logging), and end_run()/flush() wait for the rest.
"""
from __future__ import annotations

import collections
import os
import sys
import threading
import time
from typing import Any, Optional


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Queue:
    """Points waiting for their value: FIFO, logged in order once ready."""

    def __init__(self) -> None:
        self._q: "collections.deque[Any]" = collections.deque()
        self._lock = threading.RLock()
        self._pool: dict = {}       # (device, dtype) -> [(host buffer, event), ...]
        self._sweeper: Optional[threading.Thread] = None
        self.sweep_after = 1.0      # seconds a ready point may wait for the training thread
        self.hold = False           # tests hold the queue to look at it
        self.errors = 0

    def __len__(self) -> int:
        return len(self._q)

    def _put(self, run, key, item) -> None:
        with self._lock:
            self._drain(wait=False)
            run._pending(key, 1)
            self._q.append((run, key) + item)
            if self._sweeper is None or not self._sweeper.is_alive():
                self._sweeper = threading.Thread(target=self._sweep, name="sidetrack-sweeper",
                                                 daemon=True)
                self._sweeper.start()

    def submit_cuda(self, run, key, tensor, step, ts) -> None:
        import torch

        t = tensor.detach()
        if t.numel() != 1:
            raise ValueError(f"metric {key!r}: a tensor of {t.numel()} elements is not one value")
        t = t.reshape(())
        slots = self._pool.setdefault((t.device, t.dtype), [])
        try:
            host, event = slots.pop()
        except IndexError:
            host = torch.empty((), dtype=t.dtype, pin_memory=True)
            event = torch.cuda.Event()
        host.copy_(t, non_blocking=True)
        event.record(torch.cuda.current_stream(t.device))
        self._put(run, key, (step, _now_ms() if ts is None else ts, host, event, slots,
                             time.monotonic()))

    def submit_value(self, run, key, value, step, ts) -> None:
        """A point that is ready (a number, or a CPU tensor) but must wait its turn."""
        self._put(run, key, (step, _now_ms() if ts is None else ts, value, None, None,
                             time.monotonic()))

    def _drain(self, wait: bool, older_than: Optional[float] = None) -> None:
        """Logs queued points from the front while they are ready (wait: waits for each)."""
        if self.hold:
            return
        with self._lock:
            while self._q:
                run, key, step, ts, value, event, slots, t0 = self._q[0]
                if older_than is not None and t0 > older_than:
                    return
                if event is not None:
                    if wait:
                        event.synchronize()
                    elif not event.query():
                        return
                self._q.popleft()
                try:
                    v = value.item() if event is not None else value
                    if event is not None:
                        slots.append((value, event))
                    if not isinstance(v, float):
                        v = float(v.item()) if hasattr(v, "item") else float(v)
                    if not run.ended:
                        run._log_deferred(key, v, 0 if step is None else step, ts)
                except Exception as e:  # one bad point must not stop the others
                    self.errors += 1
                    print(f"sidetrack: metric {key!r} at step {step} not logged: {e}",
                          file=sys.stderr)
                finally:
                    run._pending(key, -1)

    def poll(self) -> None:
        """Logs what is ready, without waiting (the training thread's turn)."""
        if self._q:
            self._drain(wait=False)

    def _sweep(self) -> None:
        while True:
            time.sleep(min(self.sweep_after / 4, 0.25))
            if self._q:
                self._drain(wait=False, older_than=time.monotonic() - self.sweep_after)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every queued point is logged (end_run, flush, exit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._q:
            if self.hold:
                if deadline is not None and time.monotonic() > deadline:
                    return False
                time.sleep(0.01)
                continue
            self._drain(wait=True)
        return True

    def after_fork(self) -> None:
        # The child's copy of the queue belongs to the parent's runs and GPU context.
        self.__init__()


reader = _Queue()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reader.after_fork)

# Tests set this to send CPU tensors through the reader, to exercise its ordering on
# machines without a GPU.
defer_cpu_tensors = False


def _is_torch_tensor(value) -> bool:
    torch = sys.modules.get("torch")  # torch is never imported here: only looked at
    return torch is not None and isinstance(value, torch.Tensor)


def value_hook(run, key, value, step, ts) -> Optional[float]:
    """Called by the C extension for values it does not read itself, and for every point of
    a key that has points queued. Returns the float to log now, or None when the point was
    queued."""
    if _is_torch_tensor(value):
        if value.is_cuda:
            reader.submit_cuda(run, key, value, step, ts)
            return None
        try:
            v = float(value.item())  # one element, or it raises (torch checks the count)
        except (RuntimeError, ValueError):
            raise ValueError(f"metric {key!r}: a tensor of {value.numel()} elements is not "
                             "one value") from None
        if defer_cpu_tensors or run._pending(key, 0):
            reader.submit_value(run, key, v, step, ts)
            return None
        return v
    v = _to_float(key, value)
    if run._pending(key, 0):
        reader.submit_value(run, key, v, step, ts)
        return None
    reader.poll()
    return v


def _to_float(key, value) -> float:
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"metric {key!r}: value must be a number, not {type(value).__name__}")
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, (np.generic, np.ndarray)):
        if isinstance(value, np.ndarray) and value.size != 1:
            raise ValueError(f"metric {key!r}: an array of {value.size} elements is not one "
                             "value")
        if isinstance(value, np.generic) and not isinstance(value, (np.number, np.bool_)):
            raise TypeError(f"metric {key!r}: value must be a number, not {type(value).__name__}")
        if isinstance(value, np.generic):
            from . import _sidetrack

            _sidetrack._fast_type(type(value))  # C reads this type itself from now on
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {key!r}: value must be a number, not "
                        f"{type(value).__name__}") from None
