"""Tests for python/sidetrack/_context.py (run context captured as MLflow tags).

Loaded from its file path: the package's __init__ needs the compiled extension, which may not
be built. Run with:  /usr/bin/python3 -m pytest -q tests/python/test_context.py
"""

import hashlib
import importlib.machinery
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
_PATH = ROOT / "python" / "sidetrack" / "_context.py"
_spec = importlib.util.spec_from_file_location("sidetrack_context", _PATH)
ctx = importlib.util.module_from_spec(_spec)
sys.modules["sidetrack_context"] = ctx
_spec.loader.exec_module(ctx)

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed: git context untested")

GIT_TAGS = ("mlflow.source.git.commit", "mlflow.source.git.branch", "mlflow.source.git.repoURL",
            "mlflow.gitRepoURL", "sidetrack.git.dirty", "sidetrack.git.diff_sha256",
            "sidetrack.git.diff_truncated")
ERR = "sidetrack.context.errors"
KEY_RE = re.compile(r"^[\w./\- ]{1,250}$")


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path, monkeypatch):
    # Keep git from finding a repository above tmp_path, and from reading the user's config.
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE).stdout.decode().strip()


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q")
    git(r, "symbolic-ref", "HEAD", "refs/heads/trunk")
    git(r, "config", "user.name", "Test User")
    git(r, "config", "user.email", "test@example.com")
    git(r, "config", "commit.gpgsign", "false")
    (r / "train.py").write_text("print('hello')\n")
    (r / ".gitignore").write_text("*.log\n")
    git(r, "add", "train.py", ".gitignore")
    git(r, "commit", "-q", "-m", "first")
    git(r, "remote", "add", "origin", "https://user:secret@example.com/x.git")
    return r


def cap(entry, **kw):
    kw.setdefault("packages", False)
    kw.setdefault("proc_root", "/nonexistent-proc")
    return ctx.capture(str(entry), **kw)


def check_values(tags):
    for key, value in tags.items():
        assert KEY_RE.match(key), key
        assert isinstance(value, str)
        assert len(value) <= ctx.MAX_VALUE_CHARS, key
        assert "\0" not in value
        value.encode("utf-8")  # strict: no lone surrogates


# --------------------------------------------------------------------------------------------
# entry point, user, python, host


def test_basic_tags(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("pass\n")
    tags, files = cap(script)
    assert tags["mlflow.source.name"] == str(script)
    assert tags["sidetrack.entry_point"] == str(script)
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"]
    assert tags["sidetrack.python.version"] == __import__("platform").python_version()
    assert tags["sidetrack.python.implementation"] == __import__("platform").python_implementation()
    assert tags["sidetrack.python.executable"] == sys.executable
    assert ("sidetrack.python.venv" in tags) == (sys.prefix != sys.base_prefix)
    assert tags["sidetrack.host"] == __import__("socket").gethostname()
    assert tags["sidetrack.os"]
    assert "sidetrack.argv" in tags
    assert ERR not in tags
    assert not any(k in tags for k in GIT_TAGS)  # tmp_path is not in a work tree
    assert files == {}
    check_values(tags)


def test_relative_entry_file_uses_cwd(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text("")
    tags, _ = ctx.capture("sub/a.py", cwd=str(tmp_path), packages=False)
    assert tags["mlflow.source.name"] == str(tmp_path / "sub" / "a.py")


def test_default_entry_from_argv(tmp_path, monkeypatch):
    import __main__
    script = tmp_path / "run.py"
    script.write_text("")
    monkeypatch.setattr(__main__, "__spec__", None, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["run.py", "--lr", "0.1", "a b"])
    tags, _ = ctx.capture(packages=False)
    assert tags["mlflow.source.name"] == str(script)
    assert tags["sidetrack.argv"] == "run.py --lr 0.1 'a b'"

    monkeypatch.setattr(sys, "argv", [""])
    assert ctx.capture(packages=False)[0]["mlflow.source.name"] == "<interactive>"
    monkeypatch.setattr(sys, "argv", ["-c", "x"])
    assert ctx.capture(packages=False)[0]["sidetrack.entry_point"] == "-c"


def test_default_entry_python_dash_m(tmp_path, monkeypatch):
    import __main__
    mod = tmp_path / "pkg" / "mod.py"
    mod.parent.mkdir()
    mod.write_text("")
    spec = importlib.machinery.ModuleSpec("pkg.mod", None, origin=str(mod))
    monkeypatch.setattr(__main__, "__spec__", spec, raising=False)
    monkeypatch.setattr(sys, "argv", [str(mod), "x"])
    tags, _ = ctx.capture(packages=False)
    assert tags["mlflow.source.name"] == "-m pkg.mod"
    assert tags["sidetrack.entry_point"] == "-m pkg.mod"

    spec = importlib.machinery.ModuleSpec("pkg.__main__", None, origin=str(mod))
    monkeypatch.setattr(__main__, "__spec__", spec, raising=False)
    assert ctx.capture(packages=False)[0]["mlflow.source.name"] == "-m pkg"


def test_long_argv_truncated(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["x.py", "y" * 20000, "\udcff-not-utf8", "nul\0"])
    tags, _ = cap(tmp_path / "x.py")
    assert 0 < len(tags["sidetrack.argv"]) <= 5000
    assert tags["sidetrack.argv"].startswith("x.py yyyy")
    check_values(tags)


def test_clean_values():
    assert ctx._clean("a" * 5000) == "a" * 5000
    long = ctx._clean("é" * 9000)
    assert len(long) == 5000 and long.endswith("...")
    assert ctx._clean("ok\udcc3\udca9") == "ok\u00e9"  # surrogateescape'd UTF-8 bytes
    assert ctx._clean("bad\ud800") == "bad\ufffd"
    assert ctx._clean("a\0b") == "a\ufffdb"


# --------------------------------------------------------------------------------------------
# git


@needs_git
def test_git_clean_repo(repo):
    tags, files = cap(repo / "train.py")
    assert ERR not in tags
    assert tags["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD")
    assert len(tags["mlflow.source.git.commit"]) in (40, 64)
    assert tags["mlflow.source.git.branch"] == "trunk"
    assert tags["mlflow.source.git.repoURL"] == "https://example.com/x.git"  # no user:secret@
    assert tags["mlflow.gitRepoURL"] == "https://example.com/x.git"
    assert "secret" not in "".join(tags.values())
    assert tags["sidetrack.git.dirty"] == "false"
    assert "sidetrack.git.diff_sha256" not in tags
    assert "git/diff.patch" not in files
    check_values(tags)


@needs_git
def test_git_entry_in_subdirectory_and_cwd(repo, tmp_path):
    (repo / "src").mkdir()
    (repo / "src" / "m.py").write_text("")
    tags, _ = cap(repo / "src" / "m.py")
    assert tags["sidetrack.git.dirty"] == "true"  # src/m.py is untracked
    # No entry file (interactive): git looks at cwd.
    tags, _ = ctx.capture("<interactive>", cwd=str(repo / "src"), packages=False)
    assert tags["mlflow.source.name"] == "<interactive>"
    assert tags["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD")


@needs_git
def test_git_dirty_and_digest(repo):
    entry = repo / "train.py"
    # Ignored files do not make it dirty.
    (repo / "out.log").write_text("noise\n")
    assert cap(entry)[0]["sidetrack.git.dirty"] == "false"

    entry.write_text("print('hello')\nprint('changed')\n")
    t1, f1 = cap(entry)
    assert ERR not in t1
    assert t1["sidetrack.git.dirty"] == "true"
    d1 = t1["sidetrack.git.diff_sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", d1)
    patch = f1["git/diff.patch"]
    assert b"+print('changed')" in patch and b"diff --git a/train.py b/train.py" in patch
    assert "sidetrack.git.diff_truncated" not in t1
    assert cap(entry)[0]["sidetrack.git.diff_sha256"] == d1  # stable

    # No untracked files yet: the digest is that of the patch.
    assert d1 == hashlib.sha256(patch).hexdigest()

    # An untracked file (not ignored) changes the digest; so do its contents.
    (repo / "notes.txt").write_text("one\n")
    d2 = cap(entry)[0]["sidetrack.git.diff_sha256"]
    assert d2 != d1
    assert cap(entry)[0]["sidetrack.git.diff_sha256"] == d2
    (repo / "notes.txt").write_text("two\n")
    d3 = cap(entry)[0]["sidetrack.git.diff_sha256"]
    assert d3 not in (d1, d2)
    (repo / "notes.txt").unlink()
    assert cap(entry)[0]["sidetrack.git.diff_sha256"] == d1

    # A different tracked change: a different digest.
    entry.write_text("print('hello')\nprint('changed again')\n")
    assert cap(entry)[0]["sidetrack.git.diff_sha256"] != d1

    # Staged changes count too (diff against HEAD, not the index).
    git(repo, "add", "train.py")
    t4, f4 = cap(entry)
    assert t4["sidetrack.git.dirty"] == "true"
    assert b"changed again" in f4["git/diff.patch"]

    # Back to clean.
    git(repo, "reset", "-q", "--hard")
    t5, f5 = cap(entry)
    assert t5["sidetrack.git.dirty"] == "false"
    assert "sidetrack.git.diff_sha256" not in t5 and "git/diff.patch" not in f5


@needs_git
def test_git_only_untracked_is_dirty(repo):
    (repo / "new.py").write_text("x = 1\n")
    tags, files = cap(repo / "train.py")
    assert tags["sidetrack.git.dirty"] == "true"
    assert re.fullmatch(r"[0-9a-f]{64}", tags["sidetrack.git.diff_sha256"])
    assert "git/diff.patch" not in files  # the tracked diff is empty


@needs_git
def test_git_takes_no_index_lock(repo):
    index = repo / ".git" / "index"
    for dirty in (False, True):
        if dirty:
            (repo / "train.py").write_text("changed\n")
        # Stat-dirty only: a plain `git status` would refresh and rewrite the index.
        os.utime(repo / "train.py", (1, 1))
        os.utime(index, (2, 2))
        before = index.stat().st_mtime_ns
        tags, _ = cap(repo / "train.py")
        assert tags["sidetrack.git.dirty"] == ("true" if dirty else "false")
        assert not (repo / ".git" / "index.lock").exists()
        assert index.stat().st_mtime_ns == before
    git(repo, "status", "--porcelain")  # shows that the scenario would have written it
    assert index.stat().st_mtime_ns != before


@needs_git
def test_git_large_diff_not_stored(repo):
    big = repo / "big.txt"
    big.write_text("small\n")
    git(repo, "add", "big.txt")
    git(repo, "commit", "-q", "-m", "big")
    line = "0123456789abcdef" * 4 + "\n"
    big.write_text(line * (11 * 1024 * 1024 // len(line)))
    tags, files = cap(repo / "train.py", timeout=30)
    assert ERR not in tags
    assert tags["sidetrack.git.dirty"] == "true"
    assert tags["sidetrack.git.diff_truncated"] == "true"
    assert re.fullmatch(r"[0-9a-f]{64}", tags["sidetrack.git.diff_sha256"])
    assert "git/diff.patch" not in files


@needs_git
def test_git_detached_head_has_no_branch(repo):
    (repo / "train.py").write_text("v2\n")
    git(repo, "commit", "-q", "-am", "second")
    first = git(repo, "rev-parse", "HEAD~1")
    git(repo, "checkout", "-q", "--detach", first)
    tags, _ = cap(repo / "train.py")
    assert ERR not in tags
    assert tags["mlflow.source.git.commit"] == first
    assert "mlflow.source.git.branch" not in tags
    assert tags["sidetrack.git.dirty"] == "false"


@needs_git
def test_git_remote_fallback_and_no_remote(repo):
    git(repo, "remote", "remove", "origin")
    tags, _ = cap(repo / "train.py")
    assert "mlflow.source.git.repoURL" not in tags and "mlflow.gitRepoURL" not in tags
    git(repo, "remote", "add", "upstream", "git@github.com:org/proj.git")
    tags, _ = cap(repo / "train.py")
    assert tags["mlflow.source.git.repoURL"] == "git@github.com:org/proj.git"
    git(repo, "remote", "add", "origin", "https://ghp_token@github.com/org/proj.git")
    tags, _ = cap(repo / "train.py")
    assert tags["mlflow.gitRepoURL"] == "https://github.com/org/proj.git"


@pytest.mark.parametrize("url,want", [
    ("https://user:secret@example.com/x.git", "https://example.com/x.git"),
    ("http://token@example.com:8080/x.git", "http://example.com:8080/x.git"),
    ("https://a:b@c@example.com/x.git", "https://example.com/x.git"),
    ("https://example.com/x.git", "https://example.com/x.git"),
    ("https://example.com/path@with-at.git", "https://example.com/path@with-at.git"),
    ("ssh://git:pw@example.com/x.git", "ssh://git@example.com/x.git"),
    ("ssh://git@example.com/x.git", "ssh://git@example.com/x.git"),
    ("git@github.com:org/x.git", "git@github.com:org/x.git"),
    ("/srv/git/x.git", "/srv/git/x.git"),
])
def test_strip_credentials(url, want):
    assert ctx._strip_credentials(url) == want


@needs_git
def test_git_unborn_branch(tmp_path):
    r = tmp_path / "fresh"
    r.mkdir()
    git(r, "init", "-q")
    git(r, "symbolic-ref", "HEAD", "refs/heads/main")
    (r / "a.py").write_text("")
    tags, _ = cap(r / "a.py")
    assert ERR not in tags
    assert "mlflow.source.git.commit" not in tags
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["sidetrack.git.dirty"] == "true"
    assert "sidetrack.git.diff_sha256" in tags


def test_not_a_repo(tmp_path):
    (tmp_path / "s.py").write_text("")
    tags, files = cap(tmp_path / "s.py")
    assert not any(k in tags for k in GIT_TAGS)
    assert ERR not in tags
    assert "git/diff.patch" not in files


@needs_git
def test_git_missing_from_path(repo, tmp_path, monkeypatch):
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    tags, files = cap(repo / "train.py")
    assert not any(k in tags for k in GIT_TAGS)
    assert ERR not in tags
    assert "git/diff.patch" not in files
    assert tags["mlflow.source.name"] == str(repo / "train.py")


def test_git_that_hangs_times_out(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text("#!/bin/sh\nexec sleep 30\n")
    (fake / "git").chmod(0o755)
    monkeypatch.setenv("PATH", str(fake) + os.pathsep + os.environ.get("PATH", ""))
    (tmp_path / "s.py").write_text("")
    t0 = time.monotonic()
    tags, _ = cap(tmp_path / "s.py", timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert tags[ERR] == "git"
    assert not any(k in tags for k in GIT_TAGS)
    assert tags["sidetrack.python.version"]  # the other parts are still there


# --------------------------------------------------------------------------------------------
# packages


def test_packages(tmp_path, monkeypatch):
    site = tmp_path / "site"
    info = site / "My_Weird.Pkg-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: My_Weird.Pkg\nVersion: 1.2.3\n\nName: not-this\n")
    egg = site / "Old__Thing.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: Old__Thing\nVersion: 0.9\n")
    monkeypatch.syspath_prepend(str(site))

    t0 = time.perf_counter()
    tags, files = ctx.capture(str(tmp_path / "x.py"), proc_root=str(tmp_path))
    elapsed = time.perf_counter() - t0
    assert ERR not in tags
    data = files["environment/requirements.txt"]
    assert data.endswith(b"\n") and not data.endswith(b"\n\n")
    lines = data.decode().splitlines()
    assert lines == sorted(lines) and len(lines) == len(set(lines))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*==\S+", ln) for ln in lines), lines
    names = [ln.split("==")[0] for ln in lines]
    assert len(names) == len(set(names))
    assert "my-weird-pkg==1.2.3" in lines
    assert "old-thing==0.9" in lines
    assert tags["sidetrack.python.packages.count"] == str(len(lines))
    assert tags["sidetrack.python.packages.sha256"] == hashlib.sha256(data).hexdigest()
    assert elapsed < 2.0, f"capture with packages took {elapsed:.3f}s"


def test_packages_off(tmp_path):
    tags, files = ctx.capture(str(tmp_path / "x.py"), packages=False)
    assert "environment/requirements.txt" not in files
    assert "sidetrack.python.packages.count" not in tags


# --------------------------------------------------------------------------------------------
# GPUs


def fake_proc(tmp_path, version_line, gpus):
    nv = tmp_path / "proc" / "driver" / "nvidia"
    (nv / "gpus").mkdir(parents=True)
    (nv / "version").write_text(version_line + "\nGCC version:  gcc version 12.2.0\n")
    for bus, model in gpus:
        d = nv / "gpus" / bus
        d.mkdir()
        (d / "information").write_text(
            f"Model: \t\t {model}\nIRQ:   \t\t 0\nGPU UUID: \t GPU-0\n"
            f"Video BIOS: \t 96.00.74.00.01\nBus Type: \t PCIe\nDMA Size: \t 52 bits\n"
            f"Bus Location: \t {bus}\nDevice Minor: \t 0\n")
    return str(tmp_path / "proc")


def test_gpu_tags(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    proc = fake_proc(
        tmp_path,
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023",
        [("0000:9b:00.0", "NVIDIA H100 80GB HBM3"), ("0000:19:00.0", "NVIDIA H100 80GB HBM3")])
    tags, _ = ctx.capture(str(tmp_path / "x.py"), proc_root=proc, packages=False)
    assert ERR not in tags
    assert tags["sidetrack.gpu.driver"] == "535.104.05"
    assert tags["sidetrack.gpu.count"] == "2"
    assert tags["sidetrack.gpu.models"] == "NVIDIA H100 80GB HBM3 x2"
    assert "sidetrack.gpu.visible" not in tags


def test_gpu_open_module_mixed_models(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    proc = fake_proc(
        tmp_path,
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build  "
        "(dvs-builder@U16-I3-B03-4-3)  Tue Mar  5 22:15:33 UTC 2024",
        [("0000:c1:00.0", "NVIDIA A100-SXM4-40GB"), ("0000:01:00.0", "NVIDIA L4"),
         ("0000:41:00.0", "NVIDIA A100-SXM4-40GB")])
    tags, _ = ctx.capture(str(tmp_path / "x.py"), proc_root=proc, packages=False)
    assert tags["sidetrack.gpu.driver"] == "550.54.15"
    assert tags["sidetrack.gpu.count"] == "3"
    assert tags["sidetrack.gpu.models"] == "NVIDIA L4, NVIDIA A100-SXM4-40GB x2"
    assert tags["sidetrack.gpu.visible"] == "1,0"


def test_no_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (tmp_path / "proc").mkdir()
    tags, _ = ctx.capture(str(tmp_path / "x.py"), proc_root=str(tmp_path / "proc"),
                          packages=False)
    assert not any(k.startswith("sidetrack.gpu.") for k in tags)
    assert ERR not in tags


def test_collapse():
    assert ctx._collapse(["A", "A", "B", "A"]) == "A x2, B, A"
    assert ctx._collapse(["A"]) == "A"
    assert ctx._collapse([]) == ""


# --------------------------------------------------------------------------------------------
# never raises


def test_failing_part_is_named_not_raised(tmp_path):
    # A proc_root whose nvidia/version is a directory: reading it fails, the rest stays.
    (tmp_path / "proc" / "driver" / "nvidia" / "version").mkdir(parents=True)
    tags, _ = ctx.capture(str(tmp_path / "x.py"), proc_root=str(tmp_path / "proc"),
                          packages=False)
    assert tags[ERR] == "gpu"
    assert tags["mlflow.source.type"] == "LOCAL"
    tags, _ = ctx.capture(12345, packages=False)  # not a path at all
    assert "entry" in tags[ERR].split(",")
    assert tags["sidetrack.python.version"]


# --------------------------------------------------------------------------------------------
# end to end: the defaults as a real interpreter sets them


_PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("sidetrack_context", {path!r})
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
print(json.dumps(m.capture(packages=False)[0]))
"""


@pytest.mark.parametrize("how", ["script", "module", "package", "-c"])
def test_default_entry_real_interpreter(tmp_path, how):
    import json
    pkg = tmp_path / "proj" / "app"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    probe = _PROBE.format(path=str(_PATH))
    (pkg / "main.py").write_text(probe)
    (pkg / "__main__.py").write_text(probe)
    cmd = {"script": [sys.executable, "app/main.py", "--x", "1"],
           "module": [sys.executable, "-m", "app.main", "--x", "1"],
           "package": [sys.executable, "-m", "app", "--x", "1"],
           "-c": [sys.executable, "-c", probe, "--x", "1"]}[how]
    out = subprocess.run(cmd, cwd=tmp_path / "proj", check=True, stdout=subprocess.PIPE,
                         timeout=60).stdout
    tags = json.loads(out)
    want = {"script": str(pkg / "main.py"), "module": "-m app.main", "package": "-m app",
            "-c": "-c"}[how]
    assert tags["mlflow.source.name"] == want
    assert tags["sidetrack.entry_point"] == want
    assert tags["sidetrack.argv"].endswith("--x 1")
    assert ERR not in tags
