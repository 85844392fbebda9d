"""Training checkpoints in safetensors (no pickle): module and optimizer states plus a JSON header."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .backbones import DEFAULT_BACKBONE
from .errors import SeptoolError
from .store import write_safetensors

CHECKPOINT_FILE = "checkpoint.safetensors"
HEADER_FIELDS = ("sources", "config", "epoch", "bad_epochs", "encoder_steps", "patches_seen", "seconds", "history",
                 "best_loss", "best_epoch")  # fmt: skip


def _flatten_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict, groups: dict) -> None:
    state = optimizer.state_dict()
    for index, values in state["state"].items():
        for key, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{prefix}.{index}.{key}"] = tensor.detach().cpu().contiguous()
    groups[prefix] = state["param_groups"]


def save_checkpoint(
    path: Path,
    modules: dict[str, torch.nn.Module | dict[str, torch.Tensor]],
    optimizers: Mapping[str, torch.optim.Optimizer],
    header: dict,
) -> None:
    """Write modules (or state dicts), optimizers and ``header`` atomically to ``path``."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        state = module.state_dict() if isinstance(module, torch.nn.Module) else module
        for key, value in state.items():
            tensors[f"module.{name}.{key}"] = value.detach().cpu().contiguous().clone()
    groups: dict[str, list] = {}
    for name, optimizer in optimizers.items():
        _flatten_optimizer(f"optim.{name}", optimizer, tensors, groups)
    write_safetensors(path, tensors, {"header": json.dumps(header), "param_groups": json.dumps(groups)})


class Checkpoint:
    """A loaded checkpoint: ``header``, ``module_state(name)``, ``load_optimizer(name, optimizer)``."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        self.path = path
        try:
            self.tensors = load_file(str(path))
            with safe_open(str(path), "pt") as handle:
                metadata = handle.metadata()
            self.header = json.loads(metadata["header"])
            self.groups = json.loads(metadata["param_groups"])
        except (OSError, KeyError, TypeError, ValueError, SafetensorError) as err:
            raise SeptoolError(f"{path}: not a usable septool checkpoint ({err})") from None
        missing = [k for k in HEADER_FIELDS if not isinstance(self.header, dict) or k not in self.header]
        if missing:
            raise SeptoolError(f"{path}: not a usable septool checkpoint (its header has no {missing[0]!r})")

    def module_state(self, name: str) -> dict[str, torch.Tensor]:
        prefix = f"module.{name}."
        return {k[len(prefix) :]: v for k, v in self.tensors.items() if k.startswith(prefix)}

    def load_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> None:
        prefix = f"optim.{name}."
        state: dict[int, dict] = {}
        for key, value in self.tensors.items():
            if key.startswith(prefix):
                index, field = key[len(prefix) :].split(".", 1)
                state.setdefault(int(index), {})[field] = value
        optimizer.load_state_dict({"state": state, "param_groups": self.groups[f"optim.{name}"]})

    def check_fits(self, procedure: str, sources: list[str], backbone: str, size: str | None) -> None:
        """Refuse, naming both, a checkpoint of another procedure, sources, backbone or size."""
        head, path = self.header, self.path
        if head["sources"] != sources or head["config"]["procedure"] != procedure:
            raise SeptoolError(
                f"{path}: checkpoint was trained with {head['config']['procedure']} on {', '.join(head['sources'])}; "
                f"this run asks for {procedure} on {', '.join(sources)}"
            )
        trained = (head["config"].get("backbone", DEFAULT_BACKBONE), head["config"].get("size"))
        if trained != (backbone, size):
            raise SeptoolError(
                f"{path}: checkpoint is of backbone {trained[0]!r}, size {trained[1]!r}; this run asks for "
                f"{backbone!r}, size {size!r}"
            )

    def restore(
        self,
        networks: Mapping[str, torch.nn.Module],
        encoder_opts: Mapping[str, torch.optim.Optimizer],
        decoder_opts: Mapping[str, torch.optim.Optimizer],
    ) -> None:
        """Load the networks' weights and the optimizers' states saved under their keys."""
        try:
            for key, net in networks.items():
                net.load_state_dict(self.module_state(key))
        except RuntimeError as err:
            reason = str(err).strip().splitlines()[-1].strip()
            raise SeptoolError(f"{self.path}: checkpoint does not fit this run's networks ({reason})") from None
        for key, opt in encoder_opts.items():
            self.load_optimizer(f"encoder.{key}", opt)
        for key, opt in decoder_opts.items():
            self.load_optimizer(f"decoder.{key}", opt)
