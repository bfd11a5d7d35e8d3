"""The thing classes an instance model owns: class names to trainIds, and the instance labels of those classes."""

from __future__ import annotations

import torch
from torch import Tensor

from panoptic_st.data.labels import CLASS_NAMES, IGNORE_INDEX, THING_CATEGORIES, THING_TRAIN_IDS
from panoptic_st.ops.classes import class_lookup


def resolve_classes(names: list[str]) -> tuple[int, ...]:
    """Thing trainIds from class names, category names (auto, human, bike) or `all`."""
    ids: list[int] = []
    for name in names:
        if name == "all":
            ids.extend(THING_TRAIN_IDS)
        elif name in THING_CATEGORIES:
            ids.extend(THING_CATEGORIES[name])
        elif name in CLASS_NAMES and CLASS_NAMES.index(name) in THING_TRAIN_IDS:
            ids.append(CLASS_NAMES.index(name))
        else:
            raise ValueError(f"instance.classes: '{name}' is not a thing class, a category "
                             f"({', '.join(THING_CATEGORIES)}) or 'all'")
    return tuple(sorted(set(ids)))


def source_instance_labels(semantic: Tensor, instance: Tensor, classes: tuple[int, ...]) -> Tensor:
    """Instance labels of the selected classes; instances without a semantic class (SYNTHIA's truck and train)
    are kept when every thing class is selected."""
    kept = (*classes, IGNORE_INDEX) if set(classes) == set(THING_TRAIN_IDS) else classes
    selected = class_lookup(kept, semantic.device)
    return torch.where(selected[semantic] & (instance > 0), instance, torch.zeros_like(instance))
