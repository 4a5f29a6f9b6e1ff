"""What every command-line entry shares: running a parsed command, recording it, locking a folder.

Below every stage, so a stage's ``_cli`` module (and its stand-alone ``python -m`` entry on a
bare GPU box) needs nothing above it.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from molviz.errors import MolvizError


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every command takes (the limits on what it reads)."""
    parser.add_argument("--max-file-mb", type=float, default=None, metavar="MB",
                        help="largest input file (or gunzipped text) read, in MB (default: $MOLVIZ_MAX_FILE_MB "
                             "or 512)")


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and call the chosen command's handler.

    A MolvizError is a one-line message and exit 2; running out of memory says what to lower; any
    other exception is a one-line report of a molviz bug and exit 3 (``MOLVIZ_DEBUG=1`` shows the
    traceback). No command ends in a bare traceback.
    """
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    command = getattr(args, "command", None) or parser.prog
    try:
        if getattr(args, "max_file_mb", None) is not None:
            from molviz._io import max_file_bytes
            max_file_bytes(args.max_file_mb)                 # refuse a bad value before anything runs
            os.environ["MOLVIZ_MAX_FILE_MB"] = repr(float(args.max_file_mb))
        return int(args.func(args) or 0)
    except MolvizError as exc:
        print(f"molviz {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"molviz {command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:                  # `molviz results | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except MemoryError:
        print(f"molviz {command}: error: out of memory; lower --resolution, the number of items or the "
              "input size", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001  (the last line of defence: a report, never a traceback)
        if os.environ.get("MOLVIZ_DEBUG"):
            raise
        text = str(exc).splitlines()[0][:300] if str(exc) else ""
        print(f"molviz {command}: internal error ({type(exc).__name__}: {text}); this is a molviz bug: "
              "please report the command (MOLVIZ_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 3


def command_line(args: argparse.Namespace, positional: tuple[str, ...] = ("preset", "bundle", "input")) -> str:
    """The command as parsed, for provenance (works for ``molviz.cli.main(argv)`` calls too, unlike sys.argv).

    Examples
    --------
    >>> command_line(argparse.Namespace(command="eval", bundle="b", json=True, device="auto", items="all"))
    'molviz eval b --json'
    """
    parts = ["molviz", args.command]
    present = [a for a in positional if hasattr(args, a)]
    parts += [str(getattr(args, a)) for a in present]
    for key, val in vars(args).items():
        if key in ("func", "command", *present) or val is None or val is False:
            continue
        if key == "device" and val == "auto" or key == "items" and val == "all":
            continue
        flag = "--" + key.replace("_", "-")
        if val is True:
            parts.append(flag)
        elif isinstance(val, (list, tuple)):
            parts += [flag, *map(str, val)]
        else:
            parts += [flag, str(val)]
    return " ".join(shlex.quote(p) for p in parts)


@contextlib.contextmanager
def locked_folder(folder: str | os.PathLike) -> Iterator[None]:
    """An exclusive advisory lock on a folder (flock on its descriptor; no lock file left behind)."""
    import fcntl

    fd = os.open(Path(folder), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
