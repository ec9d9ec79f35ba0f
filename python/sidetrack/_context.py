"""Run context captured at ``start_run``, as MLflow-compatible tags.

Pure Python, standard library only; nothing here imports the compiled extension.

``capture()`` returns ``(tags, files)``:

* ``tags`` maps MLflow tag keys to string values (valid UTF-8 without NUL, at most
  ``MAX_VALUE_CHARS`` code points each: what the C client's ``st__check_value`` accepts);
* ``files`` maps artifact paths to bytes: ``git/diff.patch`` and ``environment/requirements.txt``.

Every part (entry point, user, git, python, packages, host, gpu) runs on its own; one that fails
is left out and its name goes into the tag ``sidetrack.context.errors``. Things that are simply
absent -- no git binary, not a git work tree, no NVIDIA driver -- are not errors. The git diff
digest is its own part, ``git.diff``, so that a slow diff does not cost the commit and branch.
"""

from __future__ import annotations

import getpass
import glob
import hashlib
import os
import platform
import re
import shlex
import socket
import subprocess
import sys
import time

__all__ = ["capture", "MAX_VALUE_CHARS", "MAX_DIFF_BYTES"]

MAX_VALUE_CHARS = 5000
MAX_DIFF_BYTES = 10 * 1024 * 1024

ERRORS_TAG = "sidetrack.context.errors"
DIFF_PATCH = "git/diff.patch"
REQUIREMENTS = "environment/requirements.txt"

_ELLIPSIS = "..."


def capture(entry_file: str | None = None, *, cwd: str | None = None,
            proc_root: str = "/proc", timeout: float = 2.0,
            packages: bool = True) -> tuple[dict[str, str], dict[str, bytes]]:
    """Return (tags, files). Never raises: a part that fails is left out and named in the tag
    'sidetrack.context.errors' (comma-separated part names, e.g. 'git').

    entry_file: the script being run; default: sys.argv[0] made absolute when it is a file,
    "-m pkg.mod" when run with ``python -m`` (from ``__main__.__spec__``), "<interactive>" for
    an interactive session and "-c" for ``python -c``. A string "-m pkg.mod" is taken as such.
    cwd: the directory a relative entry_file is relative to, and the one git looks at when
    there is no entry file; default: the process's working directory.
    proc_root: where /proc is (the NVIDIA driver's files are read from it).
    timeout: seconds each git subprocess may run (and the budget to hash untracked files).
    packages: whether to list installed Python distributions.
    """
    tags: dict[str, str] = {}
    files: dict[str, bytes] = {}
    errors: list[str] = []

    def part(name, fn, *args):
        out_tags: dict[str, str] = {}
        out_files: dict[str, bytes] = {}
        try:
            result = fn(out_tags, out_files, *args)
        except Exception:  # a failing part is left out, never raised
            errors.append(name)
            return None
        tags.update(out_tags)
        files.update(out_files)
        return result

    try:
        try:
            base = os.path.abspath(cwd) if cwd is not None else os.getcwd()
        except Exception:
            base = None
        entry = part("entry", _entry, entry_file, base)
        part("user", _user)
        git_dir = (entry or {}).get("dir") or base
        if git_dir:
            head = part("git", _git, git_dir, timeout)
            if head:
                part("git.diff", _git_diff, head, timeout)
        part("python", _python)
        if packages:
            part("packages", _packages)
        part("host", _host)
        part("gpu", _gpu, proc_root)
    except Exception:  # pragma: no cover - belt and braces: nothing escapes
        errors.append("context")

    out = {}
    for key, value in tags.items():
        try:
            out[key] = _clean(value)
        except Exception:  # pragma: no cover
            errors.append(key)
    if errors:
        out[ERRORS_TAG] = _clean(",".join(dict.fromkeys(errors)))
    return out, files


# ---------------------------------------------------------------------------------------------
# values


def _clean(value) -> str:
    """A tag value the C client accepts: valid UTF-8, no NUL, at most MAX_VALUE_CHARS."""
    s = value if isinstance(value, str) else str(value)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: from os.fsdecode (surrogateescape) get back the raw bytes, decode
        # them leniently; anything else becomes U+FFFD.
        try:
            s = s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:
            s = re.sub("[\ud800-\udfff]", "\ufffd", s)
    if "\0" in s:
        s = s.replace("\0", "\ufffd")
    if len(s) > MAX_VALUE_CHARS:
        s = s[: MAX_VALUE_CHARS - len(_ELLIPSIS)] + _ELLIPSIS
    return s


# ---------------------------------------------------------------------------------------------
# entry point and user


def _entry(tags, files, entry_file, base):
    argv = list(getattr(sys, "argv", None) or [])
    name, path = _entry_name(entry_file, base, argv)
    tags["mlflow.source.name"] = name
    tags["mlflow.source.type"] = "LOCAL"
    tags["sidetrack.entry_point"] = name
    tags["sidetrack.argv"] = shlex.join(str(a) for a in argv)
    directory = None
    if path:
        d = os.path.dirname(path)
        if os.path.isdir(d):
            directory = d
    return {"dir": directory}


def _entry_name(entry_file, base, argv):
    """(name for the tags, file whose directory git looks at, or None)."""
    if entry_file is not None:
        entry_file = os.fspath(entry_file)
        if entry_file.startswith("-m ") and entry_file[3:].strip():
            return "-m " + entry_file[3:].strip(), None
        if entry_file in ("<interactive>", "-c"):
            return entry_file, None
        path = os.path.join(base, entry_file) if base else os.path.abspath(entry_file)
        path = os.path.normpath(path)
        return path, path

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    mod = getattr(spec, "name", None)
    if mod and mod != "__main__":
        if mod.endswith(".__main__"):  # python -m pkg runs pkg.__main__
            mod = mod[: -len(".__main__")]
        origin = getattr(spec, "origin", None)
        origin = origin if isinstance(origin, str) and os.path.isfile(origin) else None
        return "-m " + mod, (os.path.abspath(origin) if origin else None)

    arg0 = argv[0] if argv else ""
    if arg0 == "-c":
        return "-c", None
    if arg0 and arg0 != "-" and os.path.isfile(arg0):
        path = os.path.abspath(arg0)
        return path, path
    if arg0 and arg0 != "-" and os.path.isdir(arg0):  # python dir/ or python app.zip
        path = os.path.abspath(arg0)
        return path, os.path.join(path, "__main__.py")
    return "<interactive>", None


def _user(tags, files):
    try:
        user = getpass.getuser()
    except Exception:
        user = ""
    if not user:
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    tags["mlflow.user"] = user


# ---------------------------------------------------------------------------------------------
# git


class _NoGit(Exception):
    """git is not installed: not an error."""


def _git_env():
    env = dict(os.environ)
    env["GIT_OPTIONAL_LOCKS"] = "0"  # git status must never take index.lock
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def _git_run(args, cwd, env, timeout, check=True):
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except FileNotFoundError:
        raise _NoGit() from None
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, ["git", *args], proc.stdout,
                                            proc.stderr)
    return proc


def _git(tags, files, directory, timeout):
    env = _git_env()
    try:
        top = _git_run(["rev-parse", "--show-toplevel"], directory, env, timeout, check=False)
    except _NoGit:
        return None
    if top.returncode != 0:  # not a git work tree (or a bare repository, or inside .git)
        return None
    toplevel = os.fsdecode(top.stdout.rstrip(b"\r\n"))
    if not toplevel:
        return None

    head = _git_run(["rev-parse", "--verify", "-q", "HEAD^{commit}"], toplevel, env, timeout,
                    check=False)
    commit = head.stdout.decode("ascii", "replace").strip() if head.returncode == 0 else ""
    if commit:
        tags["mlflow.source.git.commit"] = commit

    branch = _git_run(["symbolic-ref", "-q", "--short", "HEAD"], toplevel, env, timeout,
                      check=False)
    if branch.returncode == 0:  # 1: detached HEAD
        name = os.fsdecode(branch.stdout.strip())
        if name:
            tags["mlflow.source.git.branch"] = name

    url = _git_remote_url(toplevel, env, timeout)
    if url:
        tags["mlflow.source.git.repoURL"] = url
        tags["mlflow.gitRepoURL"] = url

    status = _git_run(["status", "--porcelain=v1", "-z", "--untracked-files=all",
                       "--ignore-submodules=none"], toplevel, env, timeout)
    dirty = bool(status.stdout.strip(b"\0"))
    tags["sidetrack.git.dirty"] = "true" if dirty else "false"
    if not dirty:
        return None
    return {"toplevel": toplevel, "env": env, "commit": commit}


def _git_remote_url(toplevel, env, timeout):
    remotes = _git_run(["remote"], toplevel, env, timeout, check=False)
    if remotes.returncode != 0:
        return ""
    names = [n for n in os.fsdecode(remotes.stdout).splitlines() if n.strip()]
    if not names:
        return ""
    name = "origin" if "origin" in names else names[0]
    got = _git_run(["remote", "get-url", name], toplevel, env, timeout, check=False)
    if got.returncode != 0:
        return ""
    lines = os.fsdecode(got.stdout).splitlines()
    return _strip_credentials(lines[0].strip()) if lines else ""


_URL_RE = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<auth>[^/?#]*)(?P<rest>.*)$",
                     re.S)


def _strip_credentials(url: str) -> str:
    """Remove credentials from a remote URL.

    http(s)/ftp(s): the whole user-info goes (a lone user name there is usually a token);
    other schemes (ssh://git@host/...): only a password goes, the user name stays.
    scp-like 'git@host:path' and local paths are returned unchanged.
    """
    m = _URL_RE.match(url)
    if not m or "@" not in m.group("auth"):
        return url
    scheme = m.group("scheme")
    userinfo, _, hostport = m.group("auth").rpartition("@")
    if scheme.lower() in ("http", "https", "ftp", "ftps"):
        auth = hostport
    else:
        user = userinfo.split(":", 1)[0]
        auth = (user + "@" + hostport) if user else hostport
    return scheme + "://" + auth + m.group("rest")


def _git_diff(tags, files, head, timeout):
    toplevel, env = head["toplevel"], head["env"]
    base = head["commit"]
    if not base:  # no commit yet: diff against the empty tree
        empty = _git_run(["hash-object", "-t", "tree", "--stdin"], toplevel, env, timeout,
                         check=False)
        base = empty.stdout.decode("ascii", "replace").strip() if empty.returncode == 0 else ""
        if not base:
            base = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
    digest = hashlib.sha256()
    kept = bytearray()
    size = 0

    def sink(chunk):
        nonlocal size
        digest.update(chunk)
        size += len(chunk)
        if size <= MAX_DIFF_BYTES:
            kept.extend(chunk)

    _stream(["git", "diff", base, "--binary", "--no-color", "--no-ext-diff", "--no-textconv",
             "--"], toplevel, env, timeout, sink)

    # Untracked files (not ignored): names and contents go into the digest.
    others = _git_run(["ls-files", "-z", "--others", "--exclude-standard"], toplevel, env,
                      timeout)
    names = sorted(n for n in others.stdout.split(b"\0") if n)
    deadline = time.monotonic() + timeout
    for name in names:
        digest.update(b"\0untracked\0" + name + b"\0")
        path = os.path.join(os.fsencode(toplevel), name)
        if name.endswith(b"/"):  # a nested repository: its name only
            continue
        if os.path.islink(path):
            digest.update(b"link\0" + os.readlink(path) + b"\0")
            continue
        if not os.path.isfile(path):
            continue
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                h.update(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError("hashing untracked files took longer than the timeout")
        digest.update(b"file\0" + h.digest())

    tags["sidetrack.git.diff_sha256"] = digest.hexdigest()
    if size > MAX_DIFF_BYTES:
        tags["sidetrack.git.diff_truncated"] = "true"
    elif size:
        files[DIFF_PATCH] = bytes(kept)


def _stream(args, cwd, env, timeout, sink):
    """Run args, handing stdout to sink chunk by chunk (a large diff is never held whole);
    kill it and raise TimeoutExpired past timeout; raise CalledProcessError if it fails."""
    if os.name != "posix":
        proc = subprocess.run(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=timeout)
        sink(proc.stdout)
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, args)
        return
    import selectors

    deadline = time.monotonic() + timeout
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise subprocess.TimeoutExpired(args, timeout)
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                sink(chunk)
        rc = proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
        if rc != 0:
            raise subprocess.CalledProcessError(rc, args)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# ---------------------------------------------------------------------------------------------
# python, packages, host


def _python(tags, files):
    tags["sidetrack.python.version"] = platform.python_version()
    tags["sidetrack.python.implementation"] = platform.python_implementation()
    tags["sidetrack.python.executable"] = sys.executable or ""
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        tags["sidetrack.python.venv"] = sys.prefix


_NORMALIZE_RE = re.compile(r"[-_.]+")


def _normalize(name: str) -> str:
    """PEP 503: lowercase, runs of '-', '_' and '.' become one '-'."""
    return _NORMALIZE_RE.sub("-", name).lower()


def _name_version(dist):
    """Name and Version from the metadata's header lines only (parsing the whole file with the
    email package, long description included, is what makes listing packages slow)."""
    name = version = None
    text = None
    for fname in ("METADATA", "PKG-INFO"):
        try:
            text = dist.read_text(fname)
        except Exception:
            text = None
        if text:
            break
    if text:
        for line in text.splitlines():
            if not line.strip():
                break  # end of the headers
            if name is None and line[:5].lower() == "name:":
                name = line[5:].strip()
            elif version is None and line[:8].lower() == "version:":
                version = line[8:].strip()
            if name is not None and version is not None:
                break
    if not name or not version:
        meta = dist.metadata
        name = name or (meta["Name"] if meta is not None else None)
        version = version or dist.version
    return name, version


def _packages(tags, files):
    import importlib.metadata as md

    seen: dict[str, str] = {}
    for dist in md.distributions():
        try:
            name, version = _name_version(dist)
        except Exception:
            continue  # a broken .dist-info directory does not spoil the list
        if not name or not version:
            continue
        key = _normalize(name.strip())
        if key not in seen:  # the first on sys.path is the one that imports
            seen[key] = "".join(version.split())
    lines = sorted(f"{name}=={version}" for name, version in seen.items())
    data = ("\n".join(lines) + "\n").encode("utf-8", "replace") if lines else b""
    files[REQUIREMENTS] = data
    tags["sidetrack.python.packages.count"] = str(len(lines))
    tags["sidetrack.python.packages.sha256"] = hashlib.sha256(data).hexdigest()


def _host(tags, files):
    tags["sidetrack.host"] = socket.gethostname()
    tags["sidetrack.os"] = platform.platform()


# ---------------------------------------------------------------------------------------------
# GPUs, from the NVIDIA driver's /proc files: no CUDA, no nvidia-smi


_DRIVER_RE = re.compile(r"Kernel Module\b.*?\s(\d+\.\d+(?:\.\d+)*)(?:\s|$)")


def _driver_version(first_line: str) -> str:
    m = _DRIVER_RE.search(first_line)
    return m.group(1) if m else ""


def _read_info(path):
    fields = {}
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            key, sep, value = line.partition(":")
            if sep:
                fields.setdefault(key.strip(), value.strip())
    return fields


def _bus_key(bus: str):
    """Sort key for '0000:19:00.0' (hex fields); unparsable ones go last, by text."""
    parts = re.split(r"[:.]", bus)
    try:
        return (0, tuple(int(p, 16) for p in parts), bus)
    except ValueError:
        return (1, (), bus)


def _collapse(models):
    out = []
    i = 0
    while i < len(models):
        j = i
        while j < len(models) and models[j] == models[i]:
            j += 1
        out.append(models[i] if j - i == 1 else f"{models[i]} x{j - i}")
        i = j
    return ", ".join(out)


def _gpu(tags, files, proc_root):
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        tags["sidetrack.gpu.visible"] = visible
    root = os.path.join(proc_root, "driver", "nvidia")
    if not os.path.isdir(root):
        return
    version_file = os.path.join(root, "version")
    if os.path.exists(version_file):
        with open(version_file, "r", encoding="utf-8", errors="replace") as f:
            driver = _driver_version(f.readline())
        if driver:
            tags["sidetrack.gpu.driver"] = driver
    gpus = []
    for info in glob.glob(os.path.join(glob.escape(root), "gpus", "*", "information")):
        fields = _read_info(info)
        bus = fields.get("Bus Location") or os.path.basename(os.path.dirname(info))
        gpus.append((_bus_key(bus), fields.get("Model") or "unknown"))
    gpus.sort()
    tags["sidetrack.gpu.count"] = str(len(gpus))
    if gpus:
        tags["sidetrack.gpu.models"] = _collapse([model for _, model in gpus])
