"""Evaluation that agrees with the official Cityscapes scripts: mIoU, instance AP, PQ/SQ/RQ and PQ+.

Each metric exists twice over one shared core: a ``torchmetrics.Metric`` on the project's prediction contract, and
a file-based drop-in for the official script (same inputs, same result dict, faster). ``export`` writes the
official result formats; ``commands`` registers the ``eval`` CLI. The names below are imported on first use, so
that the command line (which only registers ``eval``) starts without torch.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "CityscapesExporter": "export", "EvaluationInputError": "export", "PanopticJsonWriter": "export",
    "write_instance_prediction": "export", "write_semantic_prediction": "export",
    "InstanceAP": "instance", "evaluate_instances": "instance",
    "PanopticQuality": "panoptic", "evaluate_panoptic": "panoptic", "panoptic_from_semantic_instance": "panoptic",
    "SemanticIoU": "semantic", "confusion_matrix": "semantic", "evaluate_semantic": "semantic",
}

__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    """The public name from its submodule, imported on first access."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
