"""`sidetrack models` over an agent's store: runs logged by a real training job (log_model,
through libsidetrack and a running sidetrackd), then registered, aliased, rolled back,
compared, shown with their lineage and pulled with the CLI. Run by meson (suite models) with
SIDETRACK_BUILD_DIR set."""
import hashlib
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyutil  # noqa: E402

LOG_MODEL = pyutil.built("tests", "models", "log_model")
ACTOR = "model-tester"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def manifest_digest(files):
    """The digest a version records: sha256 of what `sha256sum` prints for its files, sorted
    by path (files: {relative path: bytes})."""
    lines = "".join(f"{sha256(files[p])}  {p}\n" for p in sorted(files))
    return sha256(lines.encode())


class Node:
    """An agent with its store and ring in a scratch folder, and jobs that log into it."""

    def __init__(self, root):
        self.root = root
        self.data = os.path.join(root, "data")
        self.ring = os.path.join(root, "ring")
        self.log = os.path.join(root, "agent.log")
        self.agent = pyutil.start([pyutil.AGENT, "--data", self.data, "--ring-dir", self.ring,
                                   "--system-metrics-interval", "0", "-i", "5"], self.log)
        pyutil.wait_for(lambda: os.path.exists(os.path.join(self.data, "agent.status")), 30,
                        lambda: "sidetrackd to start\n" + pyutil.tail_logs([self.log]))
        self.runs = 0

    def logs(self):
        return pyutil.tail_logs([self.log])

    def train(self, files, params=(), metrics=(), tags=(), path="model"):
        """Logs a run whose artifacts under `path` are `files`; its id once the agent stored
        all of it."""
        self.runs += 1
        src = os.path.join(self.root, f"src{self.runs}")
        for rel, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
            with open(os.path.join(src, rel), "wb") as f:
                f.write(data)
        args = [LOG_MODEL, "--run-name", f"job{self.runs}", "--dir", src, "--path", path]
        for k, v in params:
            args += ["--param", f"{k}={v}"]
        for k, v in metrics:
            args += ["--metric", f"{k}={','.join(str(x) for x in v)}"]
        for k, v in tags:
            args += ["--tag", f"{k}={v}"]
        p = subprocess.run(args, env=dict(os.environ, SIDETRACK_RING_DIR=self.ring),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        run = p.stdout.strip()

        def stored():
            show = self.cli("runs", "show", run, "--json", check=False)
            if show.returncode != 0:
                return False
            doc = json.loads(show.stdout)
            return doc["info"]["status"] == "FINISHED" and len(doc["artifacts"]) == len(files)
        pyutil.wait_for(stored, 30, lambda: f"run {run} in the store\n" + self.logs())
        return run

    def cli(self, *args, check=True):
        p = subprocess.run([pyutil.CLI, "-d", self.data, *args], capture_output=True,
                           text=True, timeout=60, env=dict(os.environ, SIDETRACK_USER=ACTOR))
        if check and p.returncode != 0:
            raise AssertionError(f"sidetrack {' '.join(args)} exited {p.returncode}: "
                                 f"{p.stderr}")
        return p

    def models(self, *args, check=True):
        return self.cli("models", *args, check=check)

    def json(self, *args):
        return json.loads(self.models(*args, "--json").stdout)


@pytest.fixture(scope="module")
def node():
    with pyutil.scratch("sidetrack-models-") as root:
        n = Node(root)
        try:
            yield n
        finally:
            code = pyutil.stop(n.agent)
        assert code == 0, n.logs()


FILES_A = {"weights.bin": b"\x00\x01weights-a" * 100, "config.json": b'{"layers": 2}\n'}
FILES_B = {"weights.bin": b"\x00\x02weights-b" * 100, "config.json": b'{"layers": 2}\n',
           "tokenizer/vocab.txt": b"a\nb\nc\n"}


@pytest.fixture(scope="module")
def two_runs(node):
    """Two training runs of the same model with other params and results."""
    a = node.train(FILES_A, params=[("lr", "0.1"), ("batch", "32")],
                   metrics=[("loss", [1.0, 0.5, 0.25]), ("acc", [0.5, 0.8])],
                   tags=[("mlflow.source.git.commit", "0123abcd")])
    b = node.train(FILES_B, params=[("lr", "0.01"), ("batch", "32"), ("dropout", "0.2")],
                   metrics=[("loss", [1.0, 0.4, 0.125]), ("f1", [0.7])],
                   tags=[("mlflow.source.git.commit", "4567ef01")])
    return a, b


def test_register_prints_the_version_and_records_the_sha256sum_digest(node, two_runs):
    a, b = two_runs
    p = node.models("register", "reg", f"runs:/{a}/model")
    assert p.stdout == "1\n"
    assert "created model 'reg'" in p.stderr
    # A unique prefix of the run id is taken; the version records the full id.
    assert node.models("register", "reg", f"runs:/{b[:8]}/model").stdout == "2\n"
    versions = node.json("versions", "reg")
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["digest"] == manifest_digest(FILES_A)
    assert versions[1]["digest"] == manifest_digest(FILES_B)
    assert versions[1]["source"] == f"runs:/{b}/model"
    assert versions[1]["run_id"] == b
    doc = node.json("register", "reg", f"runs:/{a}/model", "--alias", "candidate")
    assert doc["version"] == 3 and doc["aliases"] == ["candidate"] and doc["files"] == 2
    assert not doc["model_created"]
    show = node.json("show", "reg")
    assert show["versions_count"] == 3
    assert show["aliases"] == [{"alias": "candidate", "version": 3}]
    assert "reg" in node.models("list").stdout


def test_alias_rollback_twice_and_history(node, two_runs):
    a, b = two_runs
    for run in (a, b, a):
        node.models("register", "rb", f"runs:/{run}/model")
    assert node.models("alias", "rb", "champion", "1").stdout == "champion: (none) -> v1\n"
    assert node.models("alias", "rb", "champion", "v2").stdout == "champion: v1 -> v2\n"
    assert node.models("alias", "rb", "champion", "latest").stdout == "champion: v2 -> v3\n"
    assert node.json("show", "rb@champion")["version"] == 3

    assert node.models("rollback", "rb", "champion").stdout == "champion: v3 -> v2\n"
    assert node.models("rollback", "rb", "champion").stdout == "champion: v2 -> v1\n"
    assert node.json("show", "rb", "@champion")["version"] == 1
    # Nothing before v1: said, exit 1, and the alias stays.
    p = node.models("rollback", "rb", "champion", check=False)
    assert p.returncode == 1 and "no earlier version" in p.stderr
    assert node.json("show", "rb@champion")["version"] == 1

    history = node.json("history", "rb")
    assert all(e["actor"] == ACTOR for e in history)
    moves = [(e["change"], e["from_version"], e["to_version"]) for e in history
             if e["key"] == "champion"]
    assert moves == [("alias_rollback", 2, 1), ("alias_rollback", 3, 2), ("alias_set", 2, 3),
                     ("alias_set", 1, 2), ("alias_set", 0, 1)]
    assert len(node.json("history", "rb", "--limit", "2")) == 2
    text = node.models("history", "rb").stdout
    assert "alias_rollback" in text and "champion: v3 -> v2" in text and ACTOR in text

    assert node.models("alias", "rb", "champion", "--delete").stdout == \
        "champion: v1 -> (none)\n"
    assert node.models("show", "rb@champion", check=False).returncode == 1


def test_compare_shows_differing_params_final_metrics_digests_and_files(node, two_runs):
    a, b = two_runs
    node.models("register", "cmp", f"runs:/{a}/model", "--alias", "old")
    node.models("register", "cmp", f"runs:/{b}/model", "--alias", "new")
    doc = node.json("compare", "cmp", "@old", "2")
    assert doc["v1"]["version"] == 1 and doc["v2"]["version"] == 2
    assert doc["v1"]["run_id"] == a and doc["v2"]["run_id"] == b
    assert doc["digests_equal"] is False
    assert doc["params"] == [{"key": "dropout", "v1": None, "v2": "0.2"},
                             {"key": "lr", "v1": "0.1", "v2": "0.01"}]
    metrics = {m["key"]: m for m in doc["metrics"]}
    assert metrics["loss"]["v1"] == 0.25 and metrics["loss"]["v2"] == 0.125
    assert metrics["loss"]["diff"] == -0.125
    assert metrics["acc"]["v2"] is None and metrics["f1"]["v1"] is None
    files = {f["path"]: f["change"] for f in doc["files"]}
    assert files == {"weights.bin": "changed", "tokenizer/vocab.txt": "only_v2"}
    assert doc["files_same"] == 1

    text = node.models("compare", "cmp", "1", "@new").stdout
    assert "params that differ (2)" in text and "-0.125" in text
    assert "digests: differ" in text and "tokenizer/vocab.txt" in text

    # The same files registered twice: equal digests, nothing differs but the run.
    node.models("register", "cmp", f"runs:/{a}/model")
    same = node.json("compare", "cmp", "1", "3")
    assert same["digests_equal"] is True and same["files"] == [] and same["params"] == []


def test_show_version_gives_its_lineage(node, two_runs):
    a, _ = two_runs
    node.models("register", "lin-copy", f"runs:/{a}/model")
    node.models("register", "lin", f"runs:/{a}/model", "--alias", "prod")
    doc = node.json("show", "lin@prod")
    assert doc["version"] == 1 and doc["aliases"] == ["prod"]
    assert doc["digest_matches"] is True
    run = doc["run"]
    assert run["info"]["run_id"] == a and run["info"]["status"] == "FINISHED"
    assert run["git_commit"] == "0123abcd"
    assert run["params"] == {"batch": "32", "lr": "0.1"}
    assert run["metrics"]["loss"]["value"] == 0.25 and run["metrics"]["loss"]["step"] == 2
    assert {"name": "lin", "version": 1} not in run["other_versions"]
    text = node.models("show", "lin", "1").stdout
    assert "commit       0123abcd" in text and "matches the run's files" in text
    # the other versions made from the same run
    assert {"name": "lin-copy", "version": 1} in run["other_versions"]
    # and from the run's side
    versions = json.loads(node.cli("runs", "show", a, "--json").stdout)["model_versions"]
    assert {"name": "lin", "version": 1} in versions
    assert "model versions\n" in node.cli("runs", "show", a).stdout


def test_pull_copies_the_files_verified_with_a_manifest(node, two_runs):
    _, b = two_runs
    node.models("register", "pl", f"runs:/{b}/model", "--alias", "champion")
    out = os.path.join(node.root, "pulled", "pl")
    p = node.models("pull", "pl@champion", out)
    assert "3 files" in p.stdout and "verified" in p.stdout
    for rel, data in FILES_B.items():
        with open(os.path.join(out, rel), "rb") as f:
            assert f.read() == data
    check = subprocess.run(["sha256sum", "-c", "MANIFEST.sha256"], cwd=out,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with open(os.path.join(out, "MANIFEST.sha256"), "rb") as f:
        assert sha256(f.read()) == node.json("show", "pl/1")["digest"]

    # A folder that is not empty is refused, unless --force.
    p = node.models("pull", "pl/1", out, check=False)
    assert p.returncode == 1 and "not empty" in p.stderr
    node.models("pull", "pl", "1", out, "--force")
    # No version named: a usage error.
    assert node.models("pull", "pl", os.path.join(node.root, "x"), check=False).returncode == 2


def test_pull_of_a_tampered_blob_fails_and_leaves_nothing(node):
    files = {"model.bin": os.urandom(4096), "meta/info.txt": b"tampered test\n"}
    run = node.train(files)
    node.models("register", "tamper", f"runs:/{run}/model")
    blob = os.path.join(node.data, "artifacts", sha256(files["model.bin"])[:2],
                        sha256(files["model.bin"]))
    os.chmod(blob, 0o644)
    with open(blob, "r+b") as f:
        f.write(b"X")
    out = os.path.join(node.root, "pulled", "tamper")
    p = node.models("pull", "tamper/1", out, check=False)
    assert p.returncode == 1, p.stdout
    assert "damaged" in p.stderr and "model/model.bin" in p.stderr
    assert not os.path.exists(out)
    # lineage says it too: the stored hashes still match, the content is what changed
    assert node.json("show", "tamper/1")["digest_matches"] is True


def test_stage_tag_and_delete(node, two_runs):
    a, b = two_runs
    node.models("create", "st", "--description", "staged")
    node.models("register", "st", f"runs:/{a}/model")
    node.models("register", "st", f"runs:/{b}/model")
    node.models("stage", "st", "1", "production")
    out = node.models("stage", "st", "2", "Production", "--archive-existing").stdout
    assert "None -> Production" in out
    stages = {v["version"]: v["stage"] for v in node.json("versions", "st")}
    assert stages == {1: "Archived", 2: "Production"}
    node.models("tag", "st", "team", "risk")
    node.models("tag", "st/2", "validated", "yes")
    show = node.json("show", "st")
    assert show["tags"] == {"team": "risk"} and show["description"] == "staged"
    assert node.json("show", "st/2")["tags"] == {"validated": "yes"}
    p = node.models("delete", "st", check=False)
    assert p.returncode == 2 and "--yes" in p.stderr
    # One version: the alias on it is dropped, its number is not given again.
    node.models("alias", "st", "prod", "2")
    p = node.models("delete", "st@prod", check=False)
    assert p.returncode == 2 and "deletes version 2 of model 'st'" in p.stderr
    assert "deleted version 2 of model 'st'" in node.models("delete", "st@prod", "--yes").stdout
    assert [v["version"] for v in node.json("versions", "st")] == [1]
    assert node.json("show", "st")["aliases"] in ({}, [])
    assert node.models("register", "st", f"runs:/{b}/model").stdout.strip() == "3"
    # Rename: versions and history follow; a taken name is refused.
    node.models("create", "other")
    p = node.models("rename", "st", "other", check=False)
    assert p.returncode == 1 and "'other' exists already" in p.stderr
    assert "renamed model 'st' to 'st2'" in node.models("rename", "st", "st2").stdout
    assert [v["version"] for v in node.json("versions", "st2")] == [1, 3]
    assert "model_renamed" in node.models("history", "st2").stdout
    assert "2 versions" in node.models("delete", "st2", "--yes").stdout
    assert node.models("show", "st2", check=False).returncode == 1


@pytest.mark.parametrize("args, code, words", [
    (["alias", "reg", "latest", "1"], 1, "'latest' alias name (case insensitive) is reserved"),
    (["alias", "reg", "v2", "1"], 1, "Version alias name 'v2' is reserved"),
    (["register", "reg", "runs:/00000000000000000000000000000000/model",
      "--alias", "V7"], 1, "Version alias name 'V7' is reserved"),
    (["show", "no-such-model"], 1, "no registered model 'no-such-model'"),
    (["versions", "no-such-model"], 1, "no registered model 'no-such-model'"),
    (["alias", "no-such-model", "champion", "1"], 1, "no registered model"),
    (["show", "reg/99"], 1, "model 'reg' has no version 99 (versions: 1"),
    (["show", "reg/abc"], 1, "no registered model 'reg/abc'"),
    (["show", "reg", "99"], 1, "model 'reg' has no version 99"),
    (["show", "reg@nope"], 1, "model 'reg' has no alias 'nope'"),
    (["register", "reg", "s3://bucket/model"], 1, "is not a run's artifact path"),
    (["register", "reg", "runs:/00000000000000000000000000000000/model"], 1, "names no run"),
    (["create", "reg"], 1, "exists already"),
    (["register", "reg"], 2, "missing SOURCE"),
    (["alias", "reg", "champion"], 2, "missing VERSION"),
    (["stage", "reg", "1", "Deployed"], 2, "no stage 'Deployed'"),
    (["history", "reg", "--limit", "0"], 2, "--limit"),
    (["frobnicate"], 2, "unknown subcommand"),
    (["list", "--bogus"], 2, "unknown option"),
])
def test_errors_are_said_with_their_exit_status(node, two_runs, args, code, words):
    a, _ = two_runs
    if not node.models("list", "--filter", "name = 'reg'", "--json").stdout.strip("[]\n"):
        node.models("register", "reg", f"runs:/{a}/model")
    p = node.models(*args, check=False)
    assert p.returncode == code, p.stdout + p.stderr
    assert words in p.stderr
    assert p.stderr.count("\n") == 1  # said once


def test_help(node):
    p = node.models("--help")
    assert "rollback" in p.stdout and "pull" in p.stdout
    for sub in ("list", "show", "register", "alias", "rollback", "compare", "pull", "history",
                "stage", "tag", "delete", "create", "versions"):
        assert node.models(sub, "--help").stdout.startswith("Usage: sidetrack models " + sub)
