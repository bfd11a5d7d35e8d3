"""Outcomes the command line reports in one line instead of a traceback (the others live beside their cause)."""


class RunStopped(Exception):
    """Training stopped before `trainer.max_steps` (`trainer.max_time`, a signal, `fast_dev_run`): no final.ckpt."""

    exit_code = 3


class TrainingDiverged(Exception):
    """A non-finite loss or gradient: the run stops, and no checkpoint with non-finite tensors is written."""

    exit_code = 4
