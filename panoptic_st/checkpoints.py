"""Loading checkpoints safely (`weights_only=True`) and refusing ones from another architecture or class set."""

from __future__ import annotations

import re
import sys
import zipfile
from pathlib import Path

import torch
from torch import nn

from panoptic_st.errors import CheckpointError
from panoptic_st.instance.pseudo_labels import ClusteringSettings
from panoptic_st.instance.spatial import build_instance_network
from panoptic_st.models.deeplab import build_deeplab

COMPATIBILITY_KEYS = ("branch", "arch", "encoder", "output_stride", "num_classes", "embedding_dim",
                      "spatial_embedding")


# Hyperparameters every checkpoint of a branch carries (a checkpoint without them is not one of ours).
REQUIRED_HYPERPARAMETERS = {"semantic": ("arch", "encoder", "num_classes"), "instance": ("encoder", "embedding_dim")}


def load_checkpoint_state(path: str | Path) -> dict:
    """A Lightning checkpoint loaded on the CPU with `weights_only=True`; non-finite weights are refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises several types for corrupt or unsafe files
        raise CheckpointError(f"{path}: cannot load checkpoint: {_load_failure(path, err)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (it holds a {type(state).__name__}, not a dict)")
    weights = state.get("state_dict")
    name = first_non_finite(weights) if isinstance(weights, dict) else None
    if name is not None:
        raise CheckpointError(f"{path}: tensor '{name}' holds NaN or infinite values; refusing the checkpoint")
    return state


def load_panoptic_checkpoint(path: str | Path) -> dict:
    """`load_checkpoint_state` of a checkpoint that panoptic_st wrote (state_dict and branch hyperparameters)."""
    state = load_checkpoint_state(path)
    check_panoptic_st_checkpoint(state, path)
    return state


def _load_failure(path: Path, err: Exception) -> str:
    """Why `torch.load` failed, in a few words (its messages run over several lines)."""
    if not zipfile.is_zipfile(path):
        return "truncated, or not a PyTorch file"
    unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if unsafe:
        return f"it stores a {unsafe.group(1)} object (weights-only loading refuses it)"
    return next((line for line in str(err).splitlines() if line.strip()), type(err).__name__).split(". ")[0]


def check_panoptic_st_checkpoint(state: dict, path: str | Path) -> None:
    """Raise unless `state` has the state_dict and the branch hyperparameters of a panoptic_st checkpoint."""
    hp = state.get("hyper_parameters")
    if not isinstance(hp, dict) or "branch" not in hp or not isinstance(state.get("state_dict"), dict):
        raise CheckpointError(f"{path}: not a panoptic_st checkpoint (no state_dict and hyper_parameters.branch)")
    if hp["branch"] not in REQUIRED_HYPERPARAMETERS:
        raise CheckpointError(f"{path}: unknown branch {hp['branch']!r} (expected semantic or instance)")
    missing = [key for key in REQUIRED_HYPERPARAMETERS[hp["branch"]] if key not in hp]
    if missing:
        raise CheckpointError(f"{path}: not a panoptic_st checkpoint (hyper_parameters lack {', '.join(missing)})")


def first_non_finite(tensors: dict[str, object]) -> str | None:
    """The name of the first floating-point tensor holding NaN or infinity, or None."""
    for name, value in tensors.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            return name
    return None


def check_compatible(expected: dict, found: dict, path: str | Path) -> None:
    """Raise if a checkpoint's hyperparameters differ from this experiment's on a compatibility key."""
    for key in COMPATIBILITY_KEYS:
        if key in expected and key in found and expected[key] != found[key]:
            raise CheckpointError(f"{path}: checkpoint has {key}={found[key]!r}, this experiment {expected[key]!r}")


def network_weights(state: dict, prefix: str = "net.") -> dict[str, torch.Tensor]:
    """The sub-state-dict of one network inside a LightningModule checkpoint."""
    return {k[len(prefix):]: v for k, v in state["state_dict"].items() if k.startswith(prefix)}


def _more(keys: list[str]) -> str:
    return f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""


def state_dict_mismatch(own: dict, weights: dict) -> str | None:
    """The first key of `weights` missing, unexpected or of another shape than in a network's `own` state dict."""
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    misshapen = [k for k in own if k in weights and own[k].shape != getattr(weights[k], "shape", None)]
    if missing:
        return f"lacks '{missing[0]}'{_more(missing)}"
    if unexpected:
        return f"has the unexpected key '{unexpected[0]}'{_more(unexpected)}"
    if misshapen:
        key = misshapen[0]
        found = tuple(getattr(weights[key], "shape", ()))
        return f"has '{key}' of shape {found}, the network {tuple(own[key].shape)}{_more(misshapen)}"
    return None


def load_weights_into(net: nn.Module, weights: dict[str, torch.Tensor], path: str | Path) -> None:
    """`net.load_state_dict(weights)`, refused in one line naming the first mismatching key."""
    mismatch = state_dict_mismatch(net.state_dict(), weights)
    if mismatch is not None:
        raise CheckpointError(f"{path}: weights do not fit the network: the checkpoint {mismatch}")
    net.load_state_dict(weights)


def load_network_weights(net: nn.Module, hparams: dict, path: str | Path, prefix: str = "net.") -> None:
    """Initialise `net` from a checkpoint of the same branch, architecture and class set."""
    state = load_panoptic_checkpoint(path)
    check_compatible(hparams, state["hyper_parameters"], path)
    load_weights_into(net, network_weights(state, prefix), path)


def load_branch_checkpoint(path: str | Path, branch: str) -> dict:
    """`load_panoptic_checkpoint` of a checkpoint of `branch` (semantic or instance); other branches are refused."""
    state = load_panoptic_checkpoint(path)
    found = state["hyper_parameters"]["branch"]
    if found != branch:
        raise CheckpointError(f"{path}: not a checkpoint of the {branch} branch (branch={found!r})")
    return state


def frozen_network(state: dict, path: str | Path) -> nn.Module:
    """The network of a loaded checkpoint, built from its own hyperparameters, frozen in eval mode and channels_last
    (NHWC: faster CPU forwards, the same outputs up to float rounding)."""
    hp = state["hyper_parameters"]
    if hp["branch"] == "semantic":
        net = build_deeplab(hp["arch"], hp["encoder"], hp["num_classes"], hp.get("output_stride", 8))
    else:
        net = build_instance_network(hp["encoder"], hp["embedding_dim"], spatial_scale=hp.get("spatial_scale"))
    load_weights_into(net, network_weights(state), path)
    return net.eval().requires_grad_(False).to(memory_format=torch.channels_last)


def network_from_checkpoint(path: str | Path, branch: str) -> nn.Module:
    """The frozen network (see `frozen_network`) of a checkpoint of `branch`: e.g. the semantic network whose masks
    the instance branch and the predictor cluster in."""
    return frozen_network(load_branch_checkpoint(path, branch), path)


def instance_network_from_checkpoint(path: str | Path) -> tuple[nn.Module, ClusteringSettings]:
    """A frozen embedding U-Net (eval mode, channels_last; a spatial embedding network when it was trained as one) and
    the clustering settings it was trained with, from an instance checkpoint (checkpoints written before the settings
    were stored get the defaults, with its classes)."""
    state = load_branch_checkpoint(path, "instance")
    hp = state["hyper_parameters"]
    net = frozen_network(state, path)
    if not hp.get("clustering"):
        print(f"warning: {path} stores no clustering settings (written by an older version); using the defaults "
              "(bandwidth 0.5, min_size 50): pass --bandwidth / --min-size to match its training", file=sys.stderr)
    stored = dict(hp.get("clustering") or {"classes": hp.get("classes", ClusteringSettings.classes)})
    stored["classes"] = tuple(stored["classes"])
    return net, ClusteringSettings(**stored)
