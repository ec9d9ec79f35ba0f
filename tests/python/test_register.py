"""sidetrack.register_model(): a model directory logged with log_artifacts() and registered
from the training script, by artifact path of the active run and by runs:/ URI after the run
ended; the agent makes the versions (digest = the sha256sum manifest's hash); the call itself
never waits, and bad names and aliases are refused at the call."""
import hashlib
import json
import os
import subprocess

import pytest

import sidetrack
from conftest import built

DUMP = built("tests", "registry", "registry_dump")


def versions(node, name):
    p = subprocess.run([DUMP, node.data], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    m = json.loads(p.stdout)["models"].get(name)
    return (m["versions"], m["aliases"]) if m else ([], {})


def manifest_digest(files):
    lines = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def test_register_model_from_training_code(node, tmp_path):
    files = {"model.pt": os.urandom(4096), "sub/tokenizer.json": b"{}"}
    for p, b in files.items():
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_bytes(b)
    with sidetrack.start_run(run_name="train-and-register") as run:
        sidetrack.log_artifacts(tmp_path, "model")
        mv = sidetrack.register_model("model", "py-model", alias="champion",
                                      description="first try")
    rid = run.info.run_id
    assert isinstance(mv, sidetrack.PendingModelVersion)
    assert (mv.name, mv.version, mv.status) == ("py-model", None, "PENDING_REGISTRATION")
    assert mv.source == f"runs:/{rid}/model" and mv.aliases == ["champion"]
    v, aliases = node.wait(lambda: (lambda r: r if len(r[0]) == 1 else None)(
        versions(node, "py-model")), what="the agent to register py-model")
    assert v[0]["status"] == "READY" and v[0]["digest"] == manifest_digest(files)
    assert v[0]["description"] == "first try" and aliases == {"champion": 1}
    # After the run ended: by URI, several aliases; champion moves to the new version.
    mv2 = sidetrack.register_model(f"runs:/{rid}/model", "py-model", alias=["champion", "b-2"])
    assert mv2.run_id == rid
    v, aliases = node.wait(lambda: (lambda r: r if len(r[0]) == 2 else None)(
        versions(node, "py-model")), what="the second version")
    assert v[1]["digest"] == v[0]["digest"]
    assert aliases == {"champion": 2, "b-2": 2}


@pytest.mark.parametrize("kwargs", [{"alias": "latest"}, {"alias": "v3"}, {"alias": "a b"},
                                    {"alias": [f"a{i}" for i in range(17)]}, {"name": ""}])
def test_bad_names_and_aliases_are_refused_at_the_call(node, kwargs):
    args = {"name": "py-model", **kwargs}
    with sidetrack.start_run(run_name="bad-registration"):
        with pytest.raises(sidetrack.InvalidArgument):
            sidetrack.register_model("model", **args)


def test_only_runs_uris_and_artifact_paths_are_taken(node):
    with pytest.raises(sidetrack.InvalidArgument):
        sidetrack.register_model("models:/x/1", "py-model")
    with pytest.raises(sidetrack.InvalidArgument):
        sidetrack.register_model("runs:/notahexid/model", "py-model")
