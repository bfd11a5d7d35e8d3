"""Malformed inputs: every error a user can cause (data, config, checkpoints, evaluation inputs, unwritable outputs)
exits non-zero with exactly one stderr line that names the file or the config key, and no traceback.

Each case is a function `case(env) -> (argv, named)` that breaks a private copy of a tiny fixture and returns the
`panoptic-st` arguments to run in process and the path or key the error line must name.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from eval_fixtures import make_eval_fixture
from PIL import Image

from panoptic_st.cli import main

Case = Callable[["Env"], tuple[list, object]]
CASES: dict[str, Case] = {}


def case(category: str) -> Callable[[Case], Case]:
    """Register a malformed-input case under `<category>/<name>`."""

    def register(fn: Case) -> Case:
        CASES[f"{category}/{fn.__name__}"] = fn
        return fn

    return register


# ----------------------------------------------------------------------------------------------------------------
# fixtures


class Foreign:
    """A class that `torch.load(weights_only=True)` refuses to unpickle."""


def _checkpoint(net: torch.nn.Module, hparams: dict) -> dict:
    return {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "hyper_parameters": hparams}


@pytest.fixture(scope="module")
def checkpoints() -> dict[str, dict]:
    """Valid semantic and instance checkpoint contents on tiny timm test encoders."""
    from panoptic_st.models.deeplab import build_deeplab
    from panoptic_st.models.unet import build_embedding_unet

    semantic = _checkpoint(build_deeplab("deeplabv2", "test_resnet", 19, 16),
                           {"branch": "semantic", "arch": "deeplabv2", "encoder": "test_resnet", "num_classes": 19,
                            "output_stride": 16})
    instance = _checkpoint(build_embedding_unet("tu-test_resnet", 8),
                           {"branch": "instance", "encoder": "tu-test_resnet", "embedding_dim": 8})
    return {"semantic": semantic, "instance": instance}


@pytest.fixture(scope="module")
def eval_root(tmp_path_factory) -> Path:
    return make_eval_fixture(tmp_path_factory.mktemp("malformed_eval"), n_images=2, seed=3).root


@dataclass
class Env:
    """A case's private directory and the pristine fixtures it copies from."""

    tmp: Path
    toy_root: Path
    eval_root: Path
    checkpoints: dict[str, dict]
    monkeypatch: pytest.MonkeyPatch

    def toy(self, fmt: str) -> Path:
        """A private copy of one toy dataset."""
        return Path(shutil.copytree(self.toy_root / fmt, self.tmp / fmt))

    def data_check(self, fmt: str, break_it: Callable[[Path], Path | str]) -> tuple[list, object]:
        root = self.toy(fmt)
        named = break_it(root)
        return ["data", "check", root, "--format", fmt], named

    def train(self, *overrides: str, experiment: str = "toy/semantic_baseline") -> list:
        return ["train", experiment, f"data.root={self.toy_root}", f"output_dir={self.tmp / 'run'}",
                "data.num_workers=0", "trainer.progress_bar=false", *overrides]

    def save(self, state: object, name: str = "model.ckpt") -> Path:
        path = self.tmp / name
        torch.save(state, path)
        return path

    def evaluate(self, checkpoint: Path) -> list:
        return ["evaluate", "toy/semantic_baseline", checkpoint, f"data.root={self.toy_root}"]

    def eval_copy(self) -> Path:
        return Path(shutil.copytree(self.eval_root, self.tmp / "eval"))

    def panoptic(self, break_it: Callable[[Path, dict, dict], Path | str]) -> tuple[list, object]:
        """`eval panoptic` on a copy whose GT and predicted JSONs `break_it(root, gt, pred)` may edit in place."""
        root = self.eval_copy()
        gt_json, pred_json = root / "gtFine" / "cityscapes_panoptic_val.json", root / "results" / "panoptic.json"
        original = [json.loads(path.read_text()) for path in (gt_json, pred_json)]
        gt, pred = (json.loads(path.read_text()) for path in (gt_json, pred_json))
        named = break_it(root, gt, pred)
        for path, data, before in ((gt_json, gt, original[0]), (pred_json, pred, original[1])):
            if data != before:
                path.write_text(json.dumps(data))
        args = ["eval", "panoptic", "--gt-json", gt_json, "--gt-dir", root / "gtFine" / "cityscapes_panoptic_val",
                "--pred-json", pred_json, "--pred-dir", root / "results" / "panoptic"]
        return args, named


@pytest.fixture
def env(tmp_path, toy_root, eval_root, checkpoints, monkeypatch) -> Env:
    return Env(tmp_path, toy_root, eval_root, checkpoints, monkeypatch)


# ----------------------------------------------------------------------------------------------------------------
# data: `data check` (and one training run) on broken copies of the toy datasets


def _first(root: Path, pattern: str) -> Path:
    return min(root.rglob(pattern))


def _rewrite(pattern: str, convert: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], Path]:
    """Replace the first file matching `pattern` by `convert` of its decoded array."""

    def break_it(root: Path) -> Path:
        path = _first(root, pattern)
        assert cv2.imwrite(str(path), convert(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)))
        return path

    return break_it


def _convert_mode(pattern: str, mode: str) -> Callable[[Path], Path]:
    """Re-save the first file matching `pattern` in another PIL mode ("1", "RGB", ...)."""

    def break_it(root: Path) -> Path:
        path = _first(root, pattern)
        Image.open(path).convert(mode).save(path)
        return path

    return break_it


def _delete(pattern: str) -> Callable[[Path], Path]:
    """Remove the first file matching `pattern`."""
    return lambda root: _unlink(_first(root, pattern))


def _overwrite(pattern: str, content: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    def break_it(root: Path) -> Path:
        path = _first(root, pattern)
        path.write_bytes(content(path.read_bytes()))
        return path

    return break_it


def _split_line(line: bytes, split: str = "train") -> Callable[[Path], Path]:
    def break_it(root: Path) -> Path:
        path = root / f"{split}.txt"
        path.write_bytes(path.read_bytes() + line + b"\n")
        return path

    return break_it


CS_INSTANCE, CS_LABEL, CS_IMAGE = "*_gtFine_instanceIds.png", "*_gtFine_labelIds.png", "*_leftImg8bit.png"


def _to_8bit(array: np.ndarray) -> np.ndarray:
    return np.minimum(array, 255).astype(np.uint8)


@case("data")
def cityscapes_instance_ids_8bit(env):
    return env.data_check("cityscapes", _rewrite(CS_INSTANCE, _to_8bit))


@case("data")
def cityscapes_instance_ids_3_channels(env):
    return env.data_check("cityscapes", _rewrite(CS_INSTANCE, lambda a: np.dstack([a, a, a])))


@case("data")
def cityscapes_instance_ids_8bit_rgb(env):
    return env.data_check("cityscapes", _rewrite(CS_INSTANCE, lambda a: np.dstack([a, a, a]).astype(np.uint8)))


@case("data")
def cityscapes_label_ids_16bit(env):
    return env.data_check("cityscapes", _rewrite(CS_LABEL, lambda a: a.astype(np.uint16)))


@case("data")
def cityscapes_label_ids_rgb(env):
    return env.data_check("cityscapes", _rewrite(CS_LABEL, lambda a: np.dstack([a, a, a])))


@case("data")
def cityscapes_label_ids_bilevel(env):
    return env.data_check("cityscapes", _convert_mode(CS_LABEL, "1"))


def _first_pixel(value: int, channel: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Set the first pixel (of one channel) of a label array to `value`."""

    def convert(array: np.ndarray) -> np.ndarray:
        array[(0, 0) if channel is None else (0, 0, channel)] = value
        return array

    return convert


@case("data")
def cityscapes_unknown_label_id(env):
    return env.data_check("cityscapes", _rewrite(CS_LABEL, _first_pixel(250)))


@case("data")
def cityscapes_label_size_mismatch(env):
    return env.data_check("cityscapes", _rewrite(CS_LABEL, lambda a: np.ascontiguousarray(a[:-2])))


@case("data")
def cityscapes_instance_size_mismatch(env):
    return env.data_check("cityscapes", _rewrite(CS_INSTANCE, lambda a: np.ascontiguousarray(a[:, :-4])))


@case("data")
def cityscapes_missing_instance_file(env):
    return env.data_check("cityscapes", _delete(CS_INSTANCE))


@case("data")
def cityscapes_truncated_image(env):
    return env.data_check("cityscapes", _overwrite(CS_IMAGE, lambda b: b[:200]))


@case("data")
def cityscapes_label_not_a_png(env):
    return env.data_check("cityscapes", _overwrite(CS_LABEL, lambda b: b"labels"))


@case("data")
def cityscapes_empty_instance_file(env):
    return env.data_check("cityscapes", _overwrite(CS_INSTANCE, lambda b: b""))


@case("data")
def cityscapes_split_file_leaves_the_root(env):
    return env.data_check("cityscapes", _split_line(b"../../etc/passwd"))


@case("data")
def cityscapes_split_file_absolute_path(env):
    return env.data_check("cityscapes", _split_line(b"/etc/hostname", "val"))


@case("data")
def cityscapes_split_file_invalid_utf8(env):
    return env.data_check("cityscapes", _split_line(b"leftImg8bit/train/\xff\xfe.png"))


@case("data")
def cityscapes_split_file_names_a_label(env):
    def break_it(root):
        label = _first(root / "gtFine" / "val", CS_LABEL)
        _split_line(label.relative_to(root).as_posix().encode(), "val")(root)
        return label

    return env.data_check("cityscapes", break_it)


@case("data")
def cityscapes_split_file_names_a_missing_image(env):
    image = "leftImg8bit/val/nowhere/nowhere_000000_000019_leftImg8bit.png"
    return env.data_check("cityscapes", lambda root: _after(_split_line(image.encode(), "val")(root), root / image))


@case("data")
def cityscapes_empty_split(env):
    def break_it(root):
        for path in (root / "leftImg8bit" / "val", root / "gtFine" / "val"):
            shutil.rmtree(path)
        (root / "val.txt").unlink()
        return root / "leftImg8bit" / "val"

    return env.data_check("cityscapes", break_it)


SY_LABEL = "GT/LABELS/*.png"


@case("data")
def synthia_labels_8bit(env):
    return env.data_check("synthia", _rewrite(SY_LABEL, _to_8bit))


@case("data")
def synthia_labels_one_channel(env):
    return env.data_check("synthia", _rewrite(SY_LABEL, lambda a: np.ascontiguousarray(a[..., 2])))


@case("data")
def synthia_unknown_class(env):
    return env.data_check("synthia", _rewrite(SY_LABEL, _first_pixel(99, channel=2)))


@case("data")
def synthia_truncated_label(env):
    return env.data_check("synthia", _overwrite(SY_LABEL, lambda b: b[: len(b) // 2]))


@case("data")
def synthia_split_file_leaves_the_root(env):
    return env.data_check("synthia", _split_line(b"RGB/../../gta5/images/00001.png"))


@case("data")
def synthia_split_file_invalid_utf8(env):
    return env.data_check("synthia", _split_line(b"RGB/\xc3\x28.png"))


@case("data")
def synthia_orphan_label(env):
    def break_it(root):
        image = _first(root, "RGB/*.png")
        image.unlink()
        (root / "train.txt").unlink()
        return image

    return env.data_check("synthia", break_it)


GTA_LABEL = "labels/*.png"


@case("data")
def gta5_labels_16bit(env):
    def break_it(root):
        path = _first(root, GTA_LABEL)
        cv2.imwrite(str(path), np.asarray(Image.open(path)).astype(np.uint16))
        return path

    return env.data_check("gta5", break_it)


@case("data")
def gta5_labels_rgb(env):
    return env.data_check("gta5", _convert_mode(GTA_LABEL, "RGB"))


@case("data")
def gta5_missing_label(env):
    return env.data_check("gta5", _delete(GTA_LABEL))


@case("data")
def gta5_split_file_invalid_utf8(env):
    return env.data_check("gta5", _split_line(b"images/\x80.png"))


@case("data")
def dataset_root_missing(env):
    return ["data", "check", env.tmp / "nowhere", "--format", "gta5"], env.tmp / "nowhere"


@case("data")
def training_on_8bit_instance_ids(env):
    root = Path(shutil.copytree(env.toy_root, env.tmp / "toy"))
    path = _rewrite(CS_INSTANCE, _to_8bit)(root / "cityscapes")
    return [*env.train(), f"data.root={root}"], path


# ----------------------------------------------------------------------------------------------------------------
# config: values, keys and experiment files given to `train`


def _override(override: str, named: str | None = None) -> Case:
    def run(env):
        return env.train(override), named or override.split("=")[0]

    return run


# name: (override, what the error line names when not the override's key)
CONFIG_OVERRIDES = {
    "batch_size_zero": ("data.batch_size=0",),
    "batch_size_negative": ("data.batch_size=-3",),
    "target_batch_size_zero": ("data.target_batch_size=0",),
    "val_batch_size_zero": ("data.val_batch_size=0",),
    "target_mars": ("data.target=mars",),
    "source_mars": ("data.sources=[synthia,mars]",),
    "no_sources": ("data.sources=[]",),
    "semantic_lr_nan": ("semantic.lr=nan",),
    "semantic_lr_zero": ("semantic.lr=0",),
    "semantic_lr_negative": ("semantic.lr=-0.1",),
    "semantic_lr_inf": ("semantic.lr=inf",),
    "instance_lr_nan": ("instance.lr=nan",),
    "arch_unknown": ("semantic.arch=deeplabv4",),
    "optimizer_unknown": ("semantic.optimizer=adam",),
    "mode_unknown": ("semantic.mode=selftrain",),
    "stage_unknown": ("stage=panoptic",),
    "crop_one_side": ("data.crop=[96]",),
    "crop_zero": ("data.crop=[0,192]",),
    "source_scale_reversed": ("data.source_scale=[1.0,0.5]",),
    "target_scale_zero": ("data.target_scale=[0,1]",),
    "source_mix_above_one": ("data.source_mix=1.5",),
    "num_workers_negative": ("data.num_workers=-1",),
    "max_items_zero": ("data.max_items=0",),
    "unknown_key": ("semantic.encodr=resnet18",),
    "wrong_type": ("data.batch_size=abc",),
    "unknown_trainer_argument": ("trainer.max_stepz=3",),
    "missing_interpolation": ("output_dir=${nowhere}", "nowhere"),
    "missing_weights_file": ("semantic.encoder_weights_file=/nowhere/resnet.pth",),
    "missing_data_root": ("data.cityscapes_root=/nowhere",),
    "unknown_encoder": ("semantic.encoder=resnet1011",),
    "crop_larger_than_the_images": ("data.crop=[4000,4000]",),
}
for _name, _overrides in CONFIG_OVERRIDES.items():
    CASES[f"config/{_name}"] = _override(*_overrides)


@case("config")
def unknown_instance_encoder(env):
    return env.train("instance.encoder=resnet1011", experiment="toy/instance_baseline"), "instance.encoder"


@case("config")
def experiment_not_found(env):
    return ["train", "toy/no_such_experiment"], "toy/no_such_experiment"


@case("config")
def experiment_yaml_unparsable(env):
    path = env.tmp / "broken.yaml"
    path.write_text("data: [unclosed\n")
    return ["train", path], path


@case("config")
def experiment_defaults_missing(env):
    path = env.tmp / "exp.yaml"
    path.write_text("defaults: [nowhere.yaml]\n")
    return ["train", path], path


@case("config")
def experiment_defaults_circular(env):
    path = env.tmp / "loop.yaml"
    path.write_text("defaults: [loop.yaml]\n")
    return ["train", path], path


# ----------------------------------------------------------------------------------------------------------------
# checkpoints given to `evaluate`, `predict` and `train`


def _without(mapping: dict, key: str) -> dict:
    return {k: v for k, v in mapping.items() if k != key}


def _with_first_value(state: dict, key: str, value: float) -> dict:
    tensor = state["state_dict"][key].clone()
    tensor.view(-1)[0] = value
    return {**state, "state_dict": {**state["state_dict"], key: tensor}}


FIRST_KEY = "net.encoder.conv1.0.weight"
HEAD_KEY = "net.head.branches.0.weight"

# name: (the file's content made from a valid semantic checkpoint's, what the error line names: None = the file)
CHECKPOINT_CONTENTS: dict[str, tuple[Callable[[dict], object], str | None]] = {
    "foreign_torch_dict": (lambda s: {"weights": torch.zeros(3)}, None),
    "a_lone_tensor": (lambda s: torch.zeros(3), None),
    "plain_state_dict": (lambda s: s["state_dict"], None),
    "unsafe_pickle": (lambda s: {"state_dict": Foreign()}, None),
    "no_branch": (lambda s: {**s, "hyper_parameters": _without(s["hyper_parameters"], "branch")}, None),
    "unknown_branch": (lambda s: {**s, "hyper_parameters": {**s["hyper_parameters"], "branch": "panoptic"}}, None),
    "no_arch": (lambda s: {**s, "hyper_parameters": _without(s["hyper_parameters"], "arch")}, None),
    "state_dict_not_a_dict": (lambda s: {**s, "state_dict": [1, 2]}, None),
    "nan_weight": (lambda s: _with_first_value(s, HEAD_KEY, float("nan")), HEAD_KEY),
    "inf_weight": (lambda s: _with_first_value(s, FIRST_KEY, float("inf")), FIRST_KEY),
    "minus_inf_weight": (lambda s: _with_first_value(s, HEAD_KEY, float("-inf")), HEAD_KEY),
    "missing_key": (lambda s: {**s, "state_dict": _without(s["state_dict"], HEAD_KEY)}, HEAD_KEY[4:]),
    "unexpected_key": (lambda s: {**s, "state_dict": {**s["state_dict"], "net.extra.weight": torch.zeros(2)}},
                       "extra.weight"),
    "shape_mismatch": (lambda s: {**s, "state_dict": {**s["state_dict"], HEAD_KEY: torch.zeros(3, 3)}},
                       HEAD_KEY[4:]),
}


def _evaluate_content(make: Callable[[dict], object], named: str | None) -> Case:
    def run(env):
        path = env.save(make(env.checkpoints["semantic"]))
        return env.evaluate(path), named or path

    return run


for _name, (_make, _key) in CHECKPOINT_CONTENTS.items():
    CASES[f"checkpoint/{_name}"] = _evaluate_content(_make, _key)


@case("checkpoint")
def missing_file(env):
    return env.evaluate(env.tmp / "missing.ckpt"), env.tmp / "missing.ckpt"


@case("checkpoint")
def directory(env):
    return env.evaluate(env.tmp), env.tmp


@case("checkpoint")
def empty_file(env):
    path = env.tmp / "empty.ckpt"
    path.touch()
    return env.evaluate(path), path


@case("checkpoint")
def truncated(env):
    path = env.save(env.checkpoints["semantic"])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return env.evaluate(path), path


@case("checkpoint")
def text_file(env):
    path = env.tmp / "notes.ckpt"
    path.write_text("not a checkpoint\n")
    return env.evaluate(path), path


@case("checkpoint")
def random_bytes(env):
    path = env.tmp / "noise.ckpt"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return env.evaluate(path), path


@case("checkpoint")
def instance_nan_weight(env):
    state = env.checkpoints["instance"]
    key = next(k for k in state["state_dict"] if k.endswith("weight"))
    return env.evaluate(env.save(_with_first_value(state, key, float("nan")))), key


@case("checkpoint")
def instance_missing_key(env):
    state = env.checkpoints["instance"]
    key = next(k for k in state["state_dict"] if k.startswith("net.decoder"))
    return env.evaluate(env.save({**state, "state_dict": _without(state["state_dict"], key)})), key[4:]


def _images(env: Env) -> Path:
    images = env.tmp / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((64, 128, 3), np.uint8))
    return images


@case("checkpoint")
def predict_with_a_non_finite_semantic_checkpoint(env):
    semantic = env.save(_with_first_value(env.checkpoints["semantic"], HEAD_KEY, float("nan")))
    return ["predict", "--semantic", semantic, "--images", _images(env), "--out", env.tmp / "out"], HEAD_KEY


@case("checkpoint")
def predict_with_a_truncated_instance_checkpoint(env):
    semantic = env.save(env.checkpoints["semantic"], "semantic.ckpt")
    instance = env.save(env.checkpoints["instance"], "instance.ckpt")
    instance.write_bytes(instance.read_bytes()[:1000])
    return ["predict", "--semantic", semantic, "--instance", instance, "--images", _images(env), "--out",
            env.tmp / "out"], instance


@case("checkpoint")
def init_checkpoint_with_non_finite_weights(env):
    path = env.save(_with_first_value(env.checkpoints["semantic"], HEAD_KEY, float("nan")))
    return env.train(f"semantic.init_checkpoint={path}"), HEAD_KEY


@case("checkpoint")
def init_checkpoint_of_another_encoder(env):
    path = env.save(env.checkpoints["semantic"])
    return env.train(f"semantic.init_checkpoint={path}"), path


# ----------------------------------------------------------------------------------------------------------------
# evaluation inputs: `eval panoptic | semantic | instance` on broken copies of the evaluation fixture


def _gt_json(root: Path) -> Path:
    return root / "gtFine" / "cityscapes_panoptic_val.json"


def _pred_json(root: Path) -> Path:
    return root / "results" / "panoptic.json"


def _gt_png(root: Path, gt: dict) -> Path:
    return root / "gtFine" / "cityscapes_panoptic_val" / gt["annotations"][0]["file_name"]


def _pred_png(root: Path, pred: dict) -> Path:
    return root / "results" / "panoptic" / pred["annotations"][0]["file_name"]


def _segments(data: dict) -> list[dict]:
    return data["annotations"][0]["segments_info"]


def _after(_change: object, named: Path | str) -> Path | str:
    """`named`, once the change given first has been made (the cases below are one expression each)."""
    return named


def _write_png(path: Path, array: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), array)
    return path


# name: break_it(root, gt JSON, predicted JSON) -> what the error line names
PANOPTIC_BREAKS: dict[str, Callable[[Path, dict, dict], Path | str]] = {
    "gt_area_corrupt": lambda r, g, p: _after(_segments(g)[0].update(area=1), _gt_json(r)),
    "gt_unknown_category": lambda r, g, p: _after(_segments(g)[0].update(category_id=99), _gt_json(r)),
    "pred_unknown_category": lambda r, g, p: _after(_segments(p)[0].update(category_id=99), _pred_json(r)),
    "pred_png_id_missing_from_json": lambda r, g, p: _after(_segments(p).pop(0), _pred_png(r, p)),
    "gt_png_id_missing_from_json": lambda r, g, p: _after(_segments(g).pop(0), _gt_png(r, g)),
    "pred_json_id_missing_from_png": lambda r, g, p: _after(
        _segments(p).append({"id": 4321, "category_id": 26, "iscrowd": 0}), _pred_json(r)),
    "duplicate_segment_ids": lambda r, g, p: _after(_segments(p).append(_segments(p)[0]), _pred_json(r)),
    "segment_id_zero": lambda r, g, p: _after(_segments(p)[0].update(id=0), _pred_json(r)),
    "segment_id_text": lambda r, g, p: _after(_segments(g)[0].update(id="7"), _gt_json(r)),
    "segment_not_an_object": lambda r, g, p: _after(g["annotations"][0].update(segments_info=[7]), _gt_json(r)),
    "segments_info_missing": lambda r, g, p: _after(p["annotations"][0].pop("segments_info"), _pred_json(r)),
    "file_name_missing": lambda r, g, p: _after(p["annotations"][0].pop("file_name"), _pred_json(r)),
    "prediction_missing_for_an_image": lambda r, g, p: _after(p["annotations"].pop(0), _pred_json(r)),
    "annotations_missing": lambda r, g, p: _after(p.pop("annotations"), _pred_json(r)),
    "annotation_not_an_object": lambda r, g, p: _after(p["annotations"].append("x"), _pred_json(r)),
    "categories_missing": lambda r, g, p: _after(g.pop("categories"), _gt_json(r)),
    "category_without_id": lambda r, g, p: _after(g["categories"][0].pop("id"), _gt_json(r)),
    "gt_json_missing": lambda r, g, p: _after(_gt_json(r).unlink(), _gt_json(r)),
    "gt_json_invalid": lambda r, g, p: _after(_gt_json(r).write_text("{"), _gt_json(r)),
    "pred_json_a_list": lambda r, g, p: _after(_pred_json(r).write_text("[]"), _pred_json(r)),
    "pred_png_missing": lambda r, g, p: _after(_pred_png(r, p).unlink(), _pred_png(r, p)),
    "pred_png_size_mismatch": lambda r, g, p: _write_png(_pred_png(r, p), np.zeros((10, 20, 3), np.uint8)),
    "pred_png_single_channel": lambda r, g, p: _write_png(_pred_png(r, p), np.zeros((64, 128), np.uint16)),
    "pred_png_truncated": lambda r, g, p: _after(_pred_png(r, p).write_bytes(_pred_png(r, p).read_bytes()[:100]),
                                                 _pred_png(r, p)),
    "pred_dir_missing": lambda r, g, p: _after(shutil.rmtree(r / "results" / "panoptic"), r / "results" / "panoptic"),
    "gt_dir_missing": lambda r, g, p: _after(shutil.rmtree(r / "gtFine" / "cityscapes_panoptic_val"),
                                             r / "gtFine" / "cityscapes_panoptic_val"),
}


def _panoptic(break_it: Callable[[Path, dict, dict], Path | str]) -> Case:
    def run(env):
        return env.panoptic(break_it)

    return run


for _name, _break in PANOPTIC_BREAKS.items():
    CASES[f"evaluation/panoptic_{_name}"] = _panoptic(_break)


def _file_case(task: str, break_it: Callable[[Path], Path | str]) -> Case:
    """`eval semantic|instance` on a copy of the fixture that `break_it(root)` breaks."""

    def run(env):
        root = env.eval_copy()
        named = break_it(root)
        return ["eval", task, "--gt-dir", root / "gtFine" / "val", "--pred-dir", root / "results" / task], named

    return run


def _first_prediction(root: Path, pattern: str) -> Path:
    return min((root / "results").rglob(pattern))


def _unlink(path: Path) -> Path:
    path.unlink()
    return path


FILE_BREAKS: dict[str, tuple[str, Callable[[Path], Path | str]]] = {
    "semantic_size_mismatch": ("semantic", lambda r: _write_png(_first_prediction(r, "semantic/*/*.png"),
                                                                np.zeros((10, 10), np.uint8))),
    "semantic_prediction_rgb": ("semantic", lambda r: _write_png(_first_prediction(r, "semantic/*/*.png"),
                                                                 np.zeros((64, 128, 3), np.uint8))),
    "semantic_prediction_missing": ("semantic", lambda r: _unlink(_first_prediction(r, "semantic/*/*.png")).name
                                    .removesuffix("_pred.png")),
    "instance_mask_missing": ("instance", lambda r: _unlink(_first_prediction(r, "instance/*/masks/*.png"))),
    "instance_line_malformed": ("instance", lambda r: _after(
        _first_prediction(r, "instance/*/*.txt").write_text("only-a-path\n"), _first_prediction(r, "instance/*/*.txt"))),
    "instance_label_not_a_number": ("instance", lambda r: _after(
        _first_prediction(r, "instance/*/*.txt").write_text("masks/x.png car 0.5\n"),
        _first_prediction(r, "instance/*/*.txt"))),
}
for _name, (_task, _break) in FILE_BREAKS.items():
    CASES[f"evaluation/{_name}"] = _file_case(_task, _break)


# ----------------------------------------------------------------------------------------------------------------
# outputs: a full disk, read-only and unwritable places (the error names the path and the cause)


def _panoptic_results(env: Env, out: Path) -> list:
    args, _ = env.panoptic(lambda r, g, p: None)
    return [*args, "--out", out]


@case("output")
def eval_results_on_a_full_disk(env):
    return _panoptic_results(env, Path("/dev/full")), "/dev/full: No space left on device"


@case("output")
def eval_results_in_an_unwritable_place(env):
    out = Path("/sys/panoptic_st_results.json")  # EACCES even for root
    return _panoptic_results(env, out), f"{out}: Permission denied"


@case("output")
def eval_results_on_a_read_only_file_system(env):
    out = env.tmp / "mounted" / "results.json"
    args = _panoptic_results(env, out)

    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    env.monkeypatch.setattr(Path, "mkdir", read_only)  # no read-only mount here: the error it would give
    return args, f"{out.parent}: {os.strerror(errno.EROFS)}"


@case("output")
def toy_data_under_a_file(env):
    return ["data", "make-toy", "--out", "/dev/full/toy", "--n-source", "1", "--n-target", "1", "--n-val", "1",
            "--workers", "1"], "/dev/full/toy"


@case("output")
def run_directory_under_a_file(env):
    return env.train("output_dir=/dev/full/run"), "/dev/full/run"


# ----------------------------------------------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input_fails_in_one_line(name, env, capsys):
    env.monkeypatch.delenv("PANOPTIC_ST_DEBUG", raising=False)
    argv, named = CASES[name](env)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code != 0
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and str(named) in lines[0], lines[0]
    assert "Traceback" not in out + err


def test_debug_flag_and_variable_show_the_traceback(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "missing.ckpt"
    argv = ["evaluate", "toy/semantic_baseline", str(missing)]
    assert main(["--debug", *argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1] == f"error: {missing}: checkpoint not found"
    monkeypatch.setenv("PANOPTIC_ST_DEBUG", "1")
    assert main(argv) == 1
    assert "Traceback" in capsys.readouterr().err


def test_there_are_at_least_60_cases_over_every_category():
    categories = {name.split("/")[0] for name in CASES}
    assert len(CASES) >= 60 and categories == {"data", "config", "checkpoint", "evaluation", "output"}
