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
        layer.recalibrating = True
        layer.train(True)
    seen = 0
    for images in batches:
        (forward or model)(images)
        seen += images.shape[0]
    for layer, (momentum, _) in zip(layers, saved):
        layer.momentum = momentum
        del layer.recalibrating
        layer.train(False)
    return seen


def _keep_eval(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
    """Forward pre-hook that puts a BatchNorm layer back into eval mode (unless it is being recalibrated)."""
    if not getattr(module, "recalibrating", False):
        module.train(False)


def freeze_batchnorm(model: nn.Module) -> int:
    """Freeze every BatchNorm layer of `model` (running statistics and affine parameters); returns their count.

    Affine parameters get `requires_grad=False`. Each layer gets a forward pre-hook that switches it to eval
    mode right before it runs, so the freeze survives any later `model.train()` (e.g. Lightning's after
    validation) without the LightningModule having to re-apply it; `layer.training` may read True in between.
    """
    layers = batchnorm_layers(model)
    for layer in layers:
        layer.requires_grad_(False)
        layer.train(False)
        layer.register_forward_pre_hook(_keep_eval)
    return len(layers)
