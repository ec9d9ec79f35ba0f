"""sidetrack: experiment tracking for training loops too tight for an HTTP call per metric.

The API is MLflow's fluent API, so that moving over is an import change::

    import sidetrack as mlflow

    mlflow.set_experiment("mnist")
    with mlflow.start_run(run_name="baseline"):
        mlflow.log_params({"lr": 0.01, "batch": 64})
        for step in range(1000):
            loss = train_step()
            mlflow.log_metric("loss", loss, step=step)   # ~tens of ns, never waits

Calls write into a shared-memory ring on this node; the node's agent (sidetrackd) stores
them and replicates them. Nothing here does network or disk I/O in the training loop; a
torch CUDA tensor is read off the training thread, once the GPU has produced it.
"""
from ._sidetrack import InvalidArgument, SidetrackError, log_metric
from ._fluent import (
    ActiveRun,
    Experiment,
    PendingModelVersion,
    active_run,
    end_run,
    flush,
    get_stats,
    last_active_run,
    log_artifact,
    log_artifacts,
    log_dict,
    log_figure,
    log_metrics,
    log_param,
    log_params,
    log_text,
    register_model,
    set_experiment,
    set_tag,
    set_tags,
    start_run,
)

__version__ = "0.1.0"

__all__ = [
    "ActiveRun", "Experiment", "InvalidArgument", "PendingModelVersion", "SidetrackError",
    "active_run", "end_run", "flush", "get_stats", "last_active_run", "log_artifact",
    "log_artifacts", "log_dict", "log_figure", "log_metric", "log_metrics", "log_param",
    "log_params", "log_text", "register_model", "set_experiment", "set_tag", "set_tags",
    "start_run",
]
