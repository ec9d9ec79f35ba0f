#!/usr/bin/env python3
"""Runs the copy-paste examples of README.md and docs/*.md, so that they stay true.

A fenced block preceded by `<!-- doc-test -->` is a shell block: it runs with bash -e (not
pipefail: `| head` must not fail a block, as it does not fail a reader). One preceded by
`<!-- doc-test: c -->` is a C program: it is compiled against libsidetrack into ./train. One
preceded by `<!-- doc-test: python -->` runs with the interpreter the package was built for
($SIDETRACK_PYTHON, else /usr/bin/python3) and the build tree's package. The blocks of one
file run in order in one scratch directory,
with the build tree on PATH and a sidetrackd of its own on a scratch store and ring
directory (started before the first block, stopped with SIGTERM after the last: it must
exit 0). Usage: run_doc_blocks.py SOURCE_DIR BUILD_DIR
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MARK = re.compile(r"^<!-- doc-test(?::\s*(\w+))? -->\s*$")


def blocks(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i])
        if m and i + 1 < len(lines) and lines[i + 1].startswith("```"):
            kind = m.group(1) or "sh"
            j = i + 2
            body = []
            while j < len(lines) and not lines[j].startswith("```"):
                body.append(lines[j])
                j += 1
            yield kind, i + 1, "\n".join(body) + "\n"
            i = j
        i += 1


def run_file(src, build, md):
    found = list(blocks(md))
    if not found:
        return 0
    scratch = tempfile.mkdtemp(prefix="st-doc-")
    env = dict(os.environ)
    env["PATH"] = ":".join(os.path.join(build, d) for d in
                           ("agent", "server", "client/cli", "examples", "bench")) + ":" + env["PATH"]
    env["SIDETRACK_DATA"] = os.path.join(scratch, "data")
    env["SIDETRACK_RING_DIR"] = os.path.join(scratch, "ring")
    env["PYTHONPATH"] = os.path.join(build, "python") + (
        ":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("SIDETRACK_RUN_ID", None)
    agent = subprocess.Popen([os.path.join(build, "agent", "sidetrackd")], env=env, cwd=scratch)
    lock = os.path.join(env["SIDETRACK_DATA"], "agent.lock")
    for _ in range(1000):  # up once its pid is in the lock file
        if os.path.exists(lock) and open(lock).read().strip() == str(agent.pid):
            break
        time.sleep(0.01)
    failed = 0
    try:
        for kind, line, body in found:
            where = "%s:%d" % (os.path.relpath(md, src), line)
            if kind == "c":
                cfile = os.path.join(scratch, "train.c")
                open(cfile, "w").write(body)
                cmd = [os.environ.get("CC", "cc"), "-std=c11", "-Wall", "-Werror", "-o",
                       os.path.join(scratch, "train"), cfile,
                       "-I" + os.path.join(src, "client", "include"),
                       "-L" + os.path.join(build, "client"), "-lsidetrack", "-lm",
                       "-Wl,-rpath," + os.path.join(build, "client")]
            elif kind == "python":
                pyfile = os.path.join(scratch, "example.py")
                open(pyfile, "w").write(body)
                cmd = [os.environ.get("SIDETRACK_PYTHON", "/usr/bin/python3"), pyfile]
            else:
                cmd = ["bash", "-e", "-c", body]
            p = subprocess.run(cmd, env=env, cwd=scratch, capture_output=True, text=True,
                               timeout=120)
            status = "ok" if p.returncode == 0 else "FAILED (exit %d)" % p.returncode
            print("# %s %s block: %s" % (where, kind, status))
            if p.returncode != 0:
                failed += 1
                sys.stdout.write(p.stdout[-3000:])
                sys.stdout.write(p.stderr[-3000:])
    finally:
        agent.send_signal(signal.SIGTERM)
        rc = agent.wait(timeout=60)
        if rc != 0:
            print("# %s: sidetrackd exited %d after the blocks" % (md, rc))
            failed += 1
        shutil.rmtree(scratch, ignore_errors=True)
    return failed


def main():
    src, build = sys.argv[1], sys.argv[2]
    files = [os.path.join(src, "README.md")] + sorted(glob.glob(os.path.join(src, "docs", "*.md")))
    failed = sum(run_file(src, build, f) for f in files)
    total = sum(len(list(blocks(f))) for f in files)
    print("# %d documented examples run, %d failed" % (total, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
