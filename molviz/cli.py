"""The ``molviz`` command line.

Each stage registers its own sub-commands from a private ``_cli`` module
(``register(subparsers)``), so this file only composes them. Registration must
stay cheap: heavy imports (torch, rdkit, trame) happen inside the handlers.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from molviz._cmd import add_common_options, run

# Modules that add sub-commands, in the order ``molviz --help`` lists them.
COMMAND_MODULES = (
    "molviz.fields._cli",     # featurize
    "molviz.training._cli",   # train, eval
    "molviz.models._cli",     # results
    "molviz.engine._cli",     # decode, fit, encode, neighbours
    "molviz.app._cli",        # serve
    "molviz.view._cli",       # render, animate
    "molviz.view._map_cli",   # map
    "molviz.bench",           # bench fields|engine|...
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molviz",
        description="Molecular neural fields: featurize molecules, train modulated SIRENs, "
        "decode at any resolution and explore them in the browser.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for command in sub.choices.values():
        add_common_options(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
