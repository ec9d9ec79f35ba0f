"""PyTorch Lightning: SidetrackLogger, a Lightning logger that writes into sidetrack.

    import lightning as L
    from sidetrack.integrations.lightning import SidetrackLogger

    trainer = L.Trainer(max_epochs=10, logger=SidetrackLogger(run_name="baseline"))
    trainer.fit(model, datamodule=dm)

Records: the hyperparameters Lightning hands to log_hyperparams (save_hyperparameters()),
flattened with "/" ("optimizer/lr"), as params; everything self.log() logs, at the trainer's
global step; the checkpoints of ModelCheckpoint as artifacts under checkpoints/ with
log_model=True (at the end) or log_model="all" (as they are saved). The run is started on first
use, as a child of the active run if there is one, and ended by finalize() (FINISHED when fit
succeeded, FAILED when it raised, KILLED otherwise); a run named by run_id= is logged into
and never ended. Like Lightning's own loggers, only global rank 0 logs.

Needs Lightning 1.7 or later: `pip install lightning` or `pip install pytorch-lightning`.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

try:
    from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
    from lightning.pytorch.utilities.rank_zero import rank_zero_only
except ImportError as e1:
    try:
        from pytorch_lightning.loggers.logger import Logger, rank_zero_experiment
        from pytorch_lightning.utilities.rank_zero import rank_zero_only
    except ImportError as e:
        raise ImportError(
            "sidetrack.integrations.lightning needs PyTorch Lightning 1.7 or later, which "
            "could not be imported (lightning: " + str(e1) + "; pytorch_lightning: " + str(e)
            + "): install it with `pip install lightning` "
            "(or `pip install pytorch-lightning`); Debian has no package of it") from e

import sidetrack

from . import _common
from ._common import RunHandle

__all__ = ["SidetrackLogger"]


class SidetrackLogger(Logger):
    """A Lightning logger that logs into a sidetrack run.

    experiment_name: the experiment of the run it starts (when no run is active; a nested run
                     is in its parent's experiment). Also the logger's `name`, which
                     Lightning puts in the checkpoint directory.
    run_name, tags:  of the run it starts (tags are also set on a run named by run_id).
    run_id:          log into this existing run instead of starting one; it is not ended.
    log_model:       False: no checkpoints; True: ModelCheckpoint's best and last checkpoints
                     are logged as artifacts when training ends; "all": each as it is saved.
    prefix:          put in front of every metric key, joined with "-" (as MLflow's logger).
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(self, experiment_name: str = "lightning_logs", run_name: Optional[str] = None,
                 tags: Optional[Mapping[str, Any]] = None, run_id: Optional[str] = None,
                 log_model: Union[bool, str] = False, *, prefix: str = "") -> None:
        super().__init__()
        if log_model not in (True, False, "all"):
            raise ValueError(f"log_model={log_model!r}: True, False or 'all'")
        self._experiment_name = experiment_name
        self._run_name = run_name
        self._tags = dict(tags or {})
        self._run_id = run_id
        self._attached = run_id is not None   # logs into a run it did not start
        self._run: Optional[sidetrack.ActiveRun] = None   # the run it started
        self._handle: Optional[RunHandle] = None
        self._log_model = log_model
        self._prefix = prefix
        self._checkpoint_callback = None
        self._logged_checkpoints: Dict[str, float] = {}
        self._warned: set = set()

    # ---- the run ------------------------------------------------------------------------

    def _ensure_run(self, resume: bool = False) -> RunHandle:
        """The handle of the run, started if it was not yet. resume: the caller logs; if
        finalize() ended the run this logger started (fit, then test with the same trainer),
        log into it again and end it again at the next finalize, so that its status is the
        last stage's. Only looking (version, experiment) never restarts it."""
        if self._handle is None:
            if self._attached:
                if self._tags:
                    sidetrack.set_tags(self._tags, run_id=self._run_id)
            else:
                self._run = _common.start_owned_run(
                    run_name=self._run_name, tags=self._tags,
                    experiment_name=self._experiment_name)
                self._run_id = self._run.run_id
            self._handle = RunHandle(self._run_id)
        elif (resume and self._run is not None and self._run._owns
              and not _common.is_active(self._run)):
            self._run = sidetrack.start_run(run_id=self._run_id, nested=True)
        return self._handle

    @property
    @rank_zero_experiment
    def experiment(self) -> RunHandle:
        """A handle bound to the run (started if need be) with sidetrack's fluent calls:
        `trainer.logger.experiment.log_text("...", "notes.txt")`."""
        return self._ensure_run()

    @property
    def run_id(self) -> Optional[str]:
        """The run's id (the run is started if it was not yet); None on ranks other than 0."""
        if getattr(rank_zero_only, "rank", 0) == 0:
            self._ensure_run()
        return self._run_id

    @property
    def name(self) -> Optional[str]:
        return self._experiment_name

    @property
    def version(self) -> Optional[str]:
        """The run id, as MLflow's logger gives it (Lightning names the checkpoint directory
        after it)."""
        return self.run_id

    @property
    def save_dir(self) -> Optional[str]:
        """None: sidetrack keeps nothing in a local directory, so Lightning puts checkpoints
        under the trainer's default_root_dir."""
        return None

    # ---- logging ------------------------------------------------------------------------

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        p = _common.params_for_logging(params)
        if p:
            self._ensure_run(resume=True).log_params(p)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        prefix = self._prefix + self.LOGGER_JOIN_CHAR if self._prefix else ""
        m, skipped = _common.metrics_for_logging(metrics, prefix)
        for k in skipped:
            _common.warn_once(self._warned, k, f"SidetrackLogger: metric {k!r} is not one "
                              "number (or not a valid key) and is not logged")
        if m:
            # Tensors go as they are: sidetrack reads CUDA values off the training thread.
            self._ensure_run(resume=True).log_metrics(m, step=step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._log_model:
            return
        self._checkpoint_callback = checkpoint_callback
        if self._log_model == "all" or getattr(checkpoint_callback, "save_top_k", None) == -1:
            _common.log_checkpoints(self._ensure_run(resume=True), checkpoint_callback,
                                    self._logged_checkpoints)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning calls it when fit/validate/test ends: "success" ends the run FINISHED,
        "failed" FAILED, anything else KILLED. A run it did not start is left running."""
        if self._handle is None:
            return   # nothing was ever logged
        if self._log_model and self._checkpoint_callback is not None:
            try:
                _common.log_checkpoints(self._handle, self._checkpoint_callback,
                                        self._logged_checkpoints)
            except ReferenceError:   # the callback (a weak proxy) is gone
                pass
        self.save()
        if self._run is not None and _common.is_active(self._run):
            _common.end_owned_run(self._run, _common.lightning_status(status))

    # ---- pickling (spawned DDP processes get a copy of the trainer) -----------------------

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        # A copy logs into the same run but never ends it; the process that started it does.
        state["_run"] = None
        state["_handle"] = None
        state["_attached"] = state["_run_id"] is not None or state["_attached"]
        state["_checkpoint_callback"] = None
        return state
