"""ruff, as configured in pyproject.toml, finds nothing (CI runs it through this test)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    pytest.importorskip("ruff", reason="ruff comes with the test extra (python launch.py --test)")
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "molviz", "tests", "launch.py"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
