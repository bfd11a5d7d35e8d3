"""Momentum (EMA) teacher shared by the semantic and instance branches."""

from __future__ import annotations

import copy

import torch
from torch import nn

from panoptic_st.guards import raise_if_nonfinite

EMA_BUFFERS: tuple[str, ...] = ("running_mean", "running_var")


class MomentumTeacher(nn.Module):
    """A frozen copy of a student, moved towards it by psi <- m psi + (1 - m) theta every `interval` steps.

    The average covers parameters and BatchNorm running mean/var, not `num_batches_tracked`. The first `update`
    copies the student's whole state (so a student loaded after construction is picked up); a non-finite student is
    refused (`TrainingDiverged`), never averaged in. The teacher is always in eval mode and never needs gradients;
    its state, including whether it was initialised, is an ordinary state_dict. SAC uses m=0.99 every 100 steps; the instance branch m=0.999 every step.
    The copy runs in channels_last (NHWC) memory format (faster forwards on CPU, the same outputs up to rounding;
    measurements: docs/results.md); copies and averaging updates keep that layout.
    Under DDP the teacher is a submodule of the wrapped LightningModule, so DDP's buffer broadcast (rank 0's
    buffers before every forward) keeps its BatchNorm statistics identical on all processes; its parameters
    follow identical students (tests/test_ddp.py).
    """

    def __init__(self, student: nn.Module, momentum: float = 0.99, interval: int = 100):
        super().__init__()
        self.net = copy.deepcopy(student).to(memory_format=torch.channels_last)
        self.net.requires_grad_(False)
        self.momentum = momentum
        self.interval = interval
        self.register_buffer("initialised", torch.tensor(False))
        self.train(False)

    def train(self, mode: bool = True) -> MomentumTeacher:
        """Stay in eval mode whatever `mode` says."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> torch.Tensor:
        """Teacher prediction, without gradients."""
        return self.net(*args, **kwargs)

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> bool:
        """Copy the student on the first call, then average it in when `step % interval == 0`; True if changed.
        A student with a non-finite parameter or buffer raises `TrainingDiverged` and leaves the teacher as it was."""
        if self.initialised and step % self.interval:
            return False
        raise_if_nonfinite([*student.named_parameters(), *student.named_buffers()],
                           f"step {step}: the student's {{name}} is not finite; the momentum teacher keeps its "
                           "last finite weights")
        if not self.initialised:
            self.net.load_state_dict(student.state_dict())
            self.initialised.fill_(True)
            return True
        weight = 1.0 - self.momentum
        student_params = dict(student.named_parameters())
        for name, param in self.net.named_parameters():
            param.lerp_(student_params[name], weight)
        student_buffers = dict(student.named_buffers())
        for name, buffer in self.net.named_buffers():
            if name.rsplit(".", 1)[-1] in EMA_BUFFERS:
                buffer.lerp_(student_buffers[name], weight)
        return True
