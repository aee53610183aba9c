"""Where tensors live: resolving ``auto | cpu | cuda | cuda:N`` and what follows from it
(autocast's device type, the random number generators a run must save to resume exactly)."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from .errors import BmesTaggerError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` is CUDA when available, else the CPU; ``cuda`` / ``cuda:N`` must exist.

    Raises:
        BmesTaggerError: a CUDA device that this machine does not have, or an unknown name.
    """
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise BmesTaggerError(f"device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BmesTaggerError(f"device {name!r}: CUDA is not available on this machine "
                                  "(use --device cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BmesTaggerError(f"device {name!r}: this machine has "
                                  f"{torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise BmesTaggerError(f"device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on ``device``'s type when ``bf16``, else nothing."""
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def rng_state() -> dict[str, Any]:
    """torch's CPU generator state and, where CUDA is in use, every CUDA generator's."""
    state: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
    state["cuda_rng"] = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only where CUDA is available)."""
    torch.set_rng_state(state["torch_rng"])
    cuda = state.get("cuda_rng") or []
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])
