"""Which rank of a distributed job this process is, and one run id shared by all ranks
(through the process group's key-value store: rank 0 writes, the others read; no collective).

torch.distributed is looked at only if the program imported torch itself: sidetrack never
imports torch on its own. Launchers (torchrun, Lightning, accelerate, SLURM wrappers) set RANK
and WORLD_SIZE, which are used when the process group is not initialised yet.
"""
from __future__ import annotations

import hashlib
import os
import sys
from typing import Optional, Tuple


def _dist():
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        d = torch.distributed
        if d.is_available() and d.is_initialized():
            return d
    except Exception:
        pass
    return None


def rank_and_size() -> Tuple[int, int]:
    """(rank, world size): (0, 1) outside a distributed job."""
    d = _dist()
    if d is not None:
        return d.get_rank(), d.get_world_size()
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0, 1
    if size < 1 or not 0 <= rank < size:
        return 0, 1
    return rank, size


_slots: dict = {}


def next_slot(experiment: Optional[str], run_name: Optional[str]) -> str:
    """The store key for this process's next top-level run of that experiment and name: the
    n-th such start_run on every rank names the same run."""
    base = f"{experiment or ''}\x1f{run_name or ''}"
    n = _slots.get(base, 0)
    _slots[base] = n + 1
    digest = hashlib.sha256(f"{base}\x1f{n}".encode()).hexdigest()[:24]
    return f"sidetrack/run/{digest}"


def _store():
    d = _dist()
    if d is None:
        return None
    try:
        from torch.distributed import distributed_c10d

        return distributed_c10d._get_default_store()
    except Exception:
        return None


def publish_run_id(slot: str, run_id: str) -> None:
    """Rank 0: puts the run id where the other ranks look for it. Does not wait."""
    st = _store()
    if st is not None:
        st.set(slot, run_id)


def receive_run_id(slot: str) -> Optional[str]:
    """Another rank: rank 0's run id for this slot, waiting for rank 0 to publish it (the
    store's timeout applies). None without an initialised process group."""
    st = _store()
    if st is None:
        return None
    return st.get(slot).decode()
