"""Which rank of a distributed job this process is, and one run id shared by all ranks.

torch.distributed is looked at only if the program imported torch itself: sidetrack never
imports torch on its own. Launchers (torchrun, Lightning, accelerate, SLURM wrappers) set RANK
and WORLD_SIZE, which are used when the process group is not initialised yet.
"""
from __future__ import annotations

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


def share_run_id(run_id: Optional[str]) -> Optional[str]:
    """Rank 0's run id on every rank, through the process group (a collective: every rank
    calls start_run at the same point, as SPMD code does). None when there is no initialised
    process group to share it through."""
    d = _dist()
    if d is None:
        return None
    box = [run_id if d.get_rank() == 0 else None]
    d.broadcast_object_list(box, src=0)
    return box[0]
