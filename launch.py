#!/usr/bin/env python3
"""One-command set-up and start for molviz (standard library only, Python >= 3.11).

Usage::

    python launch.py                  # set up .venv if needed, then `molviz serve`
    python launch.py --port 8081      # arguments after the command go to `molviz serve`
    python launch.py --test           # set up with the test extra, then run pytest -m "not gpu"
    python launch.py --test -x -k chem   # extra arguments go to pytest

What it does:

1. creates ``.venv`` next to this file when it is missing;
2. upgrades pip inside it and installs molviz editable (``pip install -e .``,
   plus the ``test`` extra for ``--test``) with the versions pinned in
   ``pyproject.toml``;
3. writes ``.venv/.molviz-install-stamp`` (a hash of pyproject.toml, this file,
   the Python version and the extras), so a second run with nothing changed
   skips step 2;
4. starts the main job: ``molviz serve`` (or ``python -m pytest`` for ``--test``).

torch: on a machine without an NVIDIA GPU, pip installs torch 2.13.0's CPU
wheel (on the development machine it lies on local disk; pip is pointed at it
by /etc/xdg/pip). On a machine where ``nvidia-smi`` works, pip's default index
(PyPI) serves the CUDA build of the same version; nothing needs changing here.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP_NAME = ".molviz-install-stamp"
MIN_PYTHON = (3, 11)


def say(message: str) -> None:
    """Print one progress line, flushed so it interleaves correctly with pip's output."""
    print(f"[launch] {message}", flush=True)


def venv_python(venv_dir: Path = VENV) -> Path:
    """Path of the interpreter inside ``venv_dir`` (POSIX or Windows layout)."""
    if os.name == "nt":
        return venv_dir / "Scripts" / "python.exe"
    return venv_dir / "bin" / "python"


def install_digest(root: Path = ROOT, *, extras: tuple[str, ...] = (),
                   python_version: str | None = None) -> str:
    """Hash of everything that decides what gets installed.

    pyproject.toml (dependencies and pins), launch.py (the install procedure),
    the Python version and the requested extras.
    """
    h = hashlib.sha256()
    for name in ("pyproject.toml", "launch.py"):
        path = root / name
        h.update(name.encode())
        h.update(path.read_bytes() if path.exists() else b"<missing>")
    version = python_version or ".".join(map(str, sys.version_info[:3]))
    h.update(f"python={version}".encode())
    h.update(("extras=" + ",".join(sorted(extras))).encode())
    return h.hexdigest()


def read_stamp(stamp_path: Path) -> dict:
    """The stamp's content, or an empty dict when it is missing or unreadable."""
    try:
        data = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def install_needed(stamp_path: Path, root: Path = ROOT, *, extras: tuple[str, ...] = (),
                   python_version: str | None = None) -> bool:
    """True when the install stamp does not match the current inputs.

    A stamp written with more extras also satisfies a request for fewer
    (``--test`` installs ``test``; a later plain run does not reinstall).
    """
    stamp = read_stamp(stamp_path)
    installed = tuple(stamp.get("extras", ()))
    if not set(extras) <= set(installed):
        return True
    digest = install_digest(root, extras=installed, python_version=python_version)
    return stamp.get("digest") != digest


def write_stamp(stamp_path: Path, root: Path = ROOT, *, extras: tuple[str, ...] = (),
                python_version: str | None = None) -> None:
    """Record a successful install (atomically: temp file, then rename)."""
    data = {
        "digest": install_digest(root, extras=extras, python_version=python_version),
        "extras": sorted(extras),
        "python": python_version or ".".join(map(str, sys.version_info[:3])),
    }
    tmp = stamp_path.with_name(stamp_path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, stamp_path)


def run(cmd: list[str | os.PathLike], **kwargs) -> int:
    """Run a command in the repository root and return its exit status."""
    say("$ " + " ".join(str(c) for c in cmd))
    return subprocess.call([str(c) for c in cmd], cwd=ROOT, **kwargs)


def has_nvidia_gpu() -> bool:
    """Whether ``nvidia-smi`` exists and runs successfully."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return False
    try:
        return subprocess.run([exe], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def ensure_venv(*, extras: tuple[str, ...]) -> Path:
    """Create ``.venv`` if needed and install molviz into it unless the stamp says it is current."""
    python = venv_python()
    if not python.exists():
        say(f"creating virtual environment in {VENV}")
        try:
            venv.EnvBuilder(with_pip=True, clear=False, upgrade_deps=False).create(VENV)
        except (OSError, subprocess.CalledProcessError) as exc:
            shutil.rmtree(VENV, ignore_errors=True)
            raise SystemExit(f"[launch] error: could not create {VENV} ({exc}); on Debian/Ubuntu "
                             "install the python3-venv package first") from None
    stamp_path = VENV / STAMP_NAME
    version = ".".join(map(str, sys.version_info[:3]))
    if not install_needed(stamp_path, extras=extras, python_version=version):
        say("molviz is installed and up to date (delete .venv/.molviz-install-stamp to force a reinstall)")
        return python
    # Keep the extras already installed, so --test then a plain run don't flip-flop.
    wanted = tuple(sorted(set(extras) | set(read_stamp(stamp_path).get("extras", ()))))
    if has_nvidia_gpu():
        say("NVIDIA GPU found: pip's default index provides torch's CUDA build")
    else:
        say("no NVIDIA GPU found: installing torch's CPU build")
    say("upgrading pip inside the virtual environment")
    if run([python, "-m", "pip", "install", "--upgrade", "pip"]) != 0:
        raise SystemExit("[launch] error: could not upgrade pip in .venv (see pip's output above)")
    target = "." + (f"[{','.join(wanted)}]" if wanted else "")
    say(f"installing molviz and its pinned dependencies ({target}); the first time takes a few minutes")
    if run([python, "-m", "pip", "install", "-e", target]) != 0:
        raise SystemExit("[launch] error: pip could not install molviz (see pip's output above); "
                         "fix the cause and run launch.py again")
    write_stamp(stamp_path, extras=wanted, python_version=version)
    say("installation complete")
    return python


def pytest_args(argv: list[str]) -> list[str]:
    """pytest's arguments: the caller's, with ``-m "not gpu"`` unless they chose markers."""
    if any(a.startswith("-m") for a in argv):
        return list(argv)
    return ["-m", "not gpu", *argv]


def app_available(python: Path) -> bool:
    """Whether the installed molviz has the app's command line (``molviz.app._cli``)."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('molviz.app._cli') is None)"
    return subprocess.call([str(python), "-c", probe], cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if sys.version_info < MIN_PYTHON:
        print(f"[launch] error: molviz needs Python >= {'.'.join(map(str, MIN_PYTHON))}; "
              f"this is {sys.version.split()[0]}. Run launch.py with a newer python.", file=sys.stderr)
        return 2
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    testing = argv[:1] == ["--test"]
    if testing:
        argv = argv[1:]
    python = ensure_venv(extras=("test",) if testing else ())
    try:
        if testing:
            say("running the test suite")
            return run([python, "-m", "pytest", *pytest_args(argv)])
        if app_available(python):
            say("starting the app: molviz serve " + " ".join(argv))
            return run([python, "-m", "molviz", "serve", *argv])
        say("the app (molviz.app) is not installed yet; showing the command line instead")
        return run([python, "-m", "molviz", "--help"])
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
