"""MLflow's model-registry REST API on sidetrack-server, over real HTTP on loopback: every
registered-model and model-version endpoint (and the /ajax-api twins) with MLflow's JSON shapes
and error codes, version numbers under concurrent creation, the digest of a version's files
against a sha256sum manifest, aliases with sidetrack's history and rollback endpoints, the
actor recorded from the request's token, and --read-only. Run by meson (suite server) with
SIDETRACK_BUILD_DIR set."""
import hashlib
import os
import subprocess
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import pyutil  # noqa: E402
from pyutil import SERVER, free_port, scratch, wait_for  # noqa: E402
from pyutil import api_error as err  # noqa: E402

API = "/api/2.0/mlflow/"
AJAX = "/ajax-api/2.0/mlflow/"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
EXT = "/api/sidetrack/v1/models/"
TOKEN = "tok-" + "r" * 40


class Server(pyutil.ServerProcess):
    def __init__(self, root, *extra, data=None):
        self.data = data or os.path.join(root, "server")
        tokens = os.path.join(self.data, "tokens.d")
        if not data:
            os.makedirs(tokens)
            with open(os.path.join(tokens, "alice.token"), "w") as f:
                f.write(TOKEN + "\n")
            os.chmod(os.path.join(tokens, "alice.token"), 0o600)
        self.port = free_port()
        self.log = os.path.join(root, f"server-{self.port}.log")
        self.proc = pyutil.start([SERVER, "--data", self.data, "--http",
                                  f"127.0.0.1:{self.port}", "--zmq", "off", *extra], self.log)

        def ready():
            assert self.proc.poll() is None, self.logs()
            return pyutil.listening(self.port) and \
                self.call("GET", "registered-models/search")[0] == 200
        wait_for(ready, 20, "the server to serve the registry API")

    def request(self, method, path, body=None, query=None, raw=None, token=None):
        """(status, parsed JSON or raw bytes)."""
        headers = {"Authorization": "Bearer " + token} if token else None
        return pyutil.http_request(self.port, method, path, body, query, raw, headers)[:2]

    def call(self, method, endpoint, body=None, prefix=API, token=None, **query):
        """MLflow's way: GET takes the fields as the query, the others as a JSON body."""
        if method == "GET":
            return self.request("GET", prefix + endpoint, query=body or query, token=token)
        return self.request(method, prefix + endpoint, body=body or {}, token=token)

    def ok(self, method, endpoint, body=None, **kw):
        s, j = self.call(method, endpoint, body, **kw)
        assert s == 200, (method, endpoint, s, j)
        return j


@pytest.fixture(scope="module")
def srv():
    with pyutil.serving(Server, "sidetrack-registry-") as s:
        yield s


def new_model(srv, prefix="model", **extra):
    name = pyutil.unique_name(prefix)
    srv.ok("POST", "registered-models/create", {"name": name, **extra})
    return name


def new_version(srv, name, source="s3://bucket/model", **extra):
    return srv.ok("POST", "model-versions/create",
                  {"name": name, "source": source, **extra})["model_version"]


NOT_FOUND = (404, "RESOURCE_DOES_NOT_EXIST")
INVALID = (400, "INVALID_PARAMETER_VALUE")


def refused(srv, cases, prefix=API):
    """Each (method, endpoint, fields, (status, error_code)) is answered with that error."""
    for method, endpoint, fields, (status, code) in cases:
        err(srv.call(method, endpoint, fields, prefix=prefix), status, code)


def model_with_versions(srv, n):
    """A new model with versions 1..n; its name."""
    name = new_model(srv)
    for _ in range(n):
        new_version(srv, name)
    return name


def set_alias(srv, name, alias, version, **kw):
    srv.ok("POST", "registered-models/alias", {"name": name, "alias": alias,
                                               "version": version}, **kw)


def pages_of(srv, endpoint, key, prefix=API, **query):
    """The `key` list of each page of a paged GET, following next_page_token to the last."""
    pages, token = [], None
    while True:
        page = srv.ok("GET", endpoint, prefix=prefix,
                      **query, **({"page_token": token} if token else {}))
        pages.append(page[key])
        token = page.get("next_page_token")
        if not token:
            return pages


# ---- registered models ---------------------------------------------------------------------

def test_model_create_get_and_its_shape(srv):
    rm = srv.ok("POST", "registered-models/create",
                {"name": "churn", "description": "who leaves",
                 "tags": [{"key": "team", "value": "growth"}]})["registered_model"]
    assert rm["name"] == "churn" and rm["description"] == "who leaves"
    assert rm["tags"] == [{"key": "team", "value": "growth"}]
    assert isinstance(rm["creation_timestamp"], int)
    assert rm["last_updated_timestamp"] >= rm["creation_timestamp"]
    assert "latest_versions" not in rm and "aliases" not in rm  # empty: left out
    assert srv.ok("GET", "registered-models/get", name="churn")["registered_model"] == rm
    assert srv.ok("GET", "registered-models/get", prefix=AJAX,
                  name="churn")["registered_model"] == rm
    msg = err(srv.call("POST", "registered-models/create", {"name": "churn"}), 400,
              "RESOURCE_ALREADY_EXISTS")
    assert "churn" in msg
    srv.ok("POST", "registered-models/create", {"name": "Churn"})  # case counts
    err(srv.call("GET", "registered-models/get", name="nope"), 404, "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("GET", "registered-models/get"), 400, "INVALID_PARAMETER_VALUE")
    err(srv.call("POST", "registered-models/create", {}), 400, "INVALID_PARAMETER_VALUE")
    err(srv.call("POST", "registered-models/create", {"name": ""}), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("POST", "registered-models/create", {"name": ["x"]}), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("POST", "registered-models/create",
                 {"name": "bad-tag", "tags": [{"key": "../x", "value": "v"}]}), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("GET", "registered-models/get", name="bad-tag"), 404,
        "RESOURCE_DOES_NOT_EXIST")  # nothing of a refused request was made


def test_model_rename_update_delete(srv):
    name = new_model(srv)
    v = new_version(srv, name)
    rm = srv.ok("POST", "registered-models/rename",
                {"name": name, "new_name": name + "-new"})["registered_model"]
    assert rm["name"] == name + "-new"
    assert rm["latest_versions"][0]["name"] == name + "-new"
    err(srv.call("GET", "registered-models/get", name=name), 404, "RESOURCE_DOES_NOT_EXIST")
    assert srv.ok("GET", "model-versions/get", name=name + "-new",
                  version=v["version"])["model_version"]["version"] == "1"
    other = new_model(srv)
    err(srv.call("POST", "registered-models/rename", {"name": other, "new_name": name + "-new"}),
        400, "RESOURCE_ALREADY_EXISTS")
    err(srv.call("POST", "registered-models/rename", {"name": "nope", "new_name": "x"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("POST", "registered-models/rename", {"name": other}), 400,
        "INVALID_PARAMETER_VALUE")
    rm = srv.ok("PATCH", "registered-models/update",
                {"name": other, "description": "second"})["registered_model"]
    assert rm["description"] == "second"
    err(srv.call("PATCH", "registered-models/update", {"name": "nope", "description": "x"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    assert srv.ok("DELETE", "registered-models/delete", {"name": other}) == {}
    err(srv.call("GET", "registered-models/get", name=other), 404, "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("DELETE", "registered-models/delete", {"name": other}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    # a POST where MLflow has PATCH / DELETE is not the endpoint
    assert srv.call("POST", "registered-models/delete", {"name": name})[0] == 405


def test_model_tags(srv):
    name = new_model(srv)
    srv.ok("POST", "registered-models/set-tag", {"name": name, "key": "k", "value": "1"})
    srv.ok("POST", "registered-models/set-tag", {"name": name, "key": "k", "value": "2"})
    srv.ok("POST", "registered-models/set-tag", {"name": name, "key": "a", "value": ""})
    rm = srv.ok("GET", "registered-models/get", name=name)["registered_model"]
    assert rm["tags"] == [{"key": "a", "value": ""}, {"key": "k", "value": "2"}]
    srv.ok("DELETE", "registered-models/delete-tag", {"name": name, "key": "k"})
    srv.ok("DELETE", "registered-models/delete-tag", {"name": name, "key": "k"})  # MLflow: no-op
    rm = srv.ok("GET", "registered-models/get", name=name)["registered_model"]
    assert rm["tags"] == [{"key": "a", "value": ""}]
    err(srv.call("POST", "registered-models/set-tag", {"name": "nope", "key": "k", "value": "v"}),
        404, "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("DELETE", "registered-models/delete-tag", {"name": "nope", "key": "k"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("POST", "registered-models/set-tag", {"name": name, "key": "k"}), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("POST", "registered-models/set-tag",
                 {"name": name, "key": "k" * 251, "value": "v"}), 400, "INVALID_PARAMETER_VALUE")
    err(srv.call("POST", "registered-models/set-tag",
                 {"name": name, "key": "k", "value": "v" * 5001}), 400,
        "INVALID_PARAMETER_VALUE")


def test_model_search_filter_and_pages(srv):
    names = [f"srch-{i:02d}" for i in range(7)]
    for n in names:
        srv.ok("POST", "registered-models/create", {"name": n})
    srv.ok("POST", "registered-models/set-tag", {"name": "srch-03", "key": "prod", "value": "y"})
    got = srv.ok("GET", "registered-models/search", filter="name LIKE 'srch-%'")
    assert [m["name"] for m in got["registered_models"]] == names and \
        "next_page_token" not in got
    pages = [[m["name"] for m in page] for page in pages_of(
        srv, "registered-models/search", "registered_models", filter="name LIKE 'srch-%'",
        max_results=3)]
    assert sum(pages, []) == names and len(pages[0]) == 3
    got = srv.ok("GET", "registered-models/search", filter="tags.prod = 'y'")
    assert [m["name"] for m in got["registered_models"]] == ["srch-03"]
    assert srv.ok("GET", "registered-models/search", filter="name = 'none'") == {}
    assert [m["name"] for m in srv.ok(
        "GET", "registered-models/search", filter="name LIKE 'srch-0%'",
        order_by=["name ASC"])["registered_models"]] == names
    err(srv.call("GET", "registered-models/search", filter="name ~ 'x'"), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("GET", "registered-models/search", max_results="1001"), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("GET", "registered-models/search", page_token="garbage!"), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("GET", "registered-models/search", order_by="last_updated_timestamp DESC"),
        400, "INVALID_PARAMETER_VALUE")


# ---- model versions ------------------------------------------------------------------------

def test_version_create_get_update_delete(srv):
    name = new_model(srv)
    v = srv.ok("POST", "model-versions/create",
               {"name": name, "source": "s3://bucket/m", "run_id": "abc",
                "run_link": "http://elsewhere/run/abc", "description": "first",
                "tags": [{"key": "k", "value": "v"}]})["model_version"]
    assert v["name"] == name and v["version"] == "1" and v["status"] == "READY"
    assert v["current_stage"] == "None" and v["source"] == "s3://bucket/m"
    assert v["run_id"] == "abc" and v["run_link"] == "http://elsewhere/run/abc"
    assert v["description"] == "first" and v["tags"] == [{"key": "k", "value": "v"}]
    assert isinstance(v["creation_timestamp"], int)
    assert "sidetrack_digest" not in v  # an S3 source cannot be resolved here
    assert srv.ok("GET", "model-versions/get", name=name, version="1")["model_version"] == v
    assert new_version(srv, name)["version"] == "2"
    v2 = srv.ok("PATCH", "model-versions/update",
                {"name": name, "version": "2", "description": "two"})["model_version"]
    assert v2["description"] == "two"
    srv.ok("DELETE", "model-versions/delete", {"name": name, "version": "2"})
    err(srv.call("GET", "model-versions/get", name=name, version="2"), 404,
        "RESOURCE_DOES_NOT_EXIST")
    assert new_version(srv, name)["version"] == "3"  # numbers are never given again
    err(srv.call("DELETE", "model-versions/delete", {"name": name, "version": "2"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("POST", "model-versions/create", {"name": "nope", "source": "s3://x"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("POST", "model-versions/create", {"name": name}), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("POST", "model-versions/create", {"source": "s3://x"}), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("GET", "model-versions/get", name=name, version="abc"), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("GET", "model-versions/get", name=name, version="0"), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("GET", "model-versions/get", name=name), 400, "INVALID_PARAMETER_VALUE")
    err(srv.call("GET", "model-versions/get", name="nope", version="1"), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("PATCH", "model-versions/update", {"name": name, "version": "9",
                                                    "description": "x"}), 404,
        "RESOURCE_DOES_NOT_EXIST")


def test_version_tags(srv):
    name = new_model(srv)
    new_version(srv, name)
    srv.ok("POST", "model-versions/set-tag", {"name": name, "version": "1", "key": "k",
                                              "value": "v"})
    v = srv.ok("GET", "model-versions/get", name=name, version="1")["model_version"]
    assert v["tags"] == [{"key": "k", "value": "v"}]
    srv.ok("DELETE", "model-versions/delete-tag", {"name": name, "version": "1", "key": "k"})
    srv.ok("DELETE", "model-versions/delete-tag", {"name": name, "version": "1", "key": "k"})
    assert "tags" not in srv.ok("GET", "model-versions/get", name=name,
                                version="1")["model_version"]
    err(srv.call("POST", "model-versions/set-tag", {"name": name, "version": "5", "key": "k",
                                                    "value": "v"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("DELETE", "model-versions/delete-tag", {"name": name, "version": "5",
                                                         "key": "k"}), 404,
        "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("POST", "model-versions/set-tag", {"name": name, "version": "1", "key": "",
                                                    "value": "v"}), 400,
        "INVALID_PARAMETER_VALUE")


def test_stages_and_latest_versions(srv):
    name = model_with_versions(srv, 4)

    def stage(version, to, archive=False):
        return srv.ok("POST", "model-versions/transition-stage",
                      {"name": name, "version": version, "stage": to,
                       "archive_existing_versions": archive})["model_version"]

    assert stage("1", "production")["current_stage"] == "Production"  # any case
    assert stage("2", "Staging")["current_stage"] == "Staging"
    assert stage("3", "Production", archive=True)["current_stage"] == "Production"
    assert srv.ok("GET", "model-versions/get", name=name,
                  version="1")["model_version"]["current_stage"] == "Archived"
    latest = srv.ok("GET", "registered-models/get-latest-versions",
                    name=name)["model_versions"]
    assert {(v["current_stage"], v["version"]) for v in latest} == \
        {("None", "4"), ("Staging", "2"), ("Production", "3"), ("Archived", "1")}
    latest = srv.ok("POST", "registered-models/get-latest-versions",
                    {"name": name, "stages": ["Production"]})["model_versions"]
    assert [v["version"] for v in latest] == ["3"]
    latest = srv.ok("GET", "registered-models/get-latest-versions", name=name,
                    stages=["staging", "None"])["model_versions"]
    assert sorted(v["version"] for v in latest) == ["2", "4"]
    rm = srv.ok("GET", "registered-models/get", name=name)["registered_model"]
    assert len(rm["latest_versions"]) == 4
    msg = err(srv.call("POST", "model-versions/transition-stage",
                       {"name": name, "version": "1", "stage": "Prod",
                        "archive_existing_versions": False}), 400, "INVALID_PARAMETER_VALUE")
    assert "Invalid Model Version stage" in msg
    err(srv.call("POST", "model-versions/transition-stage",
                 {"name": name, "version": "1", "stage": "Staging"}), 400,
        "INVALID_PARAMETER_VALUE")  # archive_existing_versions is required
    err(srv.call("POST", "model-versions/transition-stage",
                 {"name": name, "version": "1", "stage": "Archived",
                  "archive_existing_versions": True}), 400, "INVALID_PARAMETER_VALUE")
    err(srv.call("POST", "model-versions/transition-stage",
                 {"name": name, "version": "9", "stage": "Staging",
                  "archive_existing_versions": False}), 404, "RESOURCE_DOES_NOT_EXIST")
    err(srv.call("GET", "registered-models/get-latest-versions", name=name, stages="Prod"),
        400, "INVALID_PARAMETER_VALUE")
    err(srv.call("GET", "registered-models/get-latest-versions", name="nope"), 404,
        "RESOURCE_DOES_NOT_EXIST")


def test_version_search(srv):
    a, b = new_model(srv, "vs"), new_model(srv, "vs")
    for _ in range(3):
        new_version(srv, a, source="s3://x/a", run_id="r" * 32)
    new_version(srv, b, source="s3://x/b")
    got = srv.ok("GET", "model-versions/search", filter=f"name = '{a}'")["model_versions"]
    assert [v["version"] for v in got] == ["3", "2", "1"]
    got = srv.ok("GET", "model-versions/search", filter=f"run_id = '{'r' * 32}'")
    assert {v["name"] for v in got["model_versions"]} == {a}
    got = srv.ok("GET", "model-versions/search",
                 filter=f"name = '{a}' AND version_number >= 2")["model_versions"]
    assert [v["version"] for v in got] == ["3", "2"]
    page = srv.ok("GET", "model-versions/search", filter=f"name = '{a}'", max_results=2)
    assert len(page["model_versions"]) == 2 and page["next_page_token"]
    rest = srv.ok("GET", "model-versions/search", filter=f"name = '{a}'", max_results=2,
                  page_token=page["next_page_token"])
    assert [v["version"] for v in rest["model_versions"]] == ["1"]
    err(srv.call("GET", "model-versions/search", filter="version_number = 'x'"), 400,
        "INVALID_PARAMETER_VALUE")
    err(srv.call("GET", "model-versions/search", order_by="current_stage"), 400,
        "INVALID_PARAMETER_VALUE")


def test_versions_created_concurrently_are_numbered_without_gaps(srv):
    name = new_model(srv)
    got, errors = [], []

    def worker():
        for _ in range(6):
            s, j = srv.call("POST", "model-versions/create", {"name": name, "source": "s3://c"})
            (got if s == 200 else errors).append(j["model_version"]["version"] if s == 200
                                                 else j)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(int(v) for v in got) == list(range(1, 49))
    found = srv.ok("GET", "model-versions/search", filter=f"name = '{name}'")["model_versions"]
    assert sorted(int(v["version"]) for v in found) == list(range(1, 49))


# ---- the digest of a version's files -----------------------------------------------------------

def manifest_digest(files):
    """sha256 of what `sha256sum` prints for files {relative path: bytes}, sorted by path."""
    lines = "".join(f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n"
                    for p in sorted(files, key=lambda p: p.encode()))
    return hashlib.sha256(lines.encode()).hexdigest()


def test_digest_of_a_version_made_from_run_artifacts(srv, tmp_path):
    exp = srv.ok("POST", "experiments/create", {"name": "digest-exp"})["experiment_id"]
    run = srv.ok("POST", "runs/create", {"experiment_id": exp})["run"]["info"]
    rid, uri = run["run_id"], run["artifact_uri"]
    base = ARTIFACTS + "/" + uri[len("mlflow-artifacts:/"):]
    files = {"MLmodel": b"flavors: {}\n", "data/model.pkl": os.urandom(70000),
             "requirements.txt": b"numpy\n", "Zeta.bin": b"z"}
    for rel, content in files.items():
        s, j = srv.request("PUT", f"{base}/model/{rel}", raw=content)
        assert s == 200, j
    s, j = srv.request("PUT", f"{base}/model-other/x", raw=b"not in the model")
    assert s == 200, j
    want = manifest_digest(files)
    # the same as coreutils computes on a pulled directory
    for rel, content in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(content)
    listing = subprocess.run(["sha256sum", *sorted(files, key=lambda p: p.encode())],
                             cwd=tmp_path, capture_output=True, check=True).stdout
    assert hashlib.sha256(listing).hexdigest() == want

    name = new_model(srv)
    v = new_version(srv, name, source=f"runs:/{rid}/model")
    assert v["sidetrack_digest"] == want and v["status"] == "READY" and v["run_id"] == rid
    v2 = new_version(srv, name, source=f"{uri}/model/")
    assert v2["sidetrack_digest"] == want and v2["run_id"] == rid
    one = new_version(srv, name, source=f"runs:/{rid}/model/MLmodel")  # a one-file model
    assert one["sidetrack_digest"] == manifest_digest({"MLmodel": files["MLmodel"]})
    none = new_version(srv, name, source=f"runs:/{rid}/nothing-here")
    assert "sidetrack_digest" not in none and none["status"] == "READY"
    assert srv.ok("GET", "model-versions/get", name=name,
                  version=v["version"])["model_version"]["sidetrack_digest"] == want

    dl = srv.ok("GET", "model-versions/get-download-uri", name=name,
                version=v["version"])["artifact_uri"]
    assert dl == f"{uri}/model"
    s, body = srv.request("GET", ARTIFACTS + "/" + dl[len("mlflow-artifacts:/"):] +
                          "/data/model.pkl")
    assert s == 200 and body == files["data/model.pkl"]
    other = new_version(srv, name, source="s3://bucket/m")
    assert srv.ok("GET", "model-versions/get-download-uri", name=name,
                  version=other["version"])["artifact_uri"] == "s3://bucket/m"
    err(srv.call("GET", "model-versions/get-download-uri", name=name, version="99"), 404,
        "RESOURCE_DOES_NOT_EXIST")


# ---- aliases, history and rollback -------------------------------------------------------------

def test_aliases_set_get_move_delete(srv):
    name = model_with_versions(srv, 3)
    set_alias(srv, name, "champion", "1")
    set_alias(srv, name, "challenger", "2")
    v = srv.ok("GET", "registered-models/alias", name=name, alias="champion")["model_version"]
    assert v["version"] == "1" and v["aliases"] == ["champion"]
    set_alias(srv, name, "champion", "2")
    v = srv.ok("GET", "model-versions/get", name=name, version="2")["model_version"]
    assert sorted(v["aliases"]) == ["challenger", "champion"]
    rm = srv.ok("GET", "registered-models/get", name=name)["registered_model"]
    assert rm["aliases"] == [{"alias": "challenger", "version": "2"},
                             {"alias": "champion", "version": "2"}]
    srv.ok("DELETE", "registered-models/alias", {"name": name, "alias": "challenger"})
    srv.ok("DELETE", "registered-models/alias", {"name": name, "alias": "challenger"})
    err(srv.call("GET", "registered-models/alias", name=name, alias="challenger"), 404,
        "RESOURCE_DOES_NOT_EXIST")
    for reserved in ("latest", "LATEST", "v1", "V12"):
        msg = err(srv.call("POST", "registered-models/alias",
                           {"name": name, "alias": reserved, "version": "1"}), 400,
                  "INVALID_PARAMETER_VALUE")
        assert "reserved" in msg, msg
    alias = "registered-models/alias"
    refused(srv, [
        ("POST", alias, {"name": name, "alias": "bad alias", "version": "1"}, INVALID),
        ("POST", alias, {"name": name, "alias": "x", "version": "9"}, NOT_FOUND),
        ("POST", alias, {"name": "nope", "alias": "x", "version": "1"}, NOT_FOUND),
        ("POST", alias, {"name": name, "alias": "x"}, INVALID),
        ("GET", alias, {"name": "nope", "alias": "champion"}, NOT_FOUND),
        ("DELETE", alias, {"name": "nope", "alias": "champion"}, NOT_FOUND)])
    # deleting the version drops its aliases
    srv.ok("DELETE", "model-versions/delete", {"name": name, "version": "2"})
    err(srv.call("GET", "registered-models/alias", name=name, alias="champion"), 404,
        "RESOURCE_DOES_NOT_EXIST")


def test_alias_rollback_and_history(srv):
    name = model_with_versions(srv, 3)
    set_alias(srv, name, "prod", "1")
    set_alias(srv, name, "prod", "2")
    set_alias(srv, name, "prod", "3", token=TOKEN)
    r = srv.ok("POST", "alias/rollback", {"name": name, "alias": "prod"}, prefix=EXT)
    assert (r["alias"], r["from_version"], r["to_version"]) == ("prod", "3", "2")
    assert r["model_version"]["version"] == "2" and r["model_version"]["aliases"] == ["prod"]
    assert srv.ok("GET", "registered-models/alias", name=name,
                  alias="prod")["model_version"]["version"] == "2"
    r = srv.ok("POST", "alias/rollback", {"name": name, "alias": "prod"}, prefix=EXT,
               token=TOKEN)
    assert (r["from_version"], r["to_version"]) == ("2", "1")
    msg = err(srv.call("POST", "alias/rollback", {"name": name, "alias": "prod"}, prefix=EXT),
              400, "INVALID_PARAMETER_VALUE")
    assert "no earlier version" in msg
    refused(srv, [("POST", "alias/rollback", {"name": "nope", "alias": "prod"}, NOT_FOUND),
                  ("POST", "alias/rollback", {"name": name}, INVALID)], prefix=EXT)

    h = srv.ok("GET", "history", prefix=EXT, name=name)
    assert "next_page_token" not in h
    ev = h["events"]
    seqs = [e["seq"] for e in ev]
    assert seqs == sorted(seqs, reverse=True)  # newest first
    alias_ev = [(e["change"], e.get("from_version"), e.get("to_version"), e["actor"])
                for e in ev if e.get("key") == "prod"]
    assert alias_ev == [("alias_rollback", "2", "1", "alice"),
                        ("alias_rollback", "3", "2", "anonymous"),
                        ("alias_set", "2", "3", "alice"),
                        ("alias_set", "1", "2", "anonymous"),
                        ("alias_set", None, "1", "anonymous")]
    assert ev[-1]["change"] == "model_created" and ev[-1]["name"] == name
    assert [e["version"] for e in ev if e["change"] == "version_created"] == ["3", "2", "1"]
    assert all(isinstance(e["timestamp"], int) for e in ev)
    undone = [e for e in ev if e["change"] == "alias_rollback"]
    assert all("undoes" in e for e in undone)
    assert sum(pages_of(srv, "history", "events", prefix=EXT, name=name, max_results=3),
               []) == ev
    refused(srv, [("GET", "history", {"name": "nope"}, NOT_FOUND),
                  ("GET", "history", {}, INVALID),
                  ("GET", "history", {"name": name, "page_token": "zz"}, INVALID)], prefix=EXT)


def test_read_only_server_reads_the_registry_and_refuses_writes():
    with scratch("sidetrack-registry-ro-") as root:
        s = Server(root)
        try:
            name = model_with_versions(s, 1)
            set_alias(s, name, "a", "1")
        finally:
            s.stop()
        s = Server(root, "--read-only", data=s.data)
        try:
            assert s.ok("GET", "registered-models/alias", name=name,
                        alias="a")["model_version"]["version"] == "1"
            assert s.ok("GET", "history", prefix=EXT, name=name)["events"]
            for method, path, body, prefix in [
                    ("POST", "registered-models/create", {"name": "x"}, API),
                    ("POST", "model-versions/create", {"name": name, "source": "s3://x"}, AJAX),
                    ("PATCH", "registered-models/update", {"name": name, "description": "d"},
                     API),
                    ("DELETE", "model-versions/delete", {"name": name, "version": "1"}, API),
                    ("DELETE", "registered-models/alias", {"name": name, "alias": "a"}, API),
                    ("POST", "alias/rollback", {"name": name, "alias": "a"}, EXT)]:
                msg = err(s.call(method, path, body, prefix=prefix), 403, "PERMISSION_DENIED")
                assert "read-only" in msg
            assert s.ok("GET", "model-versions/get", name=name, version="1")
        finally:
            s.stop()
