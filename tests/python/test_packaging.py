"""`pip install .` into a venv, offline, with Debian's meson-python: the README's way in."""
import glob
import os
import subprocess
import sys

import pytest

from conftest import SOURCE


def test_pip_install_into_a_venv(node, tmp_path):
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("packaging is checked in the plain build (pip would run the compiler "
                    "under the preloaded sanitizer runtime here)")
    try:
        import mesonpy  # noqa: F401
    except ImportError:
        pytest.skip("meson-python is not installed (Debian: python3-mesonpy)")
    venv = tmp_path / "venv"
    r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot make a venv (Debian: python3-venv): {r.stderr.strip()}")
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "--no-build-isolation",
                        "--no-index", "--no-cache-dir", SOURCE],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import sidetrack\n"
            "print(sidetrack.__file__)\n"
            "with sidetrack.start_run(run_name='from-venv', capture_context=False) as r:\n"
            "    sidetrack.log_metric('venv_metric', 1.5, step=2)\n"
            "print(r.run_id)\n")
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    where, run_id = r.stdout.split()
    assert where.startswith(str(venv)), f"imported {where}, not the venv's copy"
    assert node.wait_metric(run_id, "venv_metric", 1) == [
        {"step": 2, "timestamp": node.metric(run_id, "venv_metric")[0]["timestamp"],
         "value": 1.5}]
    # The wheel is self-contained: the extension needs no shared library of ours.
    ext = glob.glob(str(venv / "lib" / "python3*" / "site-packages" / "sidetrack" /
                        "_sidetrack*.so"))
    assert len(ext) == 1
    ldd = subprocess.run(["ldd", ext[0]], capture_output=True, text=True).stdout
    assert "libsidetrack" not in ldd and "not found" not in ldd
    # Type information ships with it.
    assert (venv.glob("lib/python3*/site-packages/sidetrack/py.typed")).__next__()
