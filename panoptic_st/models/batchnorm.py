"""BatchNorm statistics re-estimation (AdaBN): a cheap domain-adaptation reference point."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """All BatchNorm layers of a model."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor],
                          forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> int:
    """Replace every BN layer's running mean/var by the exact average over `batches`; returns images seen.

    Only BN layers switch to train mode (cumulative averaging, momentum None); weights are untouched and the
    model is left in eval mode.
    """
    layers = batchnorm_layers(model)
    saved = [(layer.momentum, layer.training) for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None
        layer.train(True)
    seen = 0
    for images in batches:
        (forward or model)(images)
        seen += images.shape[0]
    for layer, (momentum, _) in zip(layers, saved):
        layer.momentum = momentum
        layer.train(False)
    return seen
