"""Metric values that are not plain Python numbers.

The C fast path reads float and int objects itself. Everything else comes here once per call:
numpy scalars and 0-d arrays (whose types are then handed back to C, which reads them with
float() from then on), torch tensors, and values of CUDA tensors, which must not be read on
the training thread: reading one waits for the GPU (50-150 µs a step on an H200).

A CUDA value is copied into a small pinned host buffer with a non-blocking copy, an event is
recorded behind the copy on the tensor's stream, and the pair goes to one reader thread. The
reader waits on the event (with the GIL released), reads the buffer and logs the point with the
step and the timestamp of the original call. While points of a key wait in the queue, later
points of that key, whatever their type, queue behind them (the C side checks a per-key
counter), so each key's points reach the ring in the order they were logged.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from typing import Any, Optional

_SENTINEL = object()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _Reader:
    """One thread that turns queued device values into logged points, in queue order."""

    def __init__(self) -> None:
        self._q: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._pool: dict = {}        # (device, dtype) -> [(host buffer, event), ...]
        self._inflight = 0           # items put and not yet done
        self._done = threading.Condition(self._lock)
        self.gate: Optional[threading.Event] = None  # tests hold the reader with it
        self.errors = 0

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="sidetrack-reader",
                                            daemon=True)
            self._thread.start()

    def _put(self, run, key, item) -> None:
        run._pending(key, 1)
        with self._lock:
            self._inflight += 1
            self._start()
        self._q.put((run, key) + item)

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
        self._put(run, key, (step, _now_ms() if ts is None else ts, host, event, slots))

    def submit_value(self, run, key, value: float, step, ts) -> None:
        self._put(run, key, (step, _now_ms() if ts is None else ts, value, None, None))

    def submit_later(self, run, key, tensor, step, ts) -> None:
        """A CPU tensor sent through the queue (what tests use to hold a key's order)."""
        self._put(run, key, (step, _now_ms() if ts is None else ts, tensor, None, None))

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is _SENTINEL:
                return
            run, key, step, ts, value, event, slots = item
            try:
                if self.gate is not None:
                    self.gate.wait()
                if event is not None:
                    event.synchronize()  # releases the GIL while the GPU finishes
                    v = value.item()
                    slots.append((value, event))
                elif isinstance(value, float):
                    v = value
                else:
                    v = float(value.item())
                if not run.ended:
                    run._log_deferred(key, v, 0 if step is None else step, ts)
            except Exception as e:  # a point must never take the reader down
                self.errors += 1
                print(f"sidetrack: metric {key!r} at step {step} not logged: {e}",
                      file=sys.stderr)
            finally:
                run._pending(key, -1)
                with self._lock:
                    self._inflight -= 1
                    if self._inflight == 0:
                        self._done.notify_all()

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Waits until every queued point is logged. True if it was, False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._inflight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._done.wait(left)
        return True

    def after_fork(self) -> None:
        # The child has no reader thread, and the parent's queue is not its business.
        self.__init__()


reader = _Reader()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=reader.after_fork)

# Tests set this to send CPU tensors through the reader, to exercise its ordering on
# machines without a GPU.
defer_cpu_tensors = False


def _is_torch_tensor(value) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def value_hook(run, key, value, step, ts) -> Optional[float]:
    """Called by the C extension for values it does not read itself. Returns the float to log
    now, or None when the point was queued."""
    if run._pending(key, 0):
        if _is_torch_tensor(value) and value.device.type == "cuda":
            reader.submit_cuda(run, key, value, step, ts)
        else:
            reader.submit_value(run, key, _to_float(key, value), step, ts)
        return None
    if _is_torch_tensor(value):
        if value.device.type == "cuda":
            reader.submit_cuda(run, key, value, step, ts)
            return None
        if value.numel() != 1:
            raise ValueError(f"metric {key!r}: a tensor of {value.numel()} elements is not "
                             "one value")
        if defer_cpu_tensors:
            reader.submit_later(run, key, value.detach().clone(), step, ts)
            return None
        return float(value.item())
    return _to_float(key, value)


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
