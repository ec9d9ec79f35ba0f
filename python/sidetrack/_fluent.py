"""MLflow's fluent API over libsidetrack: module-level functions and a stack of active runs.

One client per process attaches to the node's ring on first use. log_metric is the C
extension's own function (no Python frame on the hot path); everything here is the cold path:
runs, params, tags, artifacts.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from types import SimpleNamespace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from . import _distributed, _sidetrack, _values
from ._sidetrack import InvalidArgument, SidetrackError

RUN_ID_ENV = "SIDETRACK_RUN_ID"
_STATUS = {"FINISHED": _sidetrack.FINISHED, "FAILED": _sidetrack.FAILED,
           "KILLED": _sidetrack.KILLED}

_lock = threading.RLock()
_client: Optional[_sidetrack.Client] = None
_experiment: Optional[str] = None
_stack: List["ActiveRun"] = []
_by_id: Dict[str, _sidetrack.Run] = {}   # runs named by run_id= that are not on the stack
_last: Optional["ActiveRun"] = None
_exit_status: Optional[str] = None       # set by the excepthook for the atexit handler


def _env_flag(name: str, default: str) -> str:
    return os.environ.get(name, default).strip().lower()


def _get_client() -> _sidetrack.Client:
    global _client
    with _lock:
        if _client is None:
            _client = _sidetrack.Client(os.environ.get("SIDETRACK_RING_DIR") or None)
        return _client


class Experiment(SimpleNamespace):
    """What set_experiment returns: the experiment's name. Its id is given by the agent when
    the first run arrives, so it is None here."""


class ActiveRun:
    """A run started by start_run(); a context manager that ends it (FAILED on an exception,
    KILLED on Ctrl-C). `run.info.run_id` as in MLflow."""

    def __init__(self, handle: _sidetrack.Run, *, experiment: Optional[str],
                 run_name: Optional[str], parent_id: Optional[str], owns: bool,
                 rank: int, world_size: int) -> None:
        self._handle = handle
        self._owns = owns          # False: attached to a run that another process ends
        self._pid = os.getpid()
        self.rank = rank
        self.world_size = world_size
        self.info = SimpleNamespace(
            run_id=handle.id, run_uuid=handle.id, run_name=run_name, experiment_name=experiment,
            experiment_id=None, status="RUNNING", start_time=int(time.time() * 1000),
            end_time=None, parent_run_id=parent_id, user_id=_user())

    @property
    def run_id(self) -> str:
        return self._handle.id

    def __enter__(self) -> "ActiveRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None or (issubclass(exc_type, SystemExit) and exc.code in (0, None)):
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        _end(self, status)
        return False

    def __repr__(self) -> str:
        return f"<ActiveRun: run_id={self.run_id} status={self.info.status}>"


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def set_experiment(experiment_name: Optional[str] = None,
                   experiment_id: Optional[str] = None) -> Experiment:
    """Set the experiment that runs started from now on belong to (created by the agent on
    first use). Experiments are named here; `experiment_id` is not accepted because ids are
    given by the store, not by the training process."""
    global _experiment
    if experiment_id is not None and experiment_name is None:
        raise InvalidArgument("set_experiment(experiment_id=...) is not supported: sidetrack "
                              "names experiments in the training process; pass "
                              "experiment_name")
    if not isinstance(experiment_name, str) or not experiment_name or len(experiment_name) > 500:
        raise InvalidArgument(f"experiment name {experiment_name!r}: 1-500 characters")
    with _lock:
        _experiment = experiment_name
    return Experiment(name=experiment_name, experiment_id=None)


def active_run() -> Optional[ActiveRun]:
    """The innermost active run of this process, or None."""
    with _lock:
        return _stack[-1] if _stack else None


def last_active_run() -> Optional[ActiveRun]:
    """The active run, or else the last run that ended in this process."""
    with _lock:
        return _stack[-1] if _stack else _last


_env_outer: Optional[str] = None  # $SIDETRACK_RUN_ID as it was before this process's runs


def _sync_active() -> None:
    """The C side's active run and $SIDETRACK_RUN_ID follow the top of the stack, whatever
    order runs end in; with no run left, the variable is what it was before."""
    _sidetrack._set_active(_stack[-1]._handle if _stack else None)
    if _stack:
        os.environ[RUN_ID_ENV] = _stack[-1].run_id
    elif _env_outer is None:
        os.environ.pop(RUN_ID_ENV, None)
    else:
        os.environ[RUN_ID_ENV] = _env_outer


def start_run(run_id: Optional[str] = None, experiment_id: Optional[str] = None,
              run_name: Optional[str] = None, nested: bool = False,
              parent_run_id: Optional[str] = None, tags: Optional[Mapping[str, Any]] = None,
              description: Optional[str] = None, log_system_metrics: Optional[bool] = None,
              *, experiment_name: Optional[str] = None,
              capture_context: Optional[bool] = None) -> ActiveRun:
    """Start a run (or, with run_id, log into an existing one) and make it the active run.

    Use it as a context manager: the run ends FINISHED when the block ends, FAILED if it
    raised, KILLED on Ctrl-C. A run left active ends when the process exits.

    run_id:          log into this run (started by another process or earlier) instead of
                     starting one; also taken from $SIDETRACK_RUN_ID, which start_run sets for
                     child processes (spawned multiprocessing workers, subprocesses).
    experiment_name: the experiment, else set_experiment()'s, else $MLFLOW_EXPERIMENT_NAME,
                     else "Default". (experiment_id is MLflow's; it is not accepted.)
    nested:          start a child of the active run (tag mlflow.parentRunId).
    tags, description: set on the run (description as mlflow.note.content).
    capture_context: record git, Python, packages, host and GPUs as tags (default on;
                     $SIDETRACK_CAPTURE=0 turns it off).

    In a torch.distributed job (the process group initialised), rank 0 starts the run and
    the other ranks log into it: params and tags from rank 0 only, metrics from every rank,
    those of rank r > 0 under "<key>/rank<r>". Rank 0 publishes the run id in the process
    group's key-value store and never waits; another rank's start_run waits for it (so code
    that runs on rank 0 only, like a framework's logger, may start runs freely).
    """
    if experiment_id is not None:
        raise InvalidArgument("start_run(experiment_id=...) is not supported: use "
                              "experiment_name= or set_experiment(name)")
    client = _get_client()
    with _lock:
        if _stack and not nested and run_id is None:
            raise SidetrackError(
                f"Run with UUID {_stack[-1].run_id} is already active. To start a nested run, "
                "call start_run with nested=True")
        parent = None
        if parent_run_id is not None:
            parent = _find_handle(parent_run_id)
        elif nested and _stack:
            parent = _stack[-1]._handle
        exp = (experiment_name or _experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
               or None)
        rank, size = _distributed.rank_and_size()
        owns = True
        from_env = False
        if run_id is None and not _stack and os.environ.get(RUN_ID_ENV):
            run_id, from_env = os.environ[RUN_ID_ENV], True
        if run_id is None and size > 1 and not nested:
            slot = _distributed.next_slot(exp, run_name)
            shared = _distributed.receive_run_id(slot) if rank != 0 else None
            if rank == 0:
                handle = client.run_start(exp, run_name)
                _distributed.publish_run_id(slot, handle.id)
            elif shared:
                handle, owns = client.run_attach(shared), False
            else:  # no process group to share the id through: a run per rank
                handle = client.run_start(exp, run_name)
        elif run_id is not None:
            handle = client.run_attach(run_id)
            owns = not from_env and rank == 0
        elif parent is not None:
            handle = client.run_start(None, run_name, parent)
        else:
            handle = client.run_start(exp, run_name)
        if size > 1 and rank != 0 and not owns:
            _values.reader.flush()  # queued points count keys of the old naming
            client.set_key_suffix(_rank_suffix(rank))
        run = ActiveRun(handle, experiment=exp, run_name=run_name,
                        parent_id=parent.id if parent is not None else None,
                        owns=owns, rank=rank, world_size=size)
        if not _stack:
            global _env_outer
            _env_outer = os.environ.get(RUN_ID_ENV)
        _stack.append(run)
        _sync_active()
    if owns or rank == 0:
        _describe(run, tags, description, capture_context, fresh=run_id is None)
    if size > 1:
        handle.set_tag(f"sidetrack.rank.{rank}.host", socket.gethostname())
    return run


def _rank_suffix(rank: int) -> str:
    return f"/rank{rank}"


def _describe(run: ActiveRun, tags, description, capture_context, fresh: bool) -> None:
    h = run._handle
    if run.world_size > 1:
        h.set_tag("sidetrack.world_size", str(run.world_size))
    if description is not None:
        h.set_tag("mlflow.note.content", str(description))
    for k, v in (tags or {}).items():
        h.set_tag(k, str(v))
    if capture_context is None:
        capture_context = _env_flag("SIDETRACK_CAPTURE", "1") not in ("0", "false", "no")
    if not (capture_context and fresh):
        return
    from . import _context

    ctx_tags, files = _context.capture()
    for k, v in ctx_tags.items():
        if k in ("mlflow.user",):
            continue  # the agent sets it from the run's start record
        try:
            h.set_tag(k, v)
        except InvalidArgument:
            pass  # a context value MLflow's rules refuse is left out, never fatal
    for name, data in files.items():
        _log_bytes(h, data, name)


def _find_handle(run_id: str) -> _sidetrack.Run:
    for r in _stack:
        if r.run_id == run_id:
            return r._handle
    h = _by_id.get(run_id)
    if h is None or h.ended:
        h = _by_id[run_id] = _get_client().run_attach(run_id)
    return h


def _end(run: ActiveRun, status: str) -> None:
    global _last
    if status not in _STATUS:
        raise InvalidArgument(f"status {status!r}: one of FINISHED, FAILED, KILLED")
    _values.reader.flush()
    with _lock:
        if run in _stack:
            _stack.remove(run)
            _sync_active()
        if run._handle.ended:
            return
        if run._pid != os.getpid():
            # A forked child leaving the parent's `with` block: the run is the parent's to end.
            run._handle.release()
            return
        if run.world_size > 1 and run.rank != 0 and not run._owns:
            _values.reader.flush()
            _get_client().set_key_suffix(None)
        if run._owns:
            run._handle.end(_STATUS[status])
            run.info.status = status
        else:
            run._handle.release()
        run.info.end_time = int(time.time() * 1000)
        _last = run


def end_run(status: str = "FINISHED") -> None:
    """End the active run: "FINISHED", "FAILED" or "KILLED". No active run: nothing happens.
    Points of CUDA tensors still on their way are logged first."""
    with _lock:
        run = _stack[-1] if _stack else None
    if run is not None:
        _end(run, status)


def _run_for(run_id: Optional[str]) -> _sidetrack.Run:
    if run_id is not None:
        with _lock:
            return _find_handle(run_id)
    with _lock:
        if _stack:
            return _stack[-1]._handle
    return start_run()._handle  # MLflow starts a run on the first log call


def _params_here(run_id: Optional[str]) -> bool:
    """Params (and tags) come from rank 0 only in a distributed job, unless
    $SIDETRACK_RANK_PARAMS=all."""
    with _lock:
        top = _stack[-1] if _stack and run_id is None else None
    if top is None or top.rank == 0:
        return True
    return _env_flag("SIDETRACK_RANK_PARAMS", "rank0") == "all"


def log_param(key: str, value: Any, synchronous: Optional[bool] = None,
              run_id: Optional[str] = None) -> Any:
    """Log a param of the active run: str(value), at most 6000 characters. Params are
    write-once: logging a key again with another value keeps the first (the agent reports
    it). Returns value."""
    if _params_here(run_id):
        _run_for(run_id).log_param(key, str(value))
    return value


def log_params(params: Mapping[str, Any], synchronous: Optional[bool] = None,
               run_id: Optional[str] = None) -> None:
    """Log several params (see log_param)."""
    if _params_here(run_id):
        h = _run_for(run_id)
        for k, v in params.items():
            h.log_param(k, str(v))


def set_tag(key: str, value: Any, synchronous: Optional[bool] = None,
            run_id: Optional[str] = None) -> None:
    """Set a tag of the active run: str(value), at most 5000 characters; last write wins."""
    if _params_here(run_id):
        _run_for(run_id).set_tag(key, str(value))


def set_tags(tags: Mapping[str, Any], synchronous: Optional[bool] = None,
             run_id: Optional[str] = None) -> None:
    """Set several tags (see set_tag)."""
    if _params_here(run_id):
        h = _run_for(run_id)
        for k, v in tags.items():
            h.set_tag(k, str(v))


def log_metrics(metrics: Mapping[str, Any], step: Optional[int] = None,
                synchronous: Optional[bool] = None, run_id: Optional[str] = None,
                timestamp: Optional[int] = None) -> None:
    """Log several metrics at one step (values as for log_metric). Plain numbers share one
    record and one timestamp."""
    if not isinstance(metrics, dict):
        metrics = dict(metrics)
    _run_for(run_id).log_metrics(metrics, step, timestamp)


def _no_run_hook(key, value, step, timestamp, run_id):
    return _run_for(run_id).log_metric(key, value, step, timestamp)


def _artifact_dest(name: str, artifact_path: Optional[str]) -> str:
    if not artifact_path:
        return name
    return artifact_path.strip("/") + "/" + name


def log_artifact(local_path: Union[str, os.PathLike], artifact_path: Optional[str] = None,
                 run_id: Optional[str] = None) -> None:
    """Log a file as an artifact: it is copied into the agent's spool before the call
    returns (so it may be changed or deleted right after), then stored by content hash.
    artifact_path is a directory within the run's artifacts, as in MLflow. This does file
    I/O: keep it out of the inner loop."""
    p = os.fspath(local_path)
    if os.path.isdir(p):
        raise IsADirectoryError(f"{p} is a directory: use log_artifacts() for directories")
    _run_for(run_id).log_artifact(p, _artifact_dest(os.path.basename(p), artifact_path))


def log_artifacts(local_dir: Union[str, os.PathLike], artifact_path: Optional[str] = None,
                  run_id: Optional[str] = None) -> None:
    """Log every file under a directory, keeping the tree under artifact_path."""
    root = os.fspath(local_dir)
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root} is not a directory")
    h = _run_for(run_id)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            h.log_artifact(full, _artifact_dest(rel, artifact_path))


def _log_bytes(h: _sidetrack.Run, data: bytes, artifact_file: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix="sidetrack-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        h.log_artifact(tmp, artifact_file)
    finally:
        os.unlink(tmp)


def log_text(text: str, artifact_file: str, run_id: Optional[str] = None) -> None:
    """Save text (UTF-8) as the artifact artifact_file, e.g. "notes/summary.txt"."""
    _log_bytes(_run_for(run_id), text.encode("utf-8"), artifact_file)


def log_dict(dictionary: Any, artifact_file: str, run_id: Optional[str] = None) -> None:
    """Save a dict as JSON, or YAML when artifact_file ends in .yaml or .yml."""
    if artifact_file.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ImportError("log_dict to a .yaml file needs PyYAML (Debian: python3-yaml); "
                              "or name the file .json") from None
        data = yaml.safe_dump(dictionary, default_flow_style=False).encode("utf-8")
    else:
        data = json.dumps(dictionary, indent=2).encode("utf-8")
    _log_bytes(_run_for(run_id), data, artifact_file)


def log_figure(figure: Any, artifact_file: str, *, save_kwargs: Optional[Dict[str, Any]] = None,
               run_id: Optional[str] = None) -> None:
    """Save a matplotlib figure as an artifact (the format from artifact_file's extension,
    e.g. "plots/loss.png")."""
    if not hasattr(figure, "savefig"):
        raise TypeError(f"log_figure takes a matplotlib figure, not {type(figure).__name__}")
    suffix = os.path.splitext(artifact_file)[1] or ".png"
    fd, tmp = tempfile.mkstemp(prefix="sidetrack-", suffix=suffix)
    os.close(fd)
    try:
        figure.savefig(tmp, **(save_kwargs or {}))
        _run_for(run_id).log_artifact(tmp, artifact_file)
    finally:
        os.unlink(tmp)


class PendingModelVersion:
    """What register_model() queued: MLflow's ModelVersion fields that are known before the
    agent makes the version. ``version`` is None: the store that applies the registration
    numbers it (the node's agent, then the server, each with its own numbers), and
    ``status`` is "PENDING_REGISTRATION" until then."""

    __slots__ = ("name", "version", "source", "run_id", "artifact_path", "aliases",
                 "description", "status")

    def __init__(self, name: str, run_id: str, artifact_path: str, aliases: List[str],
                 description: Optional[str]) -> None:
        self.name = name
        self.version: Optional[int] = None
        self.run_id = run_id
        self.artifact_path = artifact_path
        self.source = f"runs:/{run_id}/{artifact_path}"
        self.aliases = aliases
        self.description = description
        self.status = "PENDING_REGISTRATION"

    def __repr__(self) -> str:
        return (f"<PendingModelVersion name={self.name!r} source={self.source!r} "
                f"aliases={self.aliases!r} status={self.status}>")


def _registration_target(model_uri: str) -> Tuple[_sidetrack.Run, str, str]:
    """(run handle, run id, artifact path) of a runs:/ URI or of a path of the current run."""
    if model_uri.startswith("runs:/"):
        run_id, _, path = model_uri[len("runs:/"):].partition("/")
        if len(run_id) != 32 or any(c not in "0123456789abcdefABCDEF" for c in run_id):
            raise InvalidArgument(f"model URI {model_uri!r}: expected runs:/<32 hex digit run "
                                  "id>/<artifact path>")
        run_id = run_id.lower()
        with _lock:
            return _find_handle(run_id), run_id, path.strip("/")
    if ":" in model_uri.split("/", 1)[0]:
        raise InvalidArgument(f"model URI {model_uri!r}: only runs:/ URIs and artifact paths of "
                              "the current run can be registered from training code")
    with _lock:
        run = _stack[-1] if _stack else _last
        if run is None:
            raise InvalidArgument(f"register_model({model_uri!r}): no active or last run; give "
                                  "a runs:/<run id>/<path> URI")
        return _find_handle(run.info.run_id), run.info.run_id, model_uri.strip("/")


def register_model(model_uri: str, name: str, alias: Union[None, str, Iterable[str]] = None,
                   description: Optional[str] = None) -> PendingModelVersion:
    """Register a run's artifacts as a new version of the registered model ``name`` (created
    when missing), and point ``alias`` (a str or a list of them) at it: MLflow's
    register_model, from training code.

    ``model_uri`` is ``runs:/<run_id>/<artifact_path>`` for any run of this user (ended ones
    too), or a plain artifact path of the active run (or, after it ended, of the last one).
    Log the files first (``log_artifacts(local_dir, artifact_path)``); from the same thread
    they are always in before the registration.

    Asynchronous, unlike MLflow's: this writes one record into shared memory and returns; it
    never waits for the agent or the server. The version exists once the node's agent has
    drained the record (a version number given by the node's store), and reaches the server
    when the node syncs, exactly once, however long it was offline (the server numbers it
    again in its own registry; the content digest is the same). So the returned object has
    ``version`` None and ``status`` "PENDING_REGISTRATION". If no artifact is at that path
    when the agent applies it, the version is made with status FAILED_REGISTRATION and the
    aliases are not set. Bad names and aliases (MLflow's rules: ``latest`` and ``v<N>`` are
    reserved) raise InvalidArgument here."""
    if not isinstance(name, str):
        raise TypeError(f"name must be str, not {type(name).__name__}")
    if alias is None:
        aliases: List[str] = []
    elif isinstance(alias, str):
        aliases = [alias]
    else:
        aliases = list(alias)
    handle, run_id, path = _registration_target(os.fspath(model_uri))
    handle.register_model(path, name, aliases, description)
    return PendingModelVersion(name, run_id, path, aliases, description)


def get_stats() -> Dict[str, int]:
    """This process's delivery counters: lanes held, metrics dropped on a full lane, records
    spilled to disk (not lost), records lost, calls that found no free lane."""
    s = _get_client().stats()
    s["deferred_errors"] = _values.reader.errors
    return s


def flush(timeout: Optional[float] = None) -> bool:
    """Wait until every CUDA value queued so far has been read and logged. Only needed
    before handing a run id to another system; end_run() does it itself."""
    return _values.reader.flush(timeout)


def _at_exit() -> None:
    status = _exit_status or "FINISHED"
    pid = os.getpid()
    with _lock:
        runs = [r for r in reversed(_stack) if r._pid == pid]
    for r in runs:
        try:
            _end(r, status)
        except Exception:
            pass


def _excepthook(exc_type, exc, tb) -> None:
    global _exit_status
    _exit_status = "KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED"
    _prev_excepthook(exc_type, exc, tb)


_prev_excepthook = sys.excepthook


def _install_hooks() -> None:
    """Once, at import: the C side's hooks, the exit handler, the excepthook chain."""
    global _prev_excepthook
    _sidetrack._set_hooks(value_hook=_values.value_hook, no_run_hook=_no_run_hook)
    atexit.register(_at_exit)
    _prev_excepthook = sys.excepthook
    sys.excepthook = _excepthook


def _after_fork_child() -> None:
    # The child keeps the parent's runs to log into (each thread gets its own lane), but it
    # does not end them: the parent does.
    global _lock
    _lock = threading.RLock()
    _by_id.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
_install_hooks()
