"""The ``molviz`` command line.

Each stage registers its own sub-commands from a private ``_cli`` module
(``register(subparsers)``), so this file only composes them. Registration must
stay cheap: heavy imports (torch, rdkit, trame) happen inside the handlers.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from molviz.errors import MolvizError

# Modules that add sub-commands, in the order ``molviz --help`` lists them.
COMMAND_MODULES = (
    "molviz.fields._cli",     # featurize
    "molviz.training._cli",   # train, eval, decode, fit
    "molviz.models._cli",     # results
    "molviz.engine._cli",     # encode, neighbours
    "molviz.app._cli",        # serve, render, animate
    "molviz.app._map_cli",    # map
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
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv)


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and call the chosen command's handler; a MolvizError is a one-line message and exit 2."""
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except MolvizError as exc:
        print(f"molviz {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"molviz {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
