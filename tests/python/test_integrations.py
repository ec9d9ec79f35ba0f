"""sidetrack.integrations: Lightning, transformers, Keras, Dask.

Lightning, transformers and Keras are not Debian packages, so their end-to-end tests (a real
Trainer / fit) skip where they are not installed (pip). What does not need them runs always:
the shared helpers of integrations/_common.py (hyperparameter flattening, metric picking, key
sanitizing, run ownership, checkpoints), and each integration's own class loaded over a small
stand-in for its framework's base class (a logger/callback base with no behaviour), driven the
way the framework drives it, against a real agent. Dask runs for real (python3-distributed).
"""
import argparse
import dataclasses
import importlib
import importlib.util
import json
import os
import pickle
import subprocess
import sys
import time
import types
import warnings

import pytest

import sidetrack
from conftest import metrics_of
from sidetrack import _distributed
from sidetrack.integrations import _common

REASON_LIGHTNING = ("PyTorch Lightning is not installed: `pip install lightning` (or "
                    "pytorch-lightning) enables this test; Debian has no package of it")
REASON_TRANSFORMERS = ("transformers is not installed: `pip install transformers` enables this "
                       "test; Debian has no package of it")
REASON_KERAS = ("neither Keras nor TensorFlow is installed: `pip install keras` (with a "
                "backend) or `pip install tensorflow` enables this test; Debian has no package "
                "of either")


@pytest.fixture(autouse=True)
def _no_capture(monkeypatch):
    # Runs started by the integrations capture git/packages context by default: not the
    # subject here, and slow.
    monkeypatch.setenv("SIDETRACK_CAPTURE", "0")


def status_of(node, run_id, want):
    return node.wait_run(run_id, lambda s: s["info"]["status"] == want)


def steps_of(node, run_id, key, n):
    return [p["step"] for p in node.wait_metric(run_id, key, n)]


# ---- the package ----------------------------------------------------------------------------

def test_package_imports_no_framework():
    code = ("import sys, sidetrack.integrations, sidetrack.integrations._common\n"
            "heavy = ('torch', 'numpy', 'distributed', 'dask', 'transformers', 'lightning',\n"
            "         'pytorch_lightning', 'keras', 'tensorflow')\n"
            "print([m for m in heavy if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("module, roots, words", [
    ("lightning", ("lightning", "pytorch_lightning"), ("pip install lightning",
                                                      "pytorch-lightning")),
    ("transformers", ("transformers",), ("pip install transformers",)),
    ("keras", ("keras", "tensorflow"), ("pip install keras", "pip install tensorflow")),
])
def test_missing_framework_import_error_names_the_package(module, roots, words):
    if any(importlib.util.find_spec(r) is not None for r in roots):
        pytest.skip(f"{'/'.join(roots)} is installed: no ImportError to check")
    with pytest.raises(ImportError) as e:
        importlib.import_module(f"sidetrack.integrations.{module}")
    for w in words:
        assert w in str(e.value)
    sys.modules.pop(f"sidetrack.integrations.{module}", None)


# ---- _common: hyperparameters, keys, values -------------------------------------------------

@dataclasses.dataclass
class _Opt:
    name: str = "adam"
    betas: tuple = (0.9, 0.999)


def test_flatten_params_like_lightning_and_mlflow():
    params = {"lr": 0.1, "model": {"layers": 3, "act": {"kind": "relu"}},
              "ns": argparse.Namespace(seed=7, sub=argparse.Namespace(x=1)), "opt": _Opt(),
              "sizes": [1, 2], "empty": {}, 5: "five", "none": None}
    assert _common.flatten_params(params) == {
        "lr": 0.1, "model/layers": 3, "model/act/kind": "relu", "ns/seed": 7, "ns/sub/x": 1,
        "opt/name": "adam", "opt/betas": (0.9, 0.999), "sizes": [1, 2], "5": "five",
        "none": None}
    assert _common.flatten_params(argparse.Namespace(a={"b": 1}), sep=".") == {"a.b": 1}
    assert _common.flatten_params(None) == {}
    assert _common.flatten_params({"a": {"b": 1}}, prefix="hp") == {"hp/a/b": 1}
    loop = {"x": 1}
    loop["self"] = loop
    flat = _common.flatten_params(loop)    # a mapping containing itself stops, not recurses
    assert flat["x"] == 1 and len(flat) < 200
    with pytest.raises(TypeError):
        _common.flatten_params([1, 2])


def test_params_for_logging_values_and_keys():
    def fn():
        pass

    p = _common.params_for_logging({"long": "x" * 7000, "cls": argparse.Namespace, "fn": fn,
                                    "bad@key!": 1, "nested": {"a b": 2.5}, "@@": "dropped",
                                    "surrogate": "a\udc80b", "nul": "a\x00b"})
    assert p["long"] == "x" * 6000
    assert p["cls"] == "argparse.Namespace"
    assert p["fn"].endswith("fn") and "0x" not in p["fn"]
    assert p["badkey"] == "1" and p["nested/a b"] == "2.5"
    assert "@@" not in p and "" not in p
    assert p["surrogate"].encode("utf-8") and p["nul"] == "ab"


@pytest.mark.parametrize("raw, key", [
    ("train/loss", "train/loss"), ("acc@1", "acc1"), ("val loss (ema)", "val loss ema"),
    ("/lead//double/", "lead/double"), ("a/../b/./c", "a/b/c"), ("ünï", "ünï"),
    ("!!!", None), ("..", None), ("k" * 300, "k" * 250), (3, "3"),
])
def test_sanitize_key(raw, key):
    assert _common.sanitize_key(raw) == key


def test_sanitized_keys_are_accepted_by_sidetrack(node):
    raws = ["acc@1", "/lead//double/", "a/../b", "ü" * 300, "x" * 300, "val loss (ema)"]
    with sidetrack.start_run(capture_context=False) as run:
        for i, raw in enumerate(raws):
            sidetrack.log_metric(_common.sanitize_key(raw), float(i))
    s = node.wait_run(run.run_id, lambda s: len(s["metrics"]) == len(raws))
    assert sorted(metrics_of(s)) == sorted(_common.sanitize_key(r) for r in raws)


class _TFLike:
    """Stands for a TensorFlow EagerTensor: shape and __float__, no numbers.Real."""

    def __init__(self, v, shape=()):
        self.v, self.shape = v, shape

    def __float__(self):
        return float(self.v)


def test_metric_value_picks_numbers_and_passes_tensors_through():
    np = pytest.importorskip("numpy", reason="python3-numpy is not installed")
    torch = pytest.importorskip("torch", reason="python3-torch is not installed")
    t = torch.tensor(0.5)
    assert _common.metric_value(t) is t                     # no .item(): passed as it is
    assert _common.metric_value(torch.tensor([1.5])) is not None
    for ok in (1, 2.5, np.float32(1.5), np.int64(3), np.array(2.0), _TFLike(1.0),
               _TFLike(1.0, (1,)), float("nan")):
        assert _common.metric_value(ok) is ok
    for bad in (None, True, np.bool_(True), "1.0", b"1", [1.0], {"a": 1}, np.zeros(3),
                np.array(["a"]), torch.zeros(2), torch.tensor(True), _TFLike(1.0, (2,)),
                1 + 2j, object()):
        assert _common.metric_value(bad) is None, bad
    m, skipped = _common.metrics_for_logging(
        {"loss": 0.25, "lr": np.float64(1e-3), "t": t, "msg": "hi", "@": 1.0, "n": None},
        prefix="train-")
    assert m == {"train-loss": 0.25, "train-lr": np.float64(1e-3), "train-t": t}
    assert sorted(skipped) == ["@", "msg", "n"]
    assert _common.metrics_for_logging(None) == ({}, [])


def test_lightning_status():
    assert _common.lightning_status("success") == "FINISHED"
    assert _common.lightning_status("finished") == "FINISHED"
    assert _common.lightning_status("failed") == "FAILED"
    for other in ("interrupted", "", None, "KILLED"):
        assert _common.lightning_status(other) == "KILLED"


class _Var:
    """A Keras/TF variable: numpy() gives the value."""

    def __init__(self, v):
        self.v = v

    def numpy(self):
        return self.v


class _Schedule:
    def __call__(self, step):
        return 0.1

    def get_config(self):
        return {"initial_learning_rate": 0.1, "decay_steps": 100}


class Adam:
    def __init__(self, learning_rate):
        self.learning_rate = learning_rate


class Legacy:
    lr = 0.5


def test_keras_params():
    params = {"epochs": 3, "steps": 10, "verbose": 1, "batch_size": None}
    assert _common.keras_params(params) == {"epochs": 3, "steps": 10}
    assert _common.keras_params(params, Adam(0.01)) == {
        "epochs": 3, "steps": 10, "optimizer_name": "Adam", "learning_rate": 0.01}
    assert _common.keras_params({}, Adam(_Var(0.25)))["learning_rate"] == 0.25
    assert _common.keras_params({}, Legacy())["learning_rate"] == 0.5
    assert _common.keras_params({"batch_size": 32, "samples": 320}, Adam(_Schedule())) == {
        "batch_size": 32, "samples": 320, "optimizer_name": "Adam",
        "learning_rate": "_Schedule", "learning_rate/initial_learning_rate": 0.1,
        "learning_rate/decay_steps": 100}
    assert _common.keras_params(None, object()) == {"optimizer_name": "object"}


# ---- _common: runs --------------------------------------------------------------------------

def test_start_owned_run_nests_under_the_active_run_and_ends_only_its_own(node):
    with sidetrack.start_run(capture_context=False) as outer:
        mine = _common.start_owned_run(run_name="mine", tags={"k": "v"})
        assert mine.info.parent_run_id == outer.run_id
        inner = sidetrack.start_run(nested=True, capture_context=False)   # the user's, inside
        _common.end_owned_run(mine, "KILLED")
        assert sidetrack.active_run() is inner and not _common.is_active(mine)
        sidetrack.end_run()
        assert sidetrack.active_run() is outer
        assert os.environ["SIDETRACK_RUN_ID"] == outer.run_id     # not the ended run's
    assert "SIDETRACK_RUN_ID" not in os.environ
    s = status_of(node, mine.run_id, "KILLED")
    assert s["info"]["parent_run_id"] == outer.run_id and s["tags"]["k"] == "v"
    assert s["info"]["run_name"] == "mine"
    status_of(node, inner.run_id, "FINISHED")
    status_of(node, outer.run_id, "FINISHED")


def test_start_owned_run_in_a_distributed_job_is_no_collective(node, monkeypatch):
    # On rank 0 of a torch.distributed job, a top-level start_run() shares its run with the
    # other ranks; a logger's run on rank 0 alone is its own, shared with no one.
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert _distributed.rank_and_size() == (0, 2)

    def shared(*args):
        raise AssertionError("start_owned_run shared its run with the other ranks")

    monkeypatch.setattr(_distributed, "publish_run_id", shared)
    monkeypatch.setattr(_distributed, "receive_run_id", shared)
    run = _common.start_owned_run(run_name="rank0-only", experiment_name="pytest-integrations")
    assert run.info.parent_run_id is None
    _common.end_owned_run(run, "FINISHED")
    s = status_of(node, run.run_id, "FINISHED")
    assert s["info"]["experiment"] == "pytest-integrations"


def test_start_owned_run_attached_from_the_environment_is_released_not_ended(node):
    # A child process (SIDETRACK_RUN_ID set by the parent's start_run, no run of its own):
    # the integration's run is the parent's, and ending it only releases it.
    code = ("import sidetrack\n"
            "from sidetrack.integrations import _common as c\n"
            "r = c.start_owned_run(run_name='ignored')\n"
            "assert not r._owns\n"
            "sidetrack.log_metric('from_child', 1.0)\n"
            "c.end_owned_run(r, 'FAILED')\n"
            "print(r.run_id)\n")
    with sidetrack.start_run(capture_context=False) as parent:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == parent.run_id
        node.wait_metric(parent.run_id, "from_child", 1)
        time.sleep(0.3)
        assert node.show(parent.run_id)["info"]["status"] == "RUNNING"
    status_of(node, parent.run_id, "FINISHED")


def test_run_handle_logs_into_its_run_whatever_is_active(node, tmp_path):
    with sidetrack.start_run(capture_context=False) as target:
        h = _common.RunHandle(target.run_id)
        assert h.info.run_id == target.run_id
        with sidetrack.start_run(nested=True, capture_context=False) as other:
            h.log_metric("h_metric", 1.5, step=2)
            h.log_metrics({"h_a": 1.0, "h_b": 2}, step=3)
            h.log_param("h_p", 4)
            h.log_params({"h_q": "x"})
            h.set_tag("h_t", "y")
            h.set_tags({"h_u": "z"})
            h.log_text("text", "notes/h.txt")
            h.log_dict({"a": 1}, "h.json")
            f = tmp_path / "f.bin"
            f.write_bytes(b"\x00\x01")
            h.log_artifact(str(f), "files")
            (tmp_path / "d").mkdir()
            (tmp_path / "d" / "g.txt").write_text("g")
            h.log_artifacts(str(tmp_path / "d"), "dir")
            assert sidetrack.active_run() is other
            assert "RunHandle" in repr(h) and h.info.run_id == target.run_id
    s = node.wait_run(target.run_id, lambda s: len(s["metrics"]) == 3 and len(s["artifacts"]) == 4)
    assert s["params"] == {"h_p": "4", "h_q": "x"}
    assert s["tags"]["h_t"] == "y" and s["tags"]["h_u"] == "z"
    assert node.metric(target.run_id, "h_metric")[0]["step"] == 2
    assert node.artifact(target.run_id, "files/f.bin") == b"\x00\x01"
    assert node.artifact(target.run_id, "dir/g.txt") == b"g"
    assert json.loads(node.artifact(target.run_id, "h.json")) == {"a": 1}
    o = node.wait_run(other.run_id, lambda s: s["info"]["status"] == "FINISHED")
    assert o["metrics"] == [] and o["params"] == {}


# ---- _common: Lightning checkpoints ---------------------------------------------------------

def _ckpt(path, data, mtime):
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return str(path)


def test_checkpoint_files_and_log_checkpoints(node, tmp_path):
    torch = pytest.importorskip("torch", reason="python3-torch is not installed")
    t0 = time.time() - 100
    a = _ckpt(tmp_path / "epoch=0.ckpt", b"A", t0)
    b = _ckpt(tmp_path / "epoch=1.ckpt", b"B", t0 + 1)
    last = _ckpt(tmp_path / "last.ckpt", b"L", t0 + 2)
    cb = types.SimpleNamespace(best_k_models={a: torch.tensor(0.5), b: torch.tensor(0.25),
                                              str(tmp_path / "gone.ckpt"): torch.tensor(9.0)},
                               best_model_path=b, last_model_path=last, monitor="val_loss")
    files = _common.checkpoint_files(cb)
    assert [p for p, _ in files] == [a, b, last]                 # oldest first, existing only
    assert files[1][1]["aliases"] == ["best"] and files[1][1]["score"] == 0.25
    assert files[2][1]["aliases"] == ["last"] and files[2][1]["score"] is None
    assert files[0][1]["monitor"] == "val_loss"
    with sidetrack.start_run(capture_context=False) as run:
        h = _common.RunHandle(run.run_id)
        logged = {}
        assert _common.log_checkpoints(h, cb, logged) == [
            "checkpoints/epoch=0.ckpt", "checkpoints/epoch=1.ckpt", "checkpoints/last.ckpt"]
        assert _common.log_checkpoints(h, cb, logged) == []       # nothing new
        _ckpt(tmp_path / "last.ckpt", b"L2", t0 + 3)                # last.ckpt saved again
        assert _common.log_checkpoints(h, cb, logged) == ["checkpoints/last.ckpt"]
    assert _common.checkpoint_files(types.SimpleNamespace()) == []
    node.wait_run(run.run_id, lambda s: len(s["artifacts"]) == 6)
    assert node.artifact(run.run_id, "checkpoints/epoch=1.ckpt") == b"B"
    assert node.artifact(run.run_id, "checkpoints/last.ckpt") == b"L2"
    meta = json.loads(node.artifact(run.run_id, "checkpoints/epoch=1.ckpt.json"))
    assert meta == {"path": b, "aliases": ["best"], "monitor": "val_loss", "score": 0.25}


# ---- the integrations over stand-ins for their frameworks -----------------------------------

def _module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


@pytest.fixture
def load_with_stand_ins(monkeypatch):
    """Imports sidetrack.integrations.<name> over stand-in framework modules, and forgets
    that import afterwards (so that a real framework, where installed, is imported anew)."""
    loaded = []

    def load(name, stand_ins):
        for k, v in stand_ins.items():
            monkeypatch.setitem(sys.modules, k, v)
        full = f"sidetrack.integrations.{name}"
        saved = sys.modules.pop(full, None)
        loaded.append((name, full, saved))
        return importlib.import_module(full)

    yield load
    import sidetrack.integrations as pkg

    for name, full, saved in loaded:
        sys.modules.pop(full, None)
        if saved is not None:
            sys.modules[full] = saved
            setattr(pkg, name, saved)
        elif hasattr(pkg, name):
            delattr(pkg, name)


def _lightning_stand_ins():
    class Logger:
        """Lightning's Logger as far as SidetrackLogger relies on it."""

        def save(self):
            self.saved = getattr(self, "saved", 0) + 1

    def rank_zero_only(fn):
        return fn

    rank_zero_only.rank = 0
    logger_mod = _module("lightning.pytorch.loggers.logger", Logger=Logger,
                         rank_zero_experiment=lambda fn: fn)
    rank_zero = _module("lightning.pytorch.utilities.rank_zero", rank_zero_only=rank_zero_only)
    return {"lightning": _module("lightning"), "lightning.pytorch": _module("lightning.pytorch"),
            "lightning.pytorch.loggers": _module("lightning.pytorch.loggers"),
            "lightning.pytorch.loggers.logger": logger_mod,
            "lightning.pytorch.utilities": _module("lightning.pytorch.utilities"),
            "lightning.pytorch.utilities.rank_zero": rank_zero}


def test_lightning_logger_over_a_stand_in(node, load_with_stand_ins, tmp_path):
    torch = pytest.importorskip("torch", reason="python3-torch is not installed")
    mod = load_with_stand_ins("lightning", _lightning_stand_ins())
    logger = mod.SidetrackLogger(experiment_name="pytest-lightning", run_name="stand-in",
                                 tags={"team": "t"}, log_model=True)
    assert sidetrack.active_run() is None                         # started on first use
    assert logger.name == "pytest-lightning" and logger.save_dir is None
    logger.log_hyperparams({"lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.9},
                            "args": argparse.Namespace(seed=3), "text": "y" * 7000})
    run_id = logger.version
    assert run_id == logger.run_id == sidetrack.active_run().run_id
    assert isinstance(logger.experiment, mod.RunHandle) and logger.experiment.run_id == run_id
    loss = torch.tensor(0.75)
    with pytest.warns(UserWarning, match="'note'"):
        logger.log_metrics({"train/loss": loss, "acc@1": 0.5, "epoch": 0, "note": "x"}, step=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                            # warned once per key
        logger.log_metrics({"note": "x", "epoch": 1}, step=7)
    ck = _ckpt(tmp_path / "best.ckpt", b"CK", time.time())
    cb = types.SimpleNamespace(best_k_models={ck: torch.tensor(0.1)}, best_model_path=ck,
                               last_model_path="", monitor="val", save_top_k=1)
    logger.after_save_checkpoint(cb)                              # True: logged at the end
    logger.finalize("success")
    assert sidetrack.active_run() is None and logger.saved == 1
    s = status_of(node, run_id, "FINISHED")
    assert s["info"]["experiment"] == "pytest-lightning" and s["info"]["run_name"] == "stand-in"
    assert s["tags"]["team"] == "t"
    assert s["params"] == {"lr": "0.1", "optimizer/name": "sgd", "optimizer/momentum": "0.9",
                           "args/seed": "3", "text": "y" * 6000}
    assert steps_of(node, run_id, "epoch", 2) == [3, 7]
    assert node.wait_metric(run_id, "train/loss", 1)[0]["value"] == 0.75
    assert node.wait_metric(run_id, "acc1", 1)[0]["step"] == 3
    assert node.artifact(run_id, "checkpoints/best.ckpt") == b"CK"

    # trainer.test() after fit: the same run again, ended again with the new stage's status
    logger.log_metrics({"test/acc": 0.9}, step=8)
    assert sidetrack.active_run().run_id == run_id
    logger.finalize("failed")
    assert sidetrack.active_run() is None
    status_of(node, run_id, "FAILED")
    assert node.wait_metric(run_id, "test/acc", 1)[0]["step"] == 8

    # a copy (spawned DDP processes get one) logs into the run and never ends it
    copy = pickle.loads(pickle.dumps(logger))
    copy.log_metrics({"from_copy": 1.0}, step=9)
    copy.finalize("success")
    assert node.wait_metric(run_id, "from_copy", 1)[0]["step"] == 9
    time.sleep(0.2)
    assert node.show(run_id)["info"]["status"] == "FAILED"


def test_lightning_logger_nested_attached_and_all_checkpoints(node, load_with_stand_ins,
                                                                tmp_path):
    mod = load_with_stand_ins("lightning", _lightning_stand_ins())
    fresh = mod.SidetrackLogger()
    fresh.finalize("success")                    # nothing logged: no run started
    assert fresh._run_id is None and sidetrack.active_run() is None
    with sidetrack.start_run(capture_context=False) as user:
        child = mod.SidetrackLogger(run_name="child", log_model="all", prefix="fit")
        child.log_metrics({"loss": 1.0}, step=0)
        ck = _ckpt(tmp_path / "e0.ckpt", b"E0", time.time())
        child.after_save_checkpoint(types.SimpleNamespace(
            best_k_models={}, best_model_path=ck, last_model_path="", monitor=None,
            save_top_k=1))
        assert node.wait_run(child.version, lambda s: s["artifacts"])  # logged at once
        child.finalize("interrupted")
        assert sidetrack.active_run() is user

        into = mod.SidetrackLogger(run_id=user.run_id, tags={"via": "run_id"})
        into.log_hyperparams(argparse.Namespace(depth=2))
        into.log_metrics({"m": 2.0}, step=1)
        into.finalize("failed")
        assert sidetrack.active_run() is user and into.version == user.run_id
    c = status_of(node, child.version, "KILLED")
    assert c["info"]["parent_run_id"] == user.run_id and c["info"]["run_name"] == "child"
    assert node.wait_metric(child.version, "fit-loss", 1)
    assert node.artifact(child.version, "checkpoints/e0.ckpt") == b"E0"
    u = status_of(node, user.run_id, "FINISHED")                  # not FAILED: not its run
    assert u["params"] == {"depth": "2"} and u["tags"]["via"] == "run_id"
    assert node.wait_metric(user.run_id, "m", 1)
    with pytest.raises(ValueError):
        mod.SidetrackLogger(log_model="best")


class _State(types.SimpleNamespace):
    pass


def _hf_args(tmp_path, **kw):
    d = {"output_dir": str(tmp_path), "learning_rate": 5e-5, "run_name": "hf-run",
         "lr_scheduler_kwargs": {"power": 2}, "report_to": [], **kw}
    return types.SimpleNamespace(to_dict=lambda: dict(d), **d)


def test_transformers_callback_over_a_stand_in(node, load_with_stand_ins, tmp_path):
    torch = pytest.importorskip("torch", reason="python3-torch is not installed")
    mod = load_with_stand_ins("transformers",
                              {"transformers": _module("transformers", TrainerCallback=object)})
    cb = mod.SidetrackCallback(experiment_name="pytest-hf", tags={"k": "v"},
                               log_checkpoints=True)
    args = _hf_args(tmp_path)
    config = types.SimpleNamespace(to_dict=lambda: {
        "hidden_size": 8, "learning_rate": "config's", "id2label": {0: "neg", 1: "pos"}})
    model = types.SimpleNamespace(config=config)
    state = _State(is_world_process_zero=True, global_step=0)
    cb.on_train_begin(args, state, None, model=model)
    run_id = cb.run_id
    assert sidetrack.active_run().run_id == run_id
    for step in (5, 10):
        state.global_step = step
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cb.on_log(args, state, None, logs={"loss": torch.tensor(1.0 / step),
                                               "learning_rate": 1e-4, "epoch": step / 10,
                                               "note": "text"})
    ckpt = tmp_path / "checkpoint-10"
    (ckpt / "sub").mkdir(parents=True)
    (ckpt / "model.bin").write_bytes(b"W")
    (ckpt / "sub" / "state.json").write_text("{}")
    cb.on_save(args, state, None)
    cb.on_train_end(args, state, None)
    assert sidetrack.active_run() is None
    state.global_step = 11
    cb.on_log(args, state, None, logs={"eval_loss": 0.5})        # evaluate() after train()
    s = status_of(node, run_id, "FINISHED")
    assert s["info"]["experiment"] == "pytest-hf" and s["info"]["run_name"] == "hf-run"
    assert s["tags"]["k"] == "v"
    assert s["params"]["learning_rate"] == "5e-05"                 # args win over the config
    assert s["params"]["hidden_size"] == "8" and s["params"]["id2label/1"] == "pos"
    assert s["params"]["lr_scheduler_kwargs/power"] == "2" and s["params"]["report_to"] == "[]"
    assert steps_of(node, run_id, "loss", 2) == [5, 10]
    assert node.wait_metric(run_id, "epoch", 2)[1]["value"] == 1.0
    assert node.wait_metric(run_id, "eval_loss", 1)[0]["step"] == 11
    assert "note" not in metrics_of(node.show(run_id))
    node.wait_run(run_id, lambda s: len(s["artifacts"]) == 2)
    assert node.artifact(run_id, "checkpoints/checkpoint-10/model.bin") == b"W"
    assert node.artifact(run_id, "checkpoints/checkpoint-10/sub/state.json") == b"{}"

    # with a run active it logs into it and leaves it running; other ranks do nothing
    with sidetrack.start_run(capture_context=False) as user:
        cb2 = mod.SidetrackCallback()
        cb2.on_train_begin(_hf_args(tmp_path, run_name="x"), state, None)
        cb2.on_log(args, state, None, logs={"loss": 2.0})
        cb2.on_train_end(args, state, None)
        assert sidetrack.active_run() is user and cb2.run_id == user.run_id
        other = mod.SidetrackCallback()
        rank1 = _State(is_world_process_zero=False, global_step=1)
        other.on_train_begin(args, rank1, None)
        other.on_log(args, rank1, None, logs={"loss": 3.0})
        other.on_train_end(args, rank1, None)
        assert other.run_id is None
    u = status_of(node, user.run_id, "FINISHED")
    assert u["params"]["run_name"] == "x"
    assert [p["value"] for p in node.wait_metric(user.run_id, "loss", 1)] == [2.0]


def _keras_stand_ins():
    class Callback:
        """Keras's Callback as far as SidetrackCallback relies on it."""

        def __init__(self):
            self.model, self.params = None, {}

        def set_model(self, model):
            self.model = model

        def set_params(self, params):
            self.params = params

        def on_train_batch_end(self, batch, logs=None):
            pass

        on_train_batch_end._is_default = True

    keras = _module("keras", callbacks=_module("keras.callbacks", Callback=Callback))
    return {"keras": keras, "keras.callbacks": keras.callbacks}


def test_keras_callback_over_a_stand_in(node, load_with_stand_ins):
    np = pytest.importorskip("numpy", reason="python3-numpy is not installed")
    mod = load_with_stand_ins("keras", _keras_stand_ins())
    assert mod.SidetrackCallback().on_train_batch_end._is_default   # no batch hook: no cost
    cb = mod.SidetrackCallback(experiment_name="pytest-keras", run_name="fit",
                               params={"batch_size": 16}, log_every_n_steps=2)
    assert not getattr(cb.on_train_batch_end, "_is_default", False)
    cb.set_params({"epochs": 2, "steps": 3, "verbose": 0})
    cb.set_model(types.SimpleNamespace(optimizer=Adam(_Var(np.float32(0.5)))))
    cb.on_train_begin()
    run_id = cb.run_id
    with pytest.warns(UserWarning, match="'size'"):
        for epoch in range(2):
            for b in range(3):
                cb.on_train_batch_end(b, {"loss": float(epoch * 3 + b), "size": "x"})
            cb.on_epoch_end(epoch, {"loss": np.float32(epoch),
                                    "val_loss": np.float64(2 * epoch)})
    cb.on_train_end()
    assert sidetrack.active_run() is None
    s = status_of(node, run_id, "FINISHED")
    assert s["info"]["experiment"] == "pytest-keras" and s["info"]["run_name"] == "fit"
    assert s["params"] == {"epochs": "2", "steps": "3", "batch_size": "16",
                           "optimizer_name": "Adam", "learning_rate": "0.5"}
    assert steps_of(node, run_id, "loss", 2) == [0, 1]
    assert steps_of(node, run_id, "val_loss", 2) == [0, 1]
    assert [(p["step"], p["value"]) for p in node.wait_metric(run_id, "batch/loss", 3)] == [
        (2, 1.0), (4, 3.0), (6, 5.0)]

    with sidetrack.start_run(capture_context=False) as user:
        cb2 = mod.SidetrackCallback(log_every_epoch=False)
        cb2.set_model(types.SimpleNamespace())
        cb2.on_train_begin()
        cb2.on_epoch_end(0, {"loss": 1.0})
        cb2.on_train_end()
        assert sidetrack.active_run() is user and cb2.run_id == user.run_id
    u = status_of(node, user.run_id, "FINISHED")
    assert u["metrics"] == []
    with pytest.raises(ValueError):
        mod.SidetrackCallback(log_every_n_steps=0)


# ---- the real frameworks (skipped where not installed) --------------------------------------

def _import_lightning():
    try:
        import lightning.pytorch as pl
        return pl
    except ImportError:
        return pytest.importorskip("pytorch_lightning", reason=REASON_LIGHTNING)


def test_lightning_trainer_fit(node, tmp_path):
    torch = pytest.importorskip("torch", reason="python3-torch is not installed")
    pl = _import_lightning()
    from sidetrack.integrations.lightning import SidetrackLogger

    class Tiny(pl.LightningModule):
        def __init__(self, lr=0.05, net={"width": 4}):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(2, 1)

        def _loss(self, batch):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def training_step(self, batch, i):
            loss = self._loss(batch)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, i):
            self.log("val_loss", self._loss(batch))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    g = torch.Generator().manual_seed(0)
    ds = torch.utils.data.TensorDataset(torch.randn(32, 2, generator=g),
                                        torch.randn(32, 1, generator=g))
    dl = torch.utils.data.DataLoader(ds, batch_size=8)
    logger = SidetrackLogger(experiment_name="pytest-lightning-fit", run_name="tiny",
                             log_model=True)
    trainer = pl.Trainer(max_epochs=2, logger=logger, default_root_dir=str(tmp_path),
                         accelerator="cpu", devices=1, log_every_n_steps=1,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Tiny(), dl, dl)
    run_id = logger.version
    s = status_of(node, run_id, "FINISHED")
    assert s["info"]["experiment"] == "pytest-lightning-fit"
    assert s["params"]["lr"] == "0.05" and s["params"]["net/width"] == "4"
    assert len(node.wait_metric(run_id, "train_loss", 8)) == 8     # 4 batches x 2 epochs
    assert len(node.wait_metric(run_id, "val_loss", 2)) == 2
    assert any(a["path"].startswith("checkpoints/") and a["path"].endswith(".ckpt")
               for a in node.wait_run(run_id, lambda s: s["artifacts"])["artifacts"])
    trainer.validate(Tiny(), dl)                   # a later stage logs into the same run
    assert len(node.wait_metric(run_id, "val_loss", 3)) == 3
    status_of(node, run_id, "FINISHED")


def test_transformers_trainer(node, tmp_path):
    torch = pytest.importorskip("torch", reason="python3-torch is not installed")
    transformers = pytest.importorskip("transformers", reason=REASON_TRANSFORMERS)
    from sidetrack.integrations.transformers import SidetrackCallback

    config = transformers.BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1,
                                     num_attention_heads=1, intermediate_size=8,
                                     max_position_embeddings=16, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    g = torch.Generator().manual_seed(0)
    data = [{"input_ids": torch.randint(0, 32, (6,), generator=g),
             "attention_mask": torch.ones(6, dtype=torch.long),
             "labels": torch.tensor(i % 2)} for i in range(16)]
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=4,
                                          per_device_train_batch_size=4, logging_steps=1,
                                          save_steps=2, report_to=[], run_name="bert-tiny")
    cb = SidetrackCallback(experiment_name="pytest-hf-trainer", log_checkpoints=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, callbacks=[cb])
    trainer.train()
    run_id = cb.run_id
    s = status_of(node, run_id, "FINISHED")
    assert s["info"]["run_name"] == "bert-tiny"
    assert s["params"]["max_steps"] == "4" and s["params"]["hidden_size"] == "8"
    assert steps_of(node, run_id, "loss", 4) == [1, 2, 3, 4]
    assert node.wait_metric(run_id, "train_runtime", 1)[0]["step"] == 4
    assert any(a["path"].startswith("checkpoints/checkpoint-2/")
               for a in node.wait_run(run_id, lambda s: s["artifacts"])["artifacts"])


def _import_keras():
    try:
        import keras
        return keras
    except ImportError:
        tf = pytest.importorskip("tensorflow", reason=REASON_KERAS)
        return tf.keras


def test_keras_fit(node):
    np = pytest.importorskip("numpy", reason="python3-numpy is not installed")
    keras = _import_keras()
    from sidetrack.integrations.keras import SidetrackCallback

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 2)), rng.normal(size=(32, 1))
    cb = SidetrackCallback(experiment_name="pytest-keras-fit", params={"batch_size": 8},
                           log_every_n_steps=2)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_data=(x, y), callbacks=[cb])
    run_id = cb.run_id
    s = status_of(node, run_id, "FINISHED")
    assert s["params"]["epochs"] == "2" and s["params"]["batch_size"] == "8"
    assert s["params"]["optimizer_name"] == "SGD"
    assert float(s["params"]["learning_rate"]) == pytest.approx(0.01)
    assert steps_of(node, run_id, "loss", 2) == [0, 1]
    assert steps_of(node, run_id, "val_loss", 2) == [0, 1]
    assert steps_of(node, run_id, "batch/loss", 4) == [2, 4, 6, 8]


# ---- Dask -----------------------------------------------------------------------------------

def test_dask_workers_log_into_the_run_and_never_end_it(node):
    distributed = pytest.importorskip("distributed",
                                      reason="Dask's distributed is not installed (Debian: "
                                             "python3-distributed)")
    from sidetrack.integrations import dask as st_dask

    per_worker = 50
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        with pytest.raises(sidetrack.SidetrackError):
            st_dask.attach(client)                             # no run to attach to
        with sidetrack.start_run(run_name="dask", capture_context=False) as run:
            assert st_dask.attach(client) == run.run_id

            def where():
                import os
                import sidetrack
                r = sidetrack.active_run()
                return (os.getpid(), r.run_id if r else None, r._owns if r else None,
                        os.environ.get("SIDETRACK_RUN_ID"))

            states = client.run(where)
            assert len(states) == 2
            for pid, rid, owns, env in states.values():
                assert pid != os.getpid() and rid == run.run_id and env == run.run_id
                assert owns is False                            # released at exit, not ended

            def log(step):
                import os
                import sidetrack
                sidetrack.log_metric("worker_loss", float(step), step=step)
                return os.getpid()

            futures = []
            for w, addr in enumerate(sorted(cluster.scheduler_info["workers"])):
                futures += client.map(log, range(w * per_worker, (w + 1) * per_worker),
                                      workers=[addr], allow_other_workers=False, pure=False)
            pids = client.gather(futures)
            assert len(set(pids)) == 2
            pts = node.wait_metric(run.run_id, "worker_loss", 2 * per_worker)
            assert sorted(p["step"] for p in pts) == list(range(2 * per_worker))
            assert all(p["value"] == p["step"] for p in pts)

            st_dask.detach(client)                              # teardown: workers release
            states = client.run(where)
            assert all(rid is None and env is None for _, rid, _, env in states.values())
            assert st_dask.attach(client, run.run_id) == run.run_id   # and attach again
            assert all(rid == run.run_id for _, rid, _, _ in client.run(where).values())
            # the workers exit (releasing the run) while it is active: it goes on
            client.close()
            cluster.close()
            time.sleep(0.3)
            assert node.show(run.run_id)["info"]["status"] == "RUNNING"
            sidetrack.log_metric("after_workers", 1.0)
    assert sidetrack.active_run() is None
    s = status_of(node, run.run_id, "FINISHED")
    assert "after_workers" in metrics_of(s) or node.wait_metric(run.run_id, "after_workers", 1)
    assert len(node.metric(run.run_id, "worker_loss")) == 2 * per_worker


def test_dask_worker_plugin_in_this_process(node):
    pytest.importorskip("distributed", reason="Dask's distributed is not installed (Debian: "
                                              "python3-distributed)")
    from sidetrack.integrations import dask as st_dask

    with pytest.raises(sidetrack.InvalidArgument):
        st_dask.SidetrackWorkerPlugin("not-a-run-id")
    with sidetrack.start_run(capture_context=False) as run:
        pass
    # a process with no run active (a worker): the plugin attaches it, teardown releases
    plugin = st_dask.SidetrackWorkerPlugin(run.run_id)
    plugin.setup(worker=None)
    assert sidetrack.active_run().run_id == run.run_id and not sidetrack.active_run()._owns
    assert os.environ["SIDETRACK_RUN_ID"] == run.run_id
    plugin.setup(worker=None)                                  # again: nothing changes
    sidetrack.log_metric("from_plugin", 1.0, step=4)
    plugin.teardown(worker=None)
    assert sidetrack.active_run() is None and "SIDETRACK_RUN_ID" not in os.environ
    assert node.wait_metric(run.run_id, "from_plugin", 1)[0]["step"] == 4
    time.sleep(0.2)
    assert node.show(run.run_id)["info"]["status"] == "FINISHED"   # released, not re-ended
    # a process with a run of its own (LocalCluster(processes=False)): left alone
    with sidetrack.start_run(capture_context=False) as own:
        with pytest.warns(UserWarning, match=own.run_id):
            assert st_dask.attach_worker(run.run_id) is None
        assert sidetrack.active_run() is own
        plugin.teardown(worker=None)
        assert sidetrack.active_run() is own
