"""A SMILES's 3D conformer in a child process, so that a long embedding can be cancelled.

RDKit's embedding of a molecule of hundreds of atoms runs for minutes in one C++
call that no thread can interrupt; a child process can be killed. The child
imports only :mod:`molviz.chem` (RDKit, no torch) and hands the structure back as
plain arrays (:meth:`molviz.chem.Structure.to_arrays`, read without pickle).

Run as ``python -m molviz.view._conformer OUT.npz`` with ``{"smiles", "hydrogens",
"seed"}`` as JSON on stdin.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from molviz.errors import InputError

CHILD_FROM_HEAVY_ATOMS = 40       # smaller molecules embed in well under a second: in-process, no child


def conformer_in_child(smiles: str, *, hydrogens: str, seed: int,
                       should_stop: Callable[[], bool] | None = None, poll_s: float = 0.1):
    """:func:`molviz.engine.as_structure` of ``smiles`` computed in a child process.

    Raises :class:`InterruptedError` (the child killed) as soon as ``should_stop()`` turns true,
    and :class:`~molviz.errors.InputError` with the child's message when the embedding failed.
    """
    import numpy as np

    from molviz.chem import Structure

    with tempfile.TemporaryDirectory(prefix="molviz-conformer-") as tmp:
        out = Path(tmp) / "structure.npz"
        proc = subprocess.Popen([sys.executable, "-m", "molviz.view._conformer", str(out)],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"smiles": smiles, "hydrogens": hydrogens, "seed": int(seed)}).encode())
        proc.stdin.close()
        try:
            while proc.poll() is None:
                if should_stop is not None and should_stop():
                    raise InterruptedError("encoding cancelled")
                time.sleep(poll_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.returncode != 0 or not out.is_file():
            last = err.strip().splitlines()[-1] if err.strip() else f"exit status {proc.returncode}"
            raise InputError(f"could not build a 3D conformer of {smiles[:60]!r}: {last}")
        with np.load(out, allow_pickle=False) as z:
            return Structure.from_arrays({k: z[k] for k in z.files})


def _main(out: str) -> int:
    import numpy as np

    from molviz.chem import load  # what molviz.engine.as_structure does with a SMILES, without torch

    req = json.loads(sys.stdin.read())
    s = load(str(req["smiles"]), hydrogens=str(req["hydrogens"]), seed=int(req["seed"]))
    np.savez(out, **s.to_arrays())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
