"""Evaluation that agrees with the official Cityscapes scripts: mIoU, instance AP, PQ/SQ/RQ and PQ+.

Each metric exists twice over one shared core: a ``torchmetrics.Metric`` on the project's prediction contract, and
a file-based drop-in for the official script (same inputs, same result dict, faster). ``export`` writes the
official result formats; ``commands`` registers the ``eval`` CLI.
"""

from panoptic_st.evaluation.export import (
    CityscapesExporter,
    EvaluationInputError,
    PanopticJsonWriter,
    write_instance_prediction,
    write_semantic_prediction,
)
from panoptic_st.evaluation.instance import InstanceAP, evaluate_instances
from panoptic_st.evaluation.panoptic import (
    PanopticQuality,
    evaluate_panoptic,
    panoptic_from_semantic_instance,
)
from panoptic_st.evaluation.semantic import SemanticIoU, confusion_matrix, evaluate_semantic

__all__ = [
    "CityscapesExporter",
    "EvaluationInputError",
    "InstanceAP",
    "PanopticJsonWriter",
    "PanopticQuality",
    "SemanticIoU",
    "confusion_matrix",
    "evaluate_instances",
    "evaluate_panoptic",
    "evaluate_semantic",
    "panoptic_from_semantic_instance",
    "write_instance_prediction",
    "write_semantic_prediction",
]
