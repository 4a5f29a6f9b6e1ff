"""Every docstring example in molviz runs and prints what it says (examples that need a file or a
network are marked ``# doctest: +SKIP`` where they stand)."""
from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest
import torch

PACKAGE = Path(__file__).resolve().parents[1] / "molviz"
MODULES = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for path in PACKAGE.rglob("*.py") if ">>> " in path.read_text()
)


def test_the_examples_are_found():
    assert {"molviz.chem", "molviz.models._siren", "molviz.engine._engine", "molviz.mesh._isosurface"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    finally:
        torch.set_num_threads(threads)
    assert result.failed == 0
