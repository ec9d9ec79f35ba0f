"""MLflow's fluent API against a real agent: runs, params, tags, metrics, artifacts, status."""
import json
import os
import subprocess
import sys

import pytest

import sidetrack
from conftest import metrics_of


def test_run_lifecycle_params_tags_metrics(node):
    sidetrack.set_experiment("pytest-fluent")
    with sidetrack.start_run(run_name="lifecycle", tags={"team": "vision"},
                             description="a test run", capture_context=False) as run:
        assert sidetrack.active_run() is run
        assert os.environ["SIDETRACK_RUN_ID"] == run.run_id
        assert run.info.run_id == run.run_id and len(run.run_id) == 32
        assert sidetrack.log_param("lr", 0.01) == 0.01
        sidetrack.log_params({"batch": 64, "opt": "adam"})
        sidetrack.set_tag("stage", 1)
        sidetrack.set_tags({"a": "b"})
        for i in range(100):
            sidetrack.log_metric("loss", 1.0 / (i + 1), step=i)
        sidetrack.log_metric("int_metric", 7)                 # int, step defaults to 0
        sidetrack.log_metric("at", 2.5, 3, timestamp=1_700_000_000_000)
        sidetrack.log_metrics({"m1": 1.0, "m2": 2, "m3": True}, step=9)
    assert sidetrack.active_run() is None
    assert "SIDETRACK_RUN_ID" not in os.environ
    s = node.wait_run(run.run_id, lambda s: s["info"]["status"] == "FINISHED")
    assert s["info"]["experiment"] == "pytest-fluent"
    assert s["info"]["run_name"] == "lifecycle"
    assert s["params"] == {"lr": "0.01", "batch": "64", "opt": "adam"}
    assert s["tags"]["team"] == "vision" and s["tags"]["stage"] == "1"
    assert s["tags"]["mlflow.note.content"] == "a test run"
    assert s["tags"]["mlflow.runName"] == "lifecycle"
    pts = node.wait_metric(run.run_id, "loss", 100)
    assert [p["step"] for p in pts] == list(range(100))
    assert pts[9]["value"] == pytest.approx(0.1)
    at = node.metric(run.run_id, "at")
    assert at == [{"step": 3, "timestamp": 1_700_000_000_000, "value": 2.5}]
    m = metrics_of(s)
    assert m["int_metric"]["latest"]["value"] == 7 and m["int_metric"]["latest"]["step"] == 0
    assert m["m2"]["latest"] == pytest.approx({"value": 2, "step": 9,
                                               "timestamp": m["m2"]["latest"]["timestamp"]})
    assert m["m3"]["latest"]["value"] == 1


def test_exception_marks_failed_and_ctrl_c_killed(node):
    with pytest.raises(RuntimeError):
        with sidetrack.start_run(capture_context=False) as failed:
            raise RuntimeError("boom")
    with pytest.raises(KeyboardInterrupt):
        with sidetrack.start_run(capture_context=False) as killed:
            raise KeyboardInterrupt
    assert node.wait_run(failed.run_id, lambda s: s["info"]["status"] != "RUNNING")[
        "info"]["status"] == "FAILED"
    assert node.wait_run(killed.run_id, lambda s: s["info"]["status"] != "RUNNING")[
        "info"]["status"] == "KILLED"
    assert failed.info.status == "FAILED" and killed.info.status == "KILLED"


def test_nested_runs_carry_the_parent(node):
    with sidetrack.start_run(run_name="parent", capture_context=False) as parent:
        with pytest.raises(sidetrack.SidetrackError, match="already active"):
            sidetrack.start_run()
        with sidetrack.start_run(run_name="child", nested=True) as child:
            assert sidetrack.active_run() is child
            sidetrack.log_metric("child_metric", 1.0)
        assert sidetrack.active_run() is parent
    s = node.wait_run(child.run_id, lambda s: s["info"]["status"] == "FINISHED")
    assert s["info"]["parent_run_id"] == parent.run_id
    assert s["tags"]["mlflow.parentRunId"] == parent.run_id


def test_run_id_variable_follows_the_stack_whatever_the_end_order(node):
    before = os.environ.get("SIDETRACK_RUN_ID")
    a = sidetrack.start_run(capture_context=False)
    b = sidetrack.start_run(nested=True)
    c = sidetrack.start_run(nested=True)
    assert os.environ["SIDETRACK_RUN_ID"] == c.run_id
    a_run = a
    from sidetrack import _fluent

    _fluent._end(b, "FINISHED")  # out of order: b ends below c
    assert os.environ["SIDETRACK_RUN_ID"] == c.run_id
    sidetrack.end_run()  # c
    assert sidetrack.active_run() is a_run
    assert os.environ["SIDETRACK_RUN_ID"] == a.run_id
    sidetrack.end_run()
    assert os.environ.get("SIDETRACK_RUN_ID") == before


def test_end_run_and_auto_start(node):
    sidetrack.end_run()  # no active run: nothing happens
    sidetrack.log_metric("auto", 1.0)  # MLflow starts a run on the first call
    run = sidetrack.active_run()
    assert run is not None
    sidetrack.end_run("KILLED")
    assert sidetrack.active_run() is None
    assert sidetrack.last_active_run() is run
    assert node.wait_run(run.run_id, lambda s: s["info"]["status"] != "RUNNING")[
        "info"]["status"] == "KILLED"
    with pytest.raises(sidetrack.InvalidArgument):
        with sidetrack.start_run(capture_context=False):
            sidetrack.end_run("DONE")


def test_log_into_another_run_by_id(node):
    with sidetrack.start_run(capture_context=False) as a:
        pass
    with sidetrack.start_run(capture_context=False) as b:
        sidetrack.log_metric("elsewhere", 3.0, step=1, run_id=a.run_id)
        sidetrack.log_param("p", "x", run_id=a.run_id)
        sidetrack.log_metric("here", 1.0)
    node.wait_metric(a.run_id, "elsewhere", 1)
    assert node.wait_run(a.run_id, lambda s: s["params"])["params"] == {"p": "x"}
    assert node.metric(b.run_id, "elsewhere") == []


def test_resume_with_run_id_ends_it(node):
    with sidetrack.start_run(capture_context=False) as first:
        pass
    node.wait_run(first.run_id, lambda s: s["info"]["status"] == "FINISHED")
    with sidetrack.start_run(run_id=first.run_id) as again:
        assert again.run_id == first.run_id
        sidetrack.log_metric("resumed", 1.0)
    node.wait_metric(first.run_id, "resumed", 1)


def test_bad_input_gives_clear_errors(node):
    with sidetrack.start_run(capture_context=False):
        with pytest.raises(sidetrack.InvalidArgument, match="invalid key") as e:
            sidetrack.log_metric("bad//key", 1.0)
        assert e.value.code == -3001
        assert isinstance(e.value, ValueError)
        with pytest.raises(TypeError, match="must be a number, not str"):
            sidetrack.log_metric("k", "1.0")
        with pytest.raises(TypeError, match="must be a number, not NoneType"):
            sidetrack.log_metric("k", None)
        with pytest.raises(TypeError, match="step must be an int"):
            sidetrack.log_metric("k", 1.0, step=1.5)
        with pytest.raises(TypeError, match="metric key must be str"):
            sidetrack.log_metric(3, 1.0)
        with pytest.raises(TypeError, match="unexpected keyword argument 'stpe'"):
            sidetrack.log_metric("k", 1.0, stpe=1)
        with pytest.raises(TypeError, match="missing required argument 'value'"):
            sidetrack.log_metric("k")
        with pytest.raises(OverflowError):
            sidetrack.log_metric("k", 1.0, step=2**70)
        with pytest.raises(sidetrack.InvalidArgument, match="at most 6000"):
            sidetrack.log_param("big", "x" * 6001)
        with pytest.raises(FileNotFoundError):
            sidetrack.log_artifact("/nonexistent/file")
        with pytest.raises(IsADirectoryError):
            sidetrack.log_artifact("/tmp")
    with pytest.raises(sidetrack.InvalidArgument, match="experiment_id"):
        sidetrack.start_run(experiment_id="1")
    with pytest.raises(sidetrack.InvalidArgument, match="1-500"):
        sidetrack.set_experiment("")


def test_artifacts_text_dict_figure(node, tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("A")
    (tmp_path / "d" / "sub" / "b.txt").write_text("B")
    f = tmp_path / "model.bin"
    f.write_bytes(b"\x00\x01" * 1000)
    with sidetrack.start_run(capture_context=False) as run:
        sidetrack.log_artifact(f)
        sidetrack.log_artifact(str(f), artifact_path="ckpt")
        f.unlink()  # the copy was taken when the call returned
        sidetrack.log_artifacts(tmp_path / "d", artifact_path="tree")
        sidetrack.log_text("hello\n", "notes/hello.txt")
        sidetrack.log_dict({"a": [1, 2]}, "cfg/config.json")
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots()
            ax.plot([1, 2, 3])
            sidetrack.log_figure(fig, "plots/curve.png")
            has_mpl = True
        except ImportError:
            has_mpl = False
        with pytest.raises(TypeError, match="matplotlib figure"):
            sidetrack.log_figure(object(), "x.png")
    want = {"model.bin", "ckpt/model.bin", "tree/a.txt", "tree/sub/b.txt", "notes/hello.txt",
            "cfg/config.json"} | ({"plots/curve.png"} if has_mpl else set())
    s = node.wait_run(run.run_id, lambda s: {a["path"] for a in s["artifacts"]} >= want)
    assert node.artifact(run.run_id, "ckpt/model.bin") == b"\x00\x01" * 1000
    assert node.artifact(run.run_id, "tree/sub/b.txt") == b"B"
    assert node.artifact(run.run_id, "notes/hello.txt") == b"hello\n"
    assert json.loads(node.artifact(run.run_id, "cfg/config.json")) == {"a": [1, 2]}
    if has_mpl:
        assert node.artifact(run.run_id, "plots/curve.png")[:8] == b"\x89PNG\r\n\x1a\n"
    sizes = {a["path"]: a["size"] for a in s["artifacts"]}
    assert sizes["model.bin"] == 2000


def test_context_tags_captured(node):
    with sidetrack.start_run() as run:
        pass
    s = node.wait_run(run.run_id, lambda s: "sidetrack.python.version" in s["tags"])
    t = s["tags"]
    assert t["mlflow.source.type"] == "LOCAL"
    assert t["sidetrack.python.executable"] == sys.executable
    assert "sidetrack.host" in t and "mlflow.user" in t
    req = node.artifact(run.run_id, "environment/requirements.txt").decode()
    assert "pytest==" in req
    assert t["sidetrack.python.packages.count"] == str(len(req.splitlines()))
    # This test file lives in the sidetrack git work tree (when run from a checkout).
    src = os.path.dirname(os.path.abspath(__file__))
    if subprocess.run(["git", "-C", src, "rev-parse"], capture_output=True).returncode == 0:
        pass  # the entry point is pytest's, whose directory may not be a repo: no claim


def test_uncaught_exception_at_exit_marks_failed(node, tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(
        "import sidetrack\n"
        "run = sidetrack.start_run(capture_context=False)\n"
        "print(run.run_id, flush=True)\n"
        "sidetrack.log_metric('x', 1.0)\n"
        "raise SystemError('training blew up')\n")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       env={**os.environ, "SIDETRACK_RUN_ID": ""}, timeout=60)
    assert p.returncode == 1 and "training blew up" in p.stderr
    run_id = p.stdout.split()[0]
    assert node.wait_run(run_id, lambda s: s["info"]["status"] != "RUNNING")[
        "info"]["status"] == "FAILED"
    # A normal exit with a run left active ends it FINISHED, as MLflow does.
    script.write_text("import sidetrack\nprint(sidetrack.start_run(capture_context=False)"
                      ".run_id)\n")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                       env={**os.environ, "SIDETRACK_RUN_ID": ""}, timeout=60)
    assert p.returncode == 0, p.stderr
    assert node.wait_run(p.stdout.split()[0], lambda s: s["info"]["status"] != "RUNNING")[
        "info"]["status"] == "FINISHED"


def test_help_is_useful():
    doc = sidetrack.log_metric.__doc__
    assert "step" in doc and "CUDA" in doc and "timestamp" in doc
    for name in sidetrack.__all__:
        obj = getattr(sidetrack, name)
        if callable(obj) and not isinstance(obj, type):
            assert obj.__doc__, f"{name} has no docstring"
    import inspect

    assert "run_id" in str(inspect.signature(sidetrack.log_metric))


def test_stats():
    with sidetrack.start_run(capture_context=False):
        sidetrack.log_metric("s", 1.0)
        st = sidetrack.get_stats()
    assert st["lanes"] >= 1 and st["dropped_metrics"] == 0 and st["lost_records"] == 0


def test_the_extension_survives_hostile_arguments(node):
    """Python code run in the middle of a call (an __index__, a __hash__) may end the run or
    close the client: the call then raises, it never touches freed memory."""
    from sidetrack import _sidetrack

    client = _sidetrack.Client()
    run = client.run_start("pytest-hostile", "hostile")

    class Step:
        def __index__(self):
            run.end()
            return 1

    with pytest.raises(sidetrack.SidetrackError, match="already ended"):
        run.log_metric("k", 1.0, Step())
    run = client.run_start("pytest-hostile", "hostile2")
    with pytest.raises(sidetrack.InvalidArgument, match="NUL"):
        run.log_metric("loss\0junk", 1.0)
    with pytest.raises((sidetrack.InvalidArgument, ValueError)):
        run.log_param("p\0x", "v")
    # A bad key anywhere in log_metrics logs nothing of the dict.
    with pytest.raises(sidetrack.InvalidArgument):
        run.log_metrics({"good": 1.0, "bad//key": 2.0}, step=1)
    other = _sidetrack.Client()
    with pytest.raises(ValueError, match="another Client"):
        other.run_start("x", "y", run)
    run_id = run.id
    run.log_metric("after", 1.0)
    client.close()
    with pytest.raises(sidetrack.SidetrackError, match="client is closed"):
        run.log_metric("k", 1.0)
    node.wait_metric(run_id, "after", 1)
    assert node.metric(run_id, "good") == []
