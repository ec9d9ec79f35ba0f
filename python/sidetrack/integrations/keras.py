"""Keras: SidetrackCallback, a Keras callback that writes into sidetrack (Keras 3, or tf.keras
when only TensorFlow is there).

    from sidetrack.integrations.keras import SidetrackCallback

    model.fit(x, y, epochs=10, batch_size=64,
              callbacks=[SidetrackCallback(params={"batch_size": 64})])

Records: at on_train_begin the params epochs, steps (per epoch), batch_size and samples where
Keras gives them, the optimizer's class name (optimizer_name) and learning rate (a number, or
a schedule's class name and config under learning_rate/...), and the params= given; at every
on_epoch_end the numeric entries of `logs` (loss, accuracy, val_loss ...) at step=epoch; with
log_every_n_steps=N, every N-th training batch's logs as batch/<key> at the global batch count
(counted from the start of the run it started, or of the first fit into the active run).

It logs into the active run if there is one, and otherwise starts a run that on_train_end
ends (fit() raising leaves it to end at exit, FAILED).

Needs Keras: `pip install keras` (Keras 3, with a backend: tensorflow, jax or torch) or
`pip install tensorflow` (tf.keras).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

try:
    import keras as _keras
    _Callback = _keras.callbacks.Callback
except ImportError as e1:
    try:
        from tensorflow import keras as _keras
        _Callback = _keras.callbacks.Callback
    except ImportError as e:
        raise ImportError(
            "sidetrack.integrations.keras needs Keras, which could not be imported (keras: "
            + str(e1) + "; tensorflow: " + str(e) + "): install it with `pip install keras` "
            "(Keras 3, plus a backend such as `pip install tensorflow`) or `pip install "
            "tensorflow` (tf.keras); Debian has no package of either") from e

import sidetrack

from . import _common

__all__ = ["SidetrackCallback"]


class SidetrackCallback(_Callback):
    """Logs a Keras fit's params and metrics into sidetrack.

    experiment_name, run_name, tags: of the run it starts when no run is active.
    params:            more params to record at on_train_begin (batch_size, which Keras 3
                       does not tell callbacks, for one).
    log_every_epoch:   log the epoch logs at on_epoch_end (default True).
    log_every_n_steps: also log every N-th training batch's logs (as batch/<key>).
    """

    def __init__(self, experiment_name: Optional[str] = None, run_name: Optional[str] = None,
                 tags: Optional[Mapping[str, Any]] = None,
                 params: Optional[Mapping[str, Any]] = None, log_every_epoch: bool = True,
                 log_every_n_steps: Optional[int] = None) -> None:
        super().__init__()
        if log_every_n_steps is not None and (not isinstance(log_every_n_steps, int)
                                              or log_every_n_steps < 1):
            raise ValueError(f"log_every_n_steps={log_every_n_steps!r}: a positive int or None")
        self._experiment_name = experiment_name
        self._run_name = run_name
        self._tags = dict(tags or {})
        self._extra_params = dict(params or {})
        self._log_every_epoch = log_every_epoch
        self._every = log_every_n_steps
        self._run: Optional[sidetrack.ActiveRun] = None   # the run it started, until ended
        self._run_id: Optional[str] = None
        self._global_step = 0
        self._warned: set = set()
        if log_every_n_steps is None:
            # Keras skips per-batch work (converting the logs each batch) when no callback
            # overrides the batch hooks; it tells by the base class's _is_default mark.
            self.on_train_batch_end = _Callback.on_train_batch_end.__get__(self)

    @property
    def run_id(self) -> Optional[str]:
        return self._run_id

    def _log(self, logs: Optional[Mapping[str, Any]], step: int, prefix: str = "") -> None:
        if self._run_id is None:
            return
        metrics, skipped = _common.metrics_for_logging(logs, prefix)
        for k in skipped:
            _common.warn_once(self._warned, k, f"SidetrackCallback: {k!r} of the Keras logs is "
                              "not one number (or not a valid key) and is not logged")
        if metrics:
            sidetrack.log_metrics(metrics, step=step, run_id=self._run_id)

    def on_train_begin(self, logs=None):
        run = sidetrack.active_run()
        if run is None:
            self._run = run = _common.start_owned_run(
                run_name=self._run_name, tags=self._tags,
                experiment_name=self._experiment_name, nested=False)
            self._global_step = 0
        elif run.run_id != self._run_id:
            self._run = None
            self._global_step = 0
        self._run_id = run.run_id
        try:
            optimizer = getattr(self.model, "optimizer", None)
        except Exception:
            optimizer = None
        p = _common.keras_params(getattr(self, "params", None) or {}, optimizer)
        p.update(self._extra_params)
        params = _common.params_for_logging(p)
        if params:
            sidetrack.log_params(params, run_id=self._run_id)

    def on_epoch_end(self, epoch, logs=None):
        if self._log_every_epoch:
            self._log(logs, int(epoch))

    def on_train_batch_end(self, batch, logs=None):
        if self._every is None:
            return
        self._global_step += 1
        if self._global_step % self._every == 0:
            self._log(logs, self._global_step, "batch/")

    def on_train_end(self, logs=None):
        run, self._run = self._run, None
        if run is not None and _common.is_active(run):
            _common.end_owned_run(run, "FINISHED")
