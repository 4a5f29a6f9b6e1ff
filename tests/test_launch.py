"""launch.py's install stamp: a second run skips installation when nothing changed."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def launch():
    spec = importlib.util.spec_from_file_location("molviz_launch", ROOT / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copy(ROOT / "launch.py", tmp_path / "launch.py")
    return tmp_path


def test_fresh_install_needed_then_skipped(launch, project):
    stamp = project / ".stamp"
    assert launch.install_needed(stamp, project, python_version="3.11.7")
    launch.write_stamp(stamp, project, python_version="3.11.7")
    assert not launch.install_needed(stamp, project, python_version="3.11.7")


@pytest.mark.parametrize("change", ["pyproject", "launch", "python"])
def test_any_input_change_forces_reinstall(launch, project, change):
    stamp = project / ".stamp"
    launch.write_stamp(stamp, project, python_version="3.11.7")
    version = "3.11.7"
    if change == "pyproject":
        with open(project / "pyproject.toml", "a") as f:
            f.write("\n# a new pin\n")
    elif change == "launch":
        with open(project / "launch.py", "a") as f:
            f.write("\n# changed\n")
    else:
        version = "3.12.1"
    assert launch.install_needed(stamp, project, python_version=version)


def test_extras(launch, project):
    stamp = project / ".stamp"
    launch.write_stamp(stamp, project, python_version="3.11.7")
    # a plain install does not satisfy --test ...
    assert launch.install_needed(stamp, project, extras=("test",), python_version="3.11.7")
    launch.write_stamp(stamp, project, extras=("test",), python_version="3.11.7")
    # ... but a test install satisfies both
    assert not launch.install_needed(stamp, project, extras=("test",), python_version="3.11.7")
    assert not launch.install_needed(stamp, project, python_version="3.11.7")


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]", '{"digest": 3}'])
def test_corrupt_stamp_means_reinstall(launch, project, content):
    stamp = project / ".stamp"
    stamp.write_text(content)
    assert launch.install_needed(stamp, project, python_version="3.11.7")


def test_digest_is_stable_and_sensitive(launch, project):
    a = launch.install_digest(project, python_version="3.11.7")
    assert a == launch.install_digest(project, python_version="3.11.7")
    assert a != launch.install_digest(project, extras=("test",), python_version="3.11.7")


def test_pytest_args(launch):
    assert launch.pytest_args([]) == ["-m", "not gpu"]
    assert launch.pytest_args(["-x", "tests/test_chem.py"]) == ["-m", "not gpu", "-x", "tests/test_chem.py"]
    assert launch.pytest_args(["-m", "slow"]) == ["-m", "slow"]
    assert launch.pytest_args(["-mslow", "-q"]) == ["-mslow", "-q"]
