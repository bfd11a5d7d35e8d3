"""The errors a user can cause, which the command line reports in one line (ConfigError lives in `config`)."""


class RunStopped(Exception):
    """Training stopped before `trainer.max_steps` (`trainer.max_time`, a signal, `fast_dev_run`): no final.ckpt."""

    exit_code = 3


class TrainingDiverged(Exception):
    """A non-finite loss or gradient: the run stops, and no checkpoint with non-finite tensors is written."""

    exit_code = 4


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message names the file and the mismatch."""


class DatasetError(RuntimeError):
    """Bad or missing data; the message names the file and what is wrong."""


class EvaluationInputError(ValueError):
    """A malformed evaluation input (missing file, size mismatch, unknown category, duplicate segment id, ...).

    The message is one line and names the offending file.
    """
