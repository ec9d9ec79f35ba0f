"""Registration from training code (docs/registry.md, "From training code"): a training
process logs a model directory and registers it with st_register_model(); the node's agent
makes the version in its store and journals it; the server, down at first, gets it exactly
once when it comes up, also across kill -9 of the agent and of the server; a bundle carries
it exactly once however often it is imported."""
import hashlib
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: pyutil
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sync"))  # cluster
from pyutil import built, kill, sidetrack, wait_for  # noqa: E402
from cluster import Cluster, running  # noqa: E402

DUMP = built("tests", "registry", "registry_dump")
TRAIN = built("tests", "registry", "register_train")


def registry(data):
    """The store's registry ({} before the store exists)."""
    if not os.path.exists(os.path.join(data, "data.mdb")):
        return {"models": {}, "journal": []}
    p = subprocess.run([DUMP, data], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def versions(data, name):
    return registry(data)["models"].get(name, {}).get("versions", [])


def manifest_digest(files):
    """What `sha256sum` prints for the model's files, sorted by path, hashed: the digest."""
    lines = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def model_dir(root, name, files):
    d = os.path.join(root, name)
    os.makedirs(d)
    for p, b in files.items():
        with open(os.path.join(d, p), "wb") as f:
            f.write(b)
    return d


def register(c, agent, local_dir, artifact_path, name, *aliases):
    p = subprocess.run([TRAIN, c.agents[agent]["ring"], local_dir, artifact_path, name,
                        *aliases], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def wait_versions(data, name, n, what, logs):
    return wait_for(lambda: (lambda v: v if len(v) >= n else None)(versions(data, name)), 60,
                    lambda: f"{what}\n{json.dumps(registry(data))}\n{logs()}")


FILES = {"weights.bin": os.urandom(50000), "config.json": b'{"layers": 3}\n'}


@pytest.fixture
def offline():
    """Agent a1 replicating to a server that is not started yet."""
    with running(Cluster, "sidetrack-register-") as c:
        c.add_agent("a1")
        c.start_agent("a1")
        yield c


def test_registration_makes_version_1_with_alias_and_manifest_digest(offline):
    c = offline
    data = c.agents["a1"]["data"]
    run = register(c, "a1", model_dir(c.root, "m", FILES), "model", "mnist", "champion",
                   "candidate")
    v = wait_versions(data, "mnist", 1, "the agent to register mnist", c.logs)
    assert len(v) == 1
    assert v[0]["version"] == 1 and v[0]["status"] == "READY"
    assert v[0]["source"] == f"runs:/{run}/model" and v[0]["run_id"] == run
    assert v[0]["digest"] == manifest_digest(FILES)
    assert v[0]["description"] == "trained by register_train"
    reg = registry(data)
    assert reg["models"]["mnist"]["aliases"] == {"champion": 1, "candidate": 1}
    # one journal op, carrying the digest and who did it
    ops = reg["journal"]
    assert len(ops) == 1 and ops[0]["digest"] == manifest_digest(FILES)
    assert ops[0]["aliases"] == "champion,candidate" and "@" in ops[0]["actor"]


def test_registration_of_a_path_without_artifacts_is_failed_and_sets_no_alias(offline):
    c = offline
    data = c.agents["a1"]["data"]
    register(c, "a1", model_dir(c.root, "empty", {}), "nothing", "ghost", "champion")
    v = wait_versions(data, "ghost", 1, "the agent to record the failed registration", c.logs)
    assert v[0]["status"] == "FAILED_REGISTRATION" and v[0]["digest"] == ""
    assert "no artifacts were found at 'nothing'" in v[0]["status_message"]
    assert registry(data)["models"]["ghost"]["aliases"] == {}


def test_offline_registration_reaches_the_server_exactly_once(offline):
    c = offline
    data, server = c.agents["a1"]["data"], c.server_data
    register(c, "a1", model_dir(c.root, "m1", FILES), "model", "mnist", "champion")
    wait_versions(data, "mnist", 1, "the agent to register mnist", c.logs)
    # the server comes up: the queued registration is replayed
    c.start_server()
    v = wait_versions(server, "mnist", 1, "the server to get the registration", c.logs)
    assert v[0]["digest"] == manifest_digest(FILES) and v[0]["status"] == "READY"
    assert registry(server)["models"]["mnist"]["aliases"] == {"champion": 1}
    # kill -9 of the agent, then of the server: each resumes from the server's mark
    kill(c.agents["a1"]["proc"])
    c.start_agent("a1")
    files2 = {"weights.bin": b"second"}
    register(c, "a1", model_dir(c.root, "m2", files2), "model", "mnist", "champion")
    wait_versions(server, "mnist", 2, "the second registration after the agent's restart",
                  c.logs)
    c.kill_server()
    c.start_server()
    register(c, "a1", model_dir(c.root, "m3", files2), "model", "other")
    wait_versions(server, "other", 1, "a registration after the server's restart", c.logs)
    # the later ones are there, so everything before was replayed: each exactly once
    v = versions(server, "mnist")
    assert [x["version"] for x in v] == [1, 2]
    assert [x["digest"] for x in v] == [manifest_digest(FILES), manifest_digest(files2)]
    assert registry(server)["models"]["mnist"]["aliases"] == {"champion": 2}
    assert len(versions(data, "mnist")) == 2


def test_bundle_carries_a_registration_exactly_once(offline):
    c = offline
    data = c.agents["a1"]["data"]
    register(c, "a1", model_dir(c.root, "m", FILES), "model", "mnist", "champion")
    wait_versions(data, "mnist", 1, "the agent to register mnist", c.logs)
    bundle = os.path.join(c.root, "b.stb")
    p = sidetrack("-d", data, "export", "--out", bundle)
    assert p.returncode == 0, p.stderr
    with open(bundle, "rb") as f:
        head = f.read(20)
    assert int.from_bytes(head[16:20], "little") == 2  # the format that has registrations
    target = os.path.join(c.root, "target")
    for _ in range(2):
        p = sidetrack("-d", target, "import", bundle)
        assert p.returncode == 0, p.stderr
    v = versions(target, "mnist")
    assert len(v) == 1 and v[0]["digest"] == manifest_digest(FILES)
    assert registry(target)["models"]["mnist"]["aliases"] == {"champion": 1}
