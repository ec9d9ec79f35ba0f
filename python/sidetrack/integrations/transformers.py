"""Hugging Face transformers: SidetrackCallback, a TrainerCallback that writes into sidetrack.

    from transformers import Trainer
    from sidetrack.integrations.transformers import SidetrackCallback

    trainer = Trainer(model=model, args=args, train_dataset=ds,
                      callbacks=[SidetrackCallback()])
    trainer.train()

Records, from the main process only (state.is_world_process_zero): at on_train_begin the
TrainingArguments (args.to_dict()) and the model's config, flattened with "/", as params (the
arguments win where both have a key, as in MLflow's callback); at every on_log the numeric
entries of `logs` (loss, learning_rate, epoch, grad_norm, eval_* ...) at state.global_step;
with log_checkpoints=True each checkpoint directory as artifacts under
checkpoints/checkpoint-<step>/.

It logs into the active run if there is one, and otherwise starts a run that on_train_end
ends. Logging after training (trainer.evaluate()) goes to the same run. The Trainer's own
MLflow integration is unrelated: pass report_to="none" (or leave "mlflow" out of it) to keep it
from starting a run of its own.

Needs transformers: `pip install transformers`.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional

try:
    from transformers import TrainerCallback
except ImportError as e:
    raise ImportError(
        "sidetrack.integrations.transformers needs Hugging Face transformers, which could not "
        "be imported (" + str(e) + "): install it with `pip install transformers`; Debian has "
        "no package of it") from e

import sidetrack

from . import _common

__all__ = ["SidetrackCallback"]


def training_params(args: Any, model: Any = None) -> dict:
    """The params recorded at on_train_begin: the model config's entries, then
    args.to_dict()'s over them, flattened, valid keys, values cut to 6000 characters."""
    combined = {}
    config = getattr(model, "config", None) if model is not None else None
    if config is not None:
        to_dict = getattr(config, "to_dict", None)
        if callable(to_dict):
            combined.update(to_dict())
        elif isinstance(config, Mapping):
            combined.update(config)
    if args is not None:
        to_dict = getattr(args, "to_dict", None)
        combined.update(to_dict() if callable(to_dict) else vars(args))
    return _common.params_for_logging(combined)


class SidetrackCallback(TrainerCallback):
    """Logs a Trainer's arguments, model config and logs into sidetrack.

    experiment_name: of the run it starts (default: set_experiment's, $MLFLOW_EXPERIMENT_NAME,
                     "Default"). run_name: of that run (default: args.run_name).
    tags:            set on the run it starts.
    log_checkpoints: log each checkpoint directory (at on_save) as artifacts.
    """

    def __init__(self, experiment_name: Optional[str] = None, run_name: Optional[str] = None,
                 tags: Optional[Mapping[str, Any]] = None, log_checkpoints: bool = False) -> None:
        self._experiment_name = experiment_name
        self._run_name = run_name
        self._tags = dict(tags or {})
        self._log_checkpoints = log_checkpoints
        self._run: Optional[sidetrack.ActiveRun] = None   # the run it started, until ended
        self._run_id: Optional[str] = None                 # the run it logs into
        self._warned: set = set()

    @property
    def run_id(self) -> Optional[str]:
        return self._run_id

    def _setup(self, args: Any, state: Any, model: Any) -> None:
        if not getattr(state, "is_world_process_zero", True):
            return
        if self._run is not None and _common.is_active(self._run):
            run = self._run
        else:
            run = sidetrack.active_run()
            if run is None:
                self._run = run = _common.start_owned_run(
                    run_name=self._run_name or getattr(args, "run_name", None),
                    tags=self._tags, experiment_name=self._experiment_name, nested=False)
            else:
                self._run = None
        self._run_id = run.run_id
        params = training_params(args, model)
        if params:
            sidetrack.log_params(params, run_id=self._run_id)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._setup(args, state, model)

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if not getattr(state, "is_world_process_zero", True):
            return
        if self._run_id is None:   # evaluate() without train()
            self._setup(args, state, model)
        metrics, skipped = _common.metrics_for_logging(logs)
        for k in skipped:
            _common.warn_once(self._warned, k, f"SidetrackCallback: {k!r} of the Trainer's "
                              "logs is not one number (or not a valid key) and is not logged")
        if metrics:
            sidetrack.log_metrics(metrics, step=int(state.global_step), run_id=self._run_id)

    def on_save(self, args, state, control, **kwargs):
        if not (self._log_checkpoints and getattr(state, "is_world_process_zero", True)):
            return
        if self._run_id is None:
            self._setup(args, state, kwargs.get("model"))
        name = f"checkpoint-{state.global_step}"
        path = os.path.join(args.output_dir, name)
        if os.path.isdir(path):
            sidetrack.log_artifacts(path, f"checkpoints/{name}", run_id=self._run_id)

    def on_train_end(self, args, state, control, **kwargs):
        if not getattr(state, "is_world_process_zero", True):
            return
        run, self._run = self._run, None
        if run is not None and _common.is_active(run):
            _common.end_owned_run(run, "FINISHED")
