"""What the framework integrations share, and none of them needs a framework for: flattening
hyperparameters into MLflow params, picking the numbers out of a framework's `logs` dict,
making keys MLflow accepts, starting and ending the runs an integration owns, a handle bound to
one run, and finding the checkpoint files a Lightning ModelCheckpoint wrote.

Nothing here imports a framework (or torch, numpy): values are looked at by duck typing and by
what the program itself has imported already (sys.modules).
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import numbers
import os
import re
import sys
from typing import Any, Dict, List, Mapping, Optional, Tuple

import sidetrack
from .. import _distributed, _fluent

MAX_PARAM_VALUE_LEN = 6000   # ST_MAX_PARAM_VALUE_LEN, MLflow's limit
MAX_KEY_LEN = 250            # ST_MAX_KEY_LEN (characters)
MAX_KEY_BYTES = 480          # ST_MAX_KEY_BYTES (UTF-8)
MAX_RUN_NAME_LEN = 250       # ST_MAX_RUN_NAME_LEN

_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_/. \-\u0080-\U0010ffff]+")


# ---- hyperparameters ----------------------------------------------------------------------

def _as_mapping(value: Any) -> Optional[Mapping]:
    """value as a mapping to flatten, or None when it is a leaf."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, argparse.Namespace):
        return vars(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return None


def _flatten_into(out: Dict[str, Any], m: Mapping, prefix: str, sep: str, depth: int) -> None:
    for k, v in m.items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        sub = _as_mapping(v)
        if sub is not None and depth < 64:   # a mapping that contains itself stops here
            _flatten_into(out, sub, key, sep, depth + 1)
        else:
            out[key] = v


def flatten_params(params: Any, sep: str = "/", prefix: str = "") -> Dict[str, Any]:
    """Nested mappings, argparse.Namespace and dataclass instances flattened into one dict,
    the keys joined with sep, as Lightning's and MLflow's loggers do: {"opt": {"lr": 0.1}} ->
    {"opt/lr": 0.1}. Lists, tuples and other values are leaves; an empty nested mapping leaves
    no key. None gives {}."""
    if params is None:
        return {}
    top = _as_mapping(params)
    if top is None:
        raise TypeError(f"hyperparameters must be a mapping, an argparse.Namespace or a "
                        f"dataclass, not {type(params).__name__}")
    out: Dict[str, Any] = {}
    _flatten_into(out, top, prefix, sep, 0)
    return out


def param_value(value: Any) -> str:
    """A param's value as MLflow stores it: str(value) cut to 6000 characters; classes and
    functions by their qualified name (not "<function f at 0x...>"), valid UTF-8."""
    if isinstance(value, type) or inspect.isroutine(value):
        mod = getattr(value, "__module__", None)
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", repr(value))
        s = f"{mod}.{name}" if mod and mod != "builtins" else name
    else:
        s = str(value)
    s = s.replace("\x00", "")
    if len(s) > MAX_PARAM_VALUE_LEN:
        s = s[:MAX_PARAM_VALUE_LEN]
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:   # lone surrogates
        s = s.encode("utf-8", "replace").decode("utf-8")
    return s


def params_for_logging(params: Any, sep: str = "/") -> Dict[str, str]:
    """flatten_params, with keys made valid (sanitize_key) and values as param_value. Keys
    that are left empty are dropped."""
    out: Dict[str, str] = {}
    for k, v in flatten_params(params, sep).items():
        key = sanitize_key(k)
        if key is not None and key not in out:
            out[key] = param_value(v)
    return out


def sanitize_key(key: Any) -> Optional[str]:
    """A metric/param key that MLflow's rules accept: characters other than letters, digits,
    '_', '-', '.', ' ', '/' (and non-ASCII) removed, as MLflow's Lightning logger does; empty
    path segments, '.' and '..' segments and a leading '/' removed; cut to 250 characters.
    None when nothing is left."""
    s = _BAD_KEY_CHARS.sub("", str(key))
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "ignore").decode("utf-8")
    segs = [p for p in s.split("/") if p not in ("", ".", "..")]
    s = "/".join(segs)
    if len(s) > MAX_KEY_LEN:
        s = s[:MAX_KEY_LEN]
    while len(s.encode("utf-8")) > MAX_KEY_BYTES:
        s = s[:-1]
    s = s.rstrip("/")
    return s or None


# ---- metric values --------------------------------------------------------------------------

def metric_value(value: Any) -> Any:
    """value if it is one number that sidetrack can log, else None: int and float (not bool),
    numpy scalars and one-element arrays, torch tensors of one element (passed through as they
    are: a CUDA tensor is read off the training thread by sidetrack, so no .item() here), and
    other one-element tensors that convert with float() (TensorFlow's). Strings, None, bools,
    containers and many-element arrays give None."""
    if value is None or isinstance(value, (bool, str, bytes)):
        return None
    if isinstance(value, numbers.Real):   # int, float, numpy scalars (registered as Real)
        return value
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.bool_):
            return None
        if isinstance(value, np.ndarray):
            return value if value.size == 1 and value.dtype.kind in "iuf" else None
        if isinstance(value, np.generic):
            return value if isinstance(value, np.number) and value.dtype.kind in "iuf" else None
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            return None
        return value
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "__float__"):
        try:
            n = 1
            for d in shape:
                n *= int(d)
        except (TypeError, ValueError):
            return None
        return value if n == 1 else None
    return None


def metrics_for_logging(logs: Optional[Mapping[str, Any]], prefix: str = ""
                        ) -> Tuple[Dict[str, Any], List[str]]:
    """The numeric entries of a framework's logs dict, keys sanitized (and prefixed), and the
    keys that were skipped (not one number, or a key left empty)."""
    metrics: Dict[str, Any] = {}
    skipped: List[str] = []
    for k, v in (logs or {}).items():
        mv = metric_value(v)
        key = sanitize_key(k)
        if key is not None and prefix:
            key = sanitize_key(prefix + key)
        if mv is None or key is None:
            skipped.append(str(k))
            continue
        metrics[key] = mv
    return metrics, skipped


# ---- runs -----------------------------------------------------------------------------------

def start_owned_run(run_name: Optional[str] = None, tags: Optional[Mapping[str, Any]] = None,
                    experiment_name: Optional[str] = None,
                    nested: Optional[bool] = None) -> "sidetrack.ActiveRun":
    """Starts the run an integration owns, from one process (rank 0 of a distributed job).

    nested defaults to "is a run active": the new run is then a child of it. In a
    torch.distributed job framework loggers and callbacks run on rank 0 only, and the run is
    theirs alone: it is started with nested=True, which with no active run starts an ordinary
    run, not one shared with the other ranks."""
    if nested is None:
        nested = sidetrack.active_run() is not None
    if not nested and _distributed.rank_and_size()[1] > 1:
        nested = True
    if run_name is not None:
        run_name = str(run_name)[:MAX_RUN_NAME_LEN] or None
    clean_tags = {k: str(v)[:5000] for k, v in (tags or {}).items()}
    return sidetrack.start_run(run_name=run_name, nested=nested, tags=clean_tags,
                               experiment_name=experiment_name)


def end_owned_run(run: Optional["sidetrack.ActiveRun"], status: str = "FINISHED") -> None:
    """Ends a run an integration started, wherever it is on the stack of active runs (a run
    the user started inside it stays active). A run that was only attached to (one that
    $SIDETRACK_RUN_ID named) is released, not ended, as start_run's runs always are."""
    if run is None:
        return
    _fluent._end(run, status)


def is_active(run: Optional["sidetrack.ActiveRun"]) -> bool:
    """Whether run is still on this process's stack of active runs."""
    if run is None:
        return False
    with _fluent._lock:
        return run in _fluent._stack


_LIGHTNING_STATUS = {"success": "FINISHED", "finished": "FINISHED", "failed": "FAILED"}


def lightning_status(status: Optional[str]) -> str:
    """Lightning's finalize() status as a run status: "success" -> FINISHED, "failed" ->
    FAILED, anything else (an interrupted fit) -> KILLED."""
    return _LIGHTNING_STATUS.get(str(status).lower(), "KILLED")


class RunHandle:
    """A module-like handle bound to one run: sidetrack's fluent functions with run_id filled
    in, so that `handle.log_metric("loss", v, step)` logs into this run whichever run is
    active. What a framework logger's `experiment` returns."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    @property
    def info(self):
        run = sidetrack.active_run()
        if run is not None and run.run_id == self.run_id:
            return run.info
        from types import SimpleNamespace

        return SimpleNamespace(run_id=self.run_id, run_uuid=self.run_id)

    def log_metric(self, key: str, value: Any, step: Optional[int] = None,
                   timestamp: Optional[int] = None) -> None:
        sidetrack.log_metric(key, value, step=step, timestamp=timestamp, run_id=self.run_id)

    def log_metrics(self, metrics: Mapping[str, Any], step: Optional[int] = None,
                    timestamp: Optional[int] = None) -> None:
        sidetrack.log_metrics(dict(metrics), step=step, timestamp=timestamp,
                              run_id=self.run_id)

    def log_param(self, key: str, value: Any) -> Any:
        return sidetrack.log_param(key, value, run_id=self.run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        sidetrack.log_params(params, run_id=self.run_id)

    def set_tag(self, key: str, value: Any) -> None:
        sidetrack.set_tag(key, value, run_id=self.run_id)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        sidetrack.set_tags(tags, run_id=self.run_id)

    def log_artifact(self, local_path, artifact_path: Optional[str] = None) -> None:
        sidetrack.log_artifact(local_path, artifact_path, run_id=self.run_id)

    def log_artifacts(self, local_dir, artifact_path: Optional[str] = None) -> None:
        sidetrack.log_artifacts(local_dir, artifact_path, run_id=self.run_id)

    def log_text(self, text: str, artifact_file: str) -> None:
        sidetrack.log_text(text, artifact_file, run_id=self.run_id)

    def log_dict(self, dictionary: Any, artifact_file: str) -> None:
        sidetrack.log_dict(dictionary, artifact_file, run_id=self.run_id)

    def log_figure(self, figure: Any, artifact_file: str, **kw) -> None:
        sidetrack.log_figure(figure, artifact_file, run_id=self.run_id, **kw)

    def __repr__(self) -> str:
        return f"<sidetrack RunHandle run_id={self.run_id}>"


# ---- Keras ------------------------------------------------------------------------------------

def _scalar(value: Any) -> Optional[float]:
    """A float from a number, a numpy/TF/Keras variable or tensor of one element, or None."""
    for get in (lambda v: v.numpy(), lambda v: v):
        try:
            x = get(value)
            if isinstance(x, (bool, str, bytes)):
                return None
            return float(x)
        except Exception:
            continue
    return None


def keras_params(params: Optional[Mapping[str, Any]], optimizer: Any = None) -> Dict[str, Any]:
    """What a Keras callback records as params at on_train_begin: epochs, steps (per epoch),
    batch_size when Keras gives it (Keras 2 did in self.params), samples; the optimizer's class
    name and its learning rate: a number, or for a schedule its class name and config."""
    out: Dict[str, Any] = {}
    for k in ("epochs", "steps", "batch_size", "samples"):
        v = (params or {}).get(k)
        if v is not None:
            out[k] = v
    if optimizer is None:
        return out
    out["optimizer_name"] = type(optimizer).__name__
    lr = None
    for attr in ("learning_rate", "lr", "_learning_rate"):
        try:
            lr = getattr(optimizer, attr)
        except Exception:
            lr = None
        if lr is not None:
            break
    if lr is None:
        return out
    x = _scalar(lr)
    if x is not None:
        out["learning_rate"] = x
        return out
    get_config = getattr(lr, "get_config", None)
    if callable(get_config):   # a LearningRateSchedule
        out["learning_rate"] = type(lr).__name__
        try:
            cfg = get_config()
        except Exception:
            cfg = None
        if isinstance(cfg, Mapping):
            for k, v in flatten_params(cfg, prefix="learning_rate").items():
                out[k] = v
    return out


# ---- Lightning checkpoints --------------------------------------------------------------------

def checkpoint_files(checkpoint_callback: Any) -> List[Tuple[str, Dict[str, Any]]]:
    """The checkpoint files a Lightning ModelCheckpoint knows of (best_k_models,
    best_model_path, last_model_path) that exist, oldest first, each with what to record
    about it: aliases ("best", "last"), the monitored metric and its score."""
    best_k = dict(getattr(checkpoint_callback, "best_k_models", None) or {})
    best = getattr(checkpoint_callback, "best_model_path", "") or ""
    last = getattr(checkpoint_callback, "last_model_path", "") or ""
    monitor = getattr(checkpoint_callback, "monitor", None)
    paths: Dict[str, Dict[str, Any]] = {}
    for p, score in best_k.items():
        paths.setdefault(str(p), {"aliases": [], "score": metric_score(score)})
    for p, alias in ((best, "best"), (last, "last")):
        if p:
            paths.setdefault(str(p), {"aliases": [], "score": metric_score(best_k.get(p))})
            paths[str(p)]["aliases"].append(alias)
    out = []
    for p, meta in paths.items():
        try:
            mtime = os.path.getmtime(p)
        except OSError:
            continue
        meta["monitor"] = monitor
        meta["mtime"] = mtime
        out.append((p, meta))
    out.sort(key=lambda pm: (pm[1]["mtime"], pm[0]))
    return out


def metric_score(score: Any) -> Optional[float]:
    """A checkpoint's score (a tensor, usually) as a float for JSON, or None."""
    if score is None:
        return None
    item = getattr(score, "item", None)
    try:
        return float(item() if callable(item) else score)
    except Exception:
        return None


def log_checkpoints(handle: RunHandle, checkpoint_callback: Any,
                    logged: Dict[str, float], artifact_dir: str = "checkpoints") -> List[str]:
    """Logs the checkpoint files not logged yet (logged: path -> mtime, updated) as
    artifacts <artifact_dir>/<file name>, each with <artifact_dir>/<file name>.json (aliases,
    monitor, score). Returns the artifact paths of the files logged."""
    done = []
    for path, meta in checkpoint_files(checkpoint_callback):
        if logged.get(path) == meta["mtime"]:
            continue
        name = os.path.basename(path)
        handle.log_artifact(path, artifact_dir)
        handle.log_dict({"path": path, "aliases": meta["aliases"], "monitor": meta["monitor"],
                         "score": meta["score"]}, f"{artifact_dir}/{name}.json")
        logged[path] = meta["mtime"]
        done.append(f"{artifact_dir}/{name}")
    return done


def warn_once(seen: set, key: str, message: str) -> None:
    """Prints a warning the first time key is seen (frameworks log the same keys each step)."""
    if key in seen:
        return
    seen.add(key)
    import warnings

    warnings.warn(message, stacklevel=3)
