"""Checkpoints: safetensors for every tensor, JSON for everything else. No pickle.

``DIR/checkpoint/state.safetensors`` holds ``net.*`` (the network, encoder or
latent table), ``optim.<i>.<key>`` (Adam moments and step counts) and
``rng.*`` (the sampler's and torch's random states as uint8 tensors);
``DIR/checkpoint/state.json`` holds the step, the elapsed training seconds, the
optimiser's param-group settings and the whole training config. Both are
written atomically and tagged with the step so a torn pair is detected.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from molviz._io import atomic_path, atomic_write_text
from molviz.errors import BundleError

STATE = "state.safetensors"
META = "state.json"


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    with atomic_path(path, mkdir=False) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, val in state.items():
            t = val if isinstance(val, torch.Tensor) else torch.tensor(val)
            tensors[f"optim.{idx}.{key}"] = t.detach().cpu().contiguous()
    return tensors, sd["param_groups"]


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                           param_groups: list[dict]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = t
    opt.load_state_dict({"state": state, "param_groups": param_groups})


def save_checkpoint(directory: Path, *, step: int, module: torch.nn.Module, opt: torch.optim.Optimizer,
                    rng: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Write the training state after ``step`` steps into ``directory`` (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    opt_tensors, groups = optimizer_to_tensors(opt)
    tensors.update(opt_tensors)
    tensors.update({f"rng.{k}": v.detach().cpu().contiguous() for k, v in rng.items()})
    _atomic_save_tensors(tensors, directory / STATE, {"step": str(step)})
    atomic_write_text(directory / META, json.dumps({"step": step, "param_groups": groups, **info}, indent=1))


def load_checkpoint(directory: Path, *, module: torch.nn.Module, opt: torch.optim.Optimizer,
                    device: torch.device | str = "cpu") -> tuple[int, dict[str, torch.Tensor], dict[str, Any]]:
    """Restore module and optimiser from ``directory``; return (step, rng tensors, json info)."""
    meta_path, state_path = directory / META, directory / STATE
    if not meta_path.is_file() or not state_path.is_file():
        raise BundleError(f"no checkpoint in {directory} (needs {META} and {STATE}); "
                          "drop --resume to start a new run")
    info = json.loads(meta_path.read_text())
    tensors = load_file(str(state_path), device="cpu")
    from safetensors import safe_open
    with safe_open(str(state_path), framework="pt") as f:
        tag = (f.metadata() or {}).get("step")
    if tag != str(info["step"]):
        raise BundleError(f"checkpoint in {directory} is torn ({STATE} is step {tag}, {META} step "
                          f"{info['step']}); delete the folder and train again")
    module.load_state_dict({k[4:]: v.to(device) for k, v in tensors.items() if k.startswith("net.")})
    optimizer_from_tensors(opt, tensors, info["param_groups"])
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    return int(info["step"]), rng, info
