"""Comparisons of networks."""

from __future__ import annotations

import torch


def parameter_distance(a: torch.nn.Module, b: torch.nn.Module) -> torch.Tensor:
    """L2 distance between the parameters of two networks of the same architecture."""
    total = sum(((p - q) ** 2).sum() for p, q in zip(a.parameters(), b.parameters()))
    return torch.as_tensor(total).sqrt()
