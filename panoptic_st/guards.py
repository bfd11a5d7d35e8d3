"""Divergence guard: a non-finite loss, gradient or weight stops the run (or skips the step) before it reaches the
weights, the momentum teacher or a checkpoint; validation reports a network with non-finite outputs as such.

Modules expose the loss terms of their current step, by their logged names, in `step_losses` (a dict of tensors).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from panoptic_st.errors import TrainingDiverged

SKIPPED_METRIC = "train/skipped_steps"
NONFINITE_METRIC = "val/nonfinite"


def all_finite(tensors: Iterable[Tensor]) -> bool:
    """Whether every floating-point tensor holds only finite values (one device synchronisation).

    A sum is finite only if every summand is (an infinity makes it infinite, a NaN or +inf with -inf makes it NaN),
    so one sum per tensor decides, without the boolean copy of every tensor that `isfinite().all()` makes.
    Half-precision tensors are summed in float32; finite values whose float32 sum overflows (|sum| > 3.4e38) count
    as not finite.
    """
    sums = [t.sum(dtype=torch.promote_types(t.dtype, torch.float32)) for t in tensors if t.is_floating_point()]
    return bool(torch.stack(sums).isfinite().all()) if sums else True


def nonfinite_names(named: Iterable[tuple[str, Tensor]]) -> list[str]:
    """Names of the floating-point tensors with a non-finite value, in the given order."""
    named = [(name, t) for name, t in named if isinstance(t, Tensor) and t.is_floating_point()]
    if all_finite(t for _, t in named):
        return []
    return [name for name, t in named if not bool(t.isfinite().all())]


def named_tensors(tree: Any, prefix: str = "") -> list[tuple[str, Tensor]]:
    """Every tensor in nested dicts, lists and tuples, with its dotted path."""
    if isinstance(tree, Tensor):
        return [(prefix, tree)]
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    return [pair for key, value in items for pair in named_tensors(value, f"{prefix}.{key}" if prefix else str(key))]


def raise_if_nonfinite(named: Iterable[tuple[str, Tensor]], message: str) -> None:
    """Raise `TrainingDiverged` with `message`, its `{name}` the first non-finite tensor of `named` (and a count)."""
    names = nonfinite_names(named)
    if names:
        more = f" (and {len(names) - 1} more)" if len(names) > 1 else ""
        raise TrainingDiverged(message.format(name=f"{names[0]}{more}"))


class DivergenceGuard(L.Callback):
    """Checks the loss terms of each step, the gradients (after DDP's all-reduce; the decision is shared by every
    process) and, after the step, the weights. `action` (`trainer.on_nonfinite`): `stop` raises `TrainingDiverged`
    before the optimizer step; `skip` drops the step (its gradients, and what its forwards changed in the buffers)
    and counts it in `train/skipped_steps`. Non-finite weights always stop the run."""

    def __init__(self, action: str = "stop") -> None:
        self.action = action
        self.skipped = 0
        self.pending: list[str] = []
        self.buffers: dict[str, Tensor] = {}

    def state_dict(self) -> dict[str, int]:
        return {"skipped": self.skipped}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.skipped = int(state_dict["skipped"])

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self.action == "skip" and batch_idx % trainer.accumulate_grad_batches == 0:
            self.buffers = {name: b.detach().clone() for name, b in pl_module.named_buffers()}

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        terms = {**getattr(pl_module, "step_losses", {}), "train/loss": loss}
        self.pending.extend(n for n in nonfinite_names(terms.items()) if n not in self.pending)

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        found, self.pending = self.pending, []
        if not self.gradients_finite(trainer, optimizer):
            found.append("gradients")
        if not trainer.strategy.reduce_boolean_decision(bool(found), all=False):
            return
        step = trainer.global_step + 1
        if self.action == "stop":
            raise TrainingDiverged(f"step {step}: {', '.join(found) or 'a loss on another process'} not finite; "
                                   "stopped before the update, checkpoints keep the last finite state (continue "
                                   "with trainer.resume=true, e.g. at a lower learning rate)")
        optimizer.zero_grad(set_to_none=True)
        self.restore_buffers(pl_module)
        self.skipped += 1

    @staticmethod
    def gradients_finite(trainer: L.Trainer, optimizer: torch.optim.Optimizer) -> bool:
        """Whether every gradient is finite; always True under a gradient scaler (it skips such steps itself)."""
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            return True
        return all_finite(p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None)

    def restore_buffers(self, pl_module: L.LightningModule) -> None:
        """Put back the buffers (BatchNorm statistics, class prior) saved before the skipped step's forwards."""
        with torch.no_grad():
            for name, buffer in pl_module.named_buffers():
                if name in self.buffers:
                    buffer.copy_(self.buffers[name])

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        trained = [(name, p) for name, p in pl_module.named_parameters() if p.requires_grad]
        raise_if_nonfinite(trained, f"step {trainer.global_step}: after the update, weight {{name}} is not finite")
        if self.action == "skip":
            pl_module.log(SKIPPED_METRIC, float(self.skipped))


def count_nonfinite(tensor: Tensor) -> Tensor:
    """How many values of a tensor are NaN or infinite."""
    return (~tensor.isfinite()).sum()


@contextlib.contextmanager
def finite_outputs(net: nn.Module) -> Iterator[list[Tensor]]:
    """Inside the block, `net`'s outputs have their non-finite values set to 0 (so that what consumes them, such as
    clustering, still runs) and the yielded list gets how many there were in each output."""
    counts: list[Tensor] = []

    def zero_nonfinite(_module: nn.Module, _inputs: Any, output: Tensor) -> Tensor:
        counts.append(count_nonfinite(output))
        return torch.where(output.isfinite(), output, torch.zeros_like(output))

    handle = net.register_forward_hook(zero_nonfinite)
    try:
        yield counts
    finally:
        handle.remove()


def validation_scores(scores: dict[str, Any], nonfinite: Tensor) -> dict[str, Any]:
    """Validation metrics with `val/nonfinite`, the network's non-finite output values: when there are any, every
    score is NaN (undefined, not 0). A class without pixels keeps its own NaN and leaves the means finite."""
    if nonfinite > 0:
        scores = dict.fromkeys(scores, float("nan"))
    return {**scores, NONFINITE_METRIC: nonfinite.float()}
