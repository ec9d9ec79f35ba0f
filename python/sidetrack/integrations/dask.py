"""Dask: logging into one run from the tasks of a Dask cluster on this node.

    import sidetrack
    from dask.distributed import Client, LocalCluster
    from sidetrack.integrations.dask import attach

    def evaluate(i):
        import sidetrack
        loss = ...
        sidetrack.log_metric("loss", loss, step=i)   # goes into the run below
        return loss

    with LocalCluster(n_workers=4) as cluster, Client(cluster) as client:
        with sidetrack.start_run(run_name="sweep") as run:
            attach(client)                      # every worker, now and later, logs into run
            client.gather(client.map(evaluate, range(100)))

attach() registers SidetrackWorkerPlugin on the cluster. Its setup() runs in each worker
process (workers that join later included): it sets $SIDETRACK_RUN_ID there and attaches the
process to the run, which becomes the worker's active run, so tasks call sidetrack.log_metric()
(log_params, set_tag, log_artifact ...) with no run_id. Workers never end the run: they only
release it (at teardown, when the plugin is replaced or removed, or when the worker exits);
the process that started it ends it.

Workers must run on the same node as the sidetrack agent and as the same user: they write into
the node's shared-memory ring ($SIDETRACK_RING_DIR, which the plugin passes on to workers that
do not set their own), and the agent accepts records only from the run's user. Workers on other
nodes log into their own node's agent, which stores them only if the run's start reaches it
(replication), so keep a run's workers on one node.

With a LocalCluster(processes=False) the tasks run in the client's process, where they log
into whatever run is active there; the plugin changes nothing then.
"""
from __future__ import annotations

import os
import re
import threading
import warnings
from typing import Any, Optional

try:
    from distributed import WorkerPlugin
except ImportError as e:
    raise ImportError(
        "sidetrack.integrations.dask needs Dask's distributed scheduler, which could not be "
        "imported (" + str(e) + "): install it with `apt install python3-distributed` (Debian) "
        "or `pip install distributed`") from e

import sidetrack

from .. import _fluent
from . import _common

__all__ = ["SidetrackWorkerPlugin", "attach", "detach", "PLUGIN_NAME"]

PLUGIN_NAME = "sidetrack"
_RUN_ID = re.compile(r"^[0-9a-fA-F]{32}$")

# In a worker process: the run the plugin attached it to, and $SIDETRACK_RUN_ID as it was.
_attached: Optional[sidetrack.ActiveRun] = None
_saved_env: Optional[str] = None
_lock = threading.RLock()


def attach_worker(run_id: str, ring_dir: Optional[str] = None) -> Optional[sidetrack.ActiveRun]:
    """Makes this process log into run_id: what the plugin's setup() does in a worker. The run
    becomes the process's active run, attached to and never ended. Returns it, or None when
    this process has a run of its own active (then nothing changes)."""
    global _attached, _saved_env
    with _lock:
        if _attached is not None and _attached.run_id == run_id and _common.is_active(_attached):
            return _attached
        release_worker()
        if ring_dir and not os.environ.get("SIDETRACK_RING_DIR"):
            os.environ["SIDETRACK_RING_DIR"] = ring_dir
        top = sidetrack.active_run()
        if top is not None:
            if top.run_id != run_id:
                warnings.warn(f"sidetrack: this process logs into its active run {top.run_id},"
                              f" not into {run_id}: tasks here need log_metric(run_id=...)")
            return None
        _saved_env = os.environ.get(_fluent.RUN_ID_ENV)
        os.environ[_fluent.RUN_ID_ENV] = run_id
        # start_run() with no run_id and $SIDETRACK_RUN_ID set attaches to that run without
        # owning it: ending it only releases it.
        run = sidetrack.start_run()
        _attached = run
        if run.run_id != run_id or run._owns:   # never: start_run's rule for $SIDETRACK_RUN_ID
            release_worker()
            raise sidetrack.SidetrackError(f"could not attach to run {run_id} without owning it")
        return run


def release_worker() -> None:
    """Lets go of the run attach_worker() attached this process to (the run goes on), and puts
    $SIDETRACK_RUN_ID back as it was."""
    global _attached, _saved_env
    with _lock:
        run, _attached = _attached, None
        if run is None:
            return
        if _common.is_active(run):
            _common.end_owned_run(run, "FINISHED")   # not owned: a release, no status sent
        if _saved_env is None:
            os.environ.pop(_fluent.RUN_ID_ENV, None)
        else:
            os.environ[_fluent.RUN_ID_ENV] = _saved_env
        _saved_env = None


class SidetrackWorkerPlugin(WorkerPlugin):
    """A distributed.WorkerPlugin that makes each worker process log into run_id (see the
    module's doc). Registered under the name "sidetrack": registering it again for another run
    replaces it (the workers release the old run and attach to the new one)."""

    name = PLUGIN_NAME

    def __init__(self, run_id: str, ring_dir: Optional[str] = None) -> None:
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise sidetrack.InvalidArgument(f"run id {run_id!r} is not 32 hexadecimal digits")
        self.run_id = run_id
        self.ring_dir = ring_dir

    def setup(self, worker: Any = None) -> None:
        attach_worker(self.run_id, self.ring_dir)

    def teardown(self, worker: Any = None) -> None:
        if _attached is not None and _attached.run_id == self.run_id:
            release_worker()


def _register(client: Any, plugin: SidetrackWorkerPlugin) -> None:
    reg = getattr(client, "register_plugin", None)   # distributed >= 2023.9
    if reg is not None:
        reg(plugin, name=PLUGIN_NAME)
    else:
        client.register_worker_plugin(plugin, name=PLUGIN_NAME)


def attach(client: Any, run_id: Optional[str] = None) -> str:
    """Registers SidetrackWorkerPlugin on a (synchronous) distributed.Client so that every
    worker, and each that joins later, logs into run_id: by default the active run (else the
    run $SIDETRACK_RUN_ID names). Returns the run id. Raises SidetrackError when there is no
    run to attach to, and what a worker's setup raised."""
    if run_id is None:
        run = sidetrack.active_run()
        run_id = run.run_id if run is not None else os.environ.get(_fluent.RUN_ID_ENV)
        if not run_id:
            raise sidetrack.SidetrackError("attach: no active run; start one with "
                                           "sidetrack.start_run() or pass run_id")
    sidetrack.flush()   # what this process logged so far is on its way before workers start
    _register(client, SidetrackWorkerPlugin(run_id, os.environ.get("SIDETRACK_RING_DIR")))
    return run_id


def detach(client: Any) -> None:
    """Removes the plugin: the workers release the run (it goes on)."""
    unreg = getattr(client, "unregister_worker_plugin", None)
    if unreg is not None:
        unreg(PLUGIN_NAME)
