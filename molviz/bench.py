"""``molviz bench NAME``: performance benchmarks, one per stage.

Targets live here and in the stage benchmarks, never in timed unit tests.
Each benchmark prints a table and can write JSON (``--json PATH``).
"""
from __future__ import annotations

import argparse
import importlib

# name -> "module:function"; each function takes the parsed args and returns 0 on success.
BENCHMARKS = {
    "fields": "molviz.fields._bench:run",
    "engine": "molviz.engine._bench:run",
    "app": "molviz.app._bench:run",
    "map": "molviz.app._map_bench:run",
    "library": "molviz.view._library_bench:run",
    "search": "molviz.view._bench:run",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a performance benchmark", description=__doc__)
    p.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (smoke run)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--bundle", action="append", default=None, metavar="DIR",
                   help="model bundle(s) to benchmark (engine); default: the bundled models")
    p.add_argument("--view-mode", choices=("remote", "local"), default=None,
                   help="app: time the interactions rendered on the server or in the browser (default: the app's choice)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    module, func = BENCHMARKS[args.name].split(":")
    return int(getattr(importlib.import_module(module), func)(args) or 0)
