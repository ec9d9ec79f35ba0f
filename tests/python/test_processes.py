"""Threads, fork, multiprocessing (fork and spawn), DataLoader workers and torch.distributed:
every point lands in the right run, exactly once, and only the process that started a run
ends it."""
import multiprocessing as mp
import os
import threading

import pytest

import sidetrack
from pyutil import free_port


def test_threads_log_concurrently(node):
    n_threads, n = 8, 5000
    with sidetrack.start_run(capture_context=False) as run:
        def work(t):
            for i in range(n):
                sidetrack.log_metric(f"thread{t}", float(i), step=i)
                sidetrack.log_metric("shared", float(t), step=t * n + i)
        ts = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        stats = sidetrack.get_stats()
    assert stats["dropped_metrics"] == 0 and stats["lost_records"] == 0
    for t in range(n_threads):
        pts = node.wait_metric(run.run_id, f"thread{t}", n)
        assert [p["step"] for p in pts] == list(range(n))  # one thread: one order
    shared = node.wait_metric(run.run_id, "shared", n_threads * n)
    assert sorted(p["step"] for p in shared) == list(range(n_threads * n))


def test_os_fork_child_logs_into_the_parents_run(node):
    with sidetrack.start_run(capture_context=False) as run:
        sidetrack.log_metric("before_fork", 1.0)
        pid = os.fork()
        if pid == 0:  # the child: log, then leave without Python's exit handlers
            try:
                for i in range(100):
                    sidetrack.log_metric("from_child", float(i), step=i)
                os._exit(0)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        sidetrack.log_metric("after_fork", 1.0)
        # The child must not have ended the run.
        s = node.wait_run(run.run_id, lambda s: "from_child" in
                          {m["key"] for m in s["metrics"]})
        assert s["info"]["status"] == "RUNNING"
    pts = node.wait_metric(run.run_id, "from_child", 100)
    assert [p["step"] for p in pts] == list(range(100))
    node.wait_metric(run.run_id, "after_fork", 1)


def test_forked_child_leaving_the_with_block_does_not_end_the_run(node):
    with sidetrack.start_run(capture_context=False) as run:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                # The child runs on through the parent's `with` block and exits with an error:
                # the block's end in the child must not end (or fail) the parent's run.
                with sidetrack.active_run():
                    sidetrack.log_metric("child_alive", 1.0)
                    raise SystemExit(3)
            except SystemExit:
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        node.wait_metric(run.run_id, "child_alive", 1)
        assert node.show(run.run_id)["info"]["status"] == "RUNNING"
    assert node.wait_run(run.run_id, lambda s: s["info"]["status"] != "RUNNING")[
        "info"]["status"] == "FINISHED"


def _pool_task(i):
    sidetrack.log_metric("pool", float(i), step=i)
    return os.getpid()


def test_multiprocessing_fork_pool(node):
    with sidetrack.start_run(capture_context=False) as run:
        with mp.get_context("fork").Pool(3) as pool:
            pids = set(pool.map(_pool_task, range(300)))
    assert len(pids) >= 1
    pts = node.wait_metric(run.run_id, "pool", 300)
    assert sorted(p["step"] for p in pts) == list(range(300))
    assert node.wait_run(run.run_id, lambda s: s["info"]["status"] != "RUNNING")[
        "info"]["status"] == "FINISHED"


def _spawned(i, q):
    # A fresh interpreter: it finds the parent's run in $SIDETRACK_RUN_ID.
    import sidetrack as st

    for s in range(50):
        st.log_metric("spawned", float(i * 100 + s), step=i * 100 + s)
    q.put(st.active_run().run_id)


def test_multiprocessing_spawn_children_join_the_run(node):
    ctx = mp.get_context("spawn")
    with sidetrack.start_run(capture_context=False) as run:
        q = ctx.Queue()
        ps = [ctx.Process(target=_spawned, args=(i, q)) for i in range(2)]
        for p in ps:
            p.start()
        ids = {q.get(timeout=120) for _ in ps}
        for p in ps:
            p.join(60)
            assert p.exitcode == 0
        assert ids == {run.run_id}
        pts = node.wait_metric(run.run_id, "spawned", 100)
        # The children left and released the run; it is still running until we end it.
        assert node.show(run.run_id)["info"]["status"] == "RUNNING"
    assert sorted(p["step"] for p in pts) == sorted(i * 100 + s for i in range(2)
                                                    for s in range(50))
    assert node.wait_run(run.run_id, lambda s: s["info"]["status"] != "RUNNING")[
        "info"]["status"] == "FINISHED"


def test_dataloader_workers(node):
    torch = pytest.importorskip("torch", reason="torch not installed (Debian: python3-torch)")

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return 64

        def __getitem__(self, i):
            sidetrack.log_metric("sample_len", float(i), step=i)
            return torch.tensor(float(i))

    with sidetrack.start_run(capture_context=False) as run:
        dl = torch.utils.data.DataLoader(DS(), batch_size=8, num_workers=2)
        total = sum(float(b.sum()) for b in dl)
    assert total == sum(range(64))
    pts = node.wait_metric(run.run_id, "sample_len", 64)
    assert sorted(p["step"] for p in pts) == list(range(64))


def _rank_main(rank, world, port, q):
    import torch.distributed as dist

    import sidetrack as st

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    with st.start_run(run_name="ddp", capture_context=False) as run:
        st.log_param("lr", 0.1)
        st.log_param("who", f"rank{rank}")
        st.set_tag("written_by", f"rank{rank}")
        for i in range(20):
            st.log_metric("loss", rank + i / 100, step=i)
        dist.barrier()
        q.put((rank, run.run_id, run.rank, run.world_size))
    if rank == 0:  # code on rank 0 alone (a framework's logger) may start runs: no waiting
        with st.start_run(run_name="rank0-only", capture_context=False) as solo:
            st.log_metric("solo", 1.0)
        q.put(("solo", solo.run_id))
    dist.barrier()
    dist.destroy_process_group()


def test_torch_distributed_ranks_share_one_run(node):
    pytest.importorskip("torch", reason="torch not installed (Debian: python3-torch)")
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    ps = [ctx.Process(target=_rank_main, args=(r, 2, port, q)) for r in range(2)]
    for p in ps:
        p.start()
    got = [q.get(timeout=180) for _ in range(3)]
    for p in ps:
        p.join(60)
        assert p.exitcode == 0
    solo = [g[1] for g in got if g[0] == "solo"]
    (r0, id0, rk0, ws0), (r1, id1, rk1, ws1) = sorted(g for g in got if g[0] != "solo")
    assert len(solo) == 1 and solo[0] != id0
    node.wait_metric(solo[0], "solo", 1)
    assert id0 == id1 and (rk0, rk1) == (0, 1) and ws0 == ws1 == 2
    s = node.wait_run(id0, lambda s: s["info"]["status"] == "FINISHED"
                      and {"loss", "loss/rank1"} <= {m["key"] for m in s["metrics"]})
    assert s["params"] == {"lr": "0.1", "who": "rank0"}  # params from rank 0 only
    assert s["tags"]["written_by"] == "rank0"
    assert s["tags"]["sidetrack.world_size"] == "2"
    assert "sidetrack.rank.0.host" in s["tags"] and "sidetrack.rank.1.host" in s["tags"]
    l0 = node.wait_metric(id0, "loss", 20)
    l1 = node.wait_metric(id0, "loss/rank1", 20)
    assert [p["value"] for p in l0] == pytest.approx([i / 100 for i in range(20)])
    assert [p["value"] for p in l1] == pytest.approx([1 + i / 100 for i in range(20)])
