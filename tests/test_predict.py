"""`panoptic-st predict` and `evaluate`: one prediction contract from checkpoints to the official result files, scored
equally in process, by `panoptic-st eval` and by the official Cityscapes scripts; DDP, reruns, bf16, any folder."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_overrides
from eval_fixtures import official_instance, official_panoptic, official_semantic

from panoptic_st.cli import main
from panoptic_st.config import load_config
from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.instance.pseudo_labels import ClusteringSettings
from panoptic_st.panoptic.predictor import PanopticPredictor
from panoptic_st.prediction import evaluate, score
from panoptic_st.training import train

TINY = tiny_overrides("data.val_batch_size=3")
CPU = {"accelerator": "cpu", "progress": False}


def _strict_json(path: Path) -> dict:
    def refuse(constant: str):
        raise ValueError(f"{path}: non-standard JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def trained(toy_root, tmp_path_factory) -> dict:
    """A semantic and an instance checkpoint trained long enough on the tiny toy to predict some objects."""
    out = tmp_path_factory.mktemp("predict")
    common = [f"data.root={toy_root}", *TINY, "trainer.limit_val_batches=0"]
    semantic = train(load_config("toy/semantic_baseline", [*common, "trainer.max_steps=60", f"output_dir={out}/s"]))
    instance = train(load_config("toy/instance_baseline", [*common, "trainer.max_steps=40", f"output_dir={out}/i",
                                                           "instance.min_size=5"]))
    return {"semantic": semantic["checkpoint"], "instance": instance["checkpoint"], "root": toy_root / "cityscapes",
            "common": common}


def _predict(trained: dict, out: Path, *extra: str) -> int:
    return main(["predict", "--semantic", trained["semantic"], "--instance", trained["instance"], "--dataset",
                 "cityscapes", "--root", str(trained["root"]), "--split", "val", "--out", str(out),
                 "--accelerator", "cpu", "--workers", "0", *extra])


def _eval(kind: str, root: Path, pred: Path, out: Path, *extra: str) -> dict:
    gt = root / "gtFine"
    args = {"panoptic": ["--gt-json", str(gt / "cityscapes_panoptic_val.json"), "--gt-dir",
                         str(gt / "cityscapes_panoptic_val"), "--pred-json", str(pred / "panoptic.json"),
                         "--pred-dir", str(pred / "panoptic")],
            "semantic": ["--gt-dir", str(gt / "val"), "--pred-dir", str(pred / "semantic")],
            "instance": ["--gt-dir", str(gt / "val"), "--pred-dir", str(pred / "instance")]}[kind]
    assert main(["eval", kind, *args, "--out", str(out), *extra]) == 0
    return _strict_json(out)


def _same(a: float | None, b: float | None, tol: float) -> bool:
    a = float("nan") if a is None else a
    b = float("nan") if b is None else b
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


@pytest.mark.parametrize("masks", ["semantic", "gt"])
def test_predict_then_eval_equals_in_process_and_official_scores(trained, tmp_path, masks):
    """Predicted semantic masks test mIoU and stuff PQ; ground-truth masks give the tiny models' instances a
    non-zero AP and thing PQ."""
    root, pred = trained["root"], tmp_path / "pred"
    assert _predict(trained, pred, "--masks", masks) == 0
    panoptic = _eval("panoptic", root, pred, tmp_path / "pan.json")
    semantic = _eval("semantic", root, pred, tmp_path / "sem.json")
    instance = _eval("instance", root, pred, tmp_path / "ins.json", "--min-region-size", "scaled")

    predictor = PanopticPredictor.from_checkpoints(trained["semantic"], [trained["instance"]], masks=masks)
    ours = score(predictor, CityscapesDataset(root, "val"), CPU, min_region_size=None)
    if masks == "gt":
        assert ours["ap"]["ap50"] > 0.1 and ours["pq"]["Things"]["pq"] > 0.1, "no objects found: a weak test"
    else:
        assert 0.05 < float(ours["miou"]["miou_19"]) < 1 and ours["pq"]["Stuff"]["pq"] > 0.01
    for group in ("All", "Things", "Stuff"):
        for m in ("pq", "sq", "rq"):
            assert _same(ours["pq"][group][m], panoptic[group][m], 1e-9), (group, m)
    assert _same(float(ours["miou"]["miou_19"]), semantic["averageScoreClasses"], 1e-9)
    assert _same(ours["ap"]["ap"], instance["averages"]["allAp"], 1e-9)
    assert _same(ours["ap"]["ap50"], instance["averages"]["allAp50%"], 1e-9)

    official = official_panoptic(root / "gtFine" / "cityscapes_panoptic_val.json",
                                 root / "gtFine" / "cityscapes_panoptic_val", pred / "panoptic.json",
                                 pred / "panoptic", tmp_path / "official_pan.json")
    for group in ("All", "Things", "Stuff"):
        for m in ("pq", "sq", "rq"):
            assert _same(official[group][m], panoptic[group][m], 1e-6), (group, m)
    official = official_semantic(root / "gtFine" / "val", pred / "semantic")
    assert _same(official["averageScoreClasses"], semantic["averageScoreClasses"], 1e-6)
    official = official_instance(root / "gtFine" / "val", pred / "instance", tmp_path / "work", min_region_size=1)
    assert _same(official["averages"]["allAp"], instance["averages"]["allAp"], 1e-6)
    assert _same(official["averages"]["allAp50%"], instance["averages"]["allAp50%"], 1e-6)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_predict_under_ddp_writes_the_same_files_as_one_process(trained, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "panoptic_st.cli", "predict", "--semantic", trained["semantic"], "--instance",
            trained["instance"], "--dataset", "cityscapes", "--root", str(trained["root"]), "--accelerator", "cpu",
            "--workers", "0", "--overlays"]
    for name, extra in (("one", []), ("ddp", ["--devices", "2", "--strategy", "ddp"])):
        done = subprocess.run([*base, "--out", str(tmp_path / name), *extra], env=env, capture_output=True,
                              text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    one, ddp = _files(tmp_path / "one"), _files(tmp_path / "ddp")
    assert len([f for f in one if f.startswith("semantic/")]) == 6
    assert one.keys() == ddp.keys()
    assert [f for f in one if one[f] != ddp[f]] == []


def test_rerun_skips_written_images_and_refuses_other_settings(trained, tmp_path, capsys):
    images = trained["root"] / "leftImg8bit" / "val"
    args = ["predict", "--semantic", trained["semantic"], "--images", str(images), "--out", str(tmp_path),
            "--accelerator", "cpu", "--workers", "0"]
    assert main(args) == 0
    written = _files(tmp_path)
    assert not (tmp_path / "panoptic.json").exists()  # a semantic-only prediction
    markers = sorted((tmp_path / ".done").rglob("*.json"))
    assert len(markers) == 6
    markers[2].unlink()
    capsys.readouterr()
    assert main(args) == 0
    assert "5 of 6 images already written" in capsys.readouterr().out
    assert _files(tmp_path) == written
    assert main([*args, "--scale", "0.5"]) == 1
    assert "other settings (scale)" in capsys.readouterr().err


def test_any_image_folder_keeps_its_layout(trained, tmp_path):
    import cv2

    source = next((trained["root"] / "leftImg8bit" / "val").rglob("*.png"))
    folder = tmp_path / "photos"
    (folder / "day 1").mkdir(parents=True)
    shutil.copy(source, folder / "day 1" / "a.png")
    cv2.imwrite(str(folder / "b.jpg"), cv2.imread(str(source)))
    assert main(["predict", "--semantic", trained["semantic"], "--instance", trained["instance"], "--images",
                 str(folder), "--out", str(tmp_path / "out"), "--accelerator", "cpu", "--workers", "0",
                 "--overlays"]) == 0
    out = tmp_path / "out"
    for path in ("semantic/day_1/a_pred_labelIds.png", "semantic/b_pred_labelIds.png", "instance/b_pred.txt",
                 "panoptic/day_1/a_panoptic.png", "overlays/b.png"):
        assert (out / path).is_file(), path
    index = json.loads((out / "panoptic.json").read_text())
    assert [a["file_name"] for a in index["annotations"]] == ["b_panoptic.png", "day_1/a_panoptic.png"]


def test_evaluate_writes_beside_the_checkpoint_and_names_its_masks(trained, tmp_path, capsys):
    cfg = load_config("toy/instance_baseline", trained["common"])
    in_gt = evaluate(cfg, trained["instance"])
    assert in_gt["masks"] == "gt" and "instance masks: gt" in capsys.readouterr().out
    saved = _strict_json(Path(trained["instance"]).with_name("final.eval.json"))
    assert saved["masks"] == "gt" and saved["metrics"]["val/ap50"] == in_gt["metrics"]["val/ap50"]
    masks = f"semantic:{trained['semantic']}"
    in_semantic = evaluate(cfg, trained["instance"], masks=masks, out=tmp_path / "e.json")
    saved = _strict_json(tmp_path / "e.json")
    assert saved["masks"] == masks and "val/pq" in saved["metrics"]
    assert in_semantic["metrics"]["val/ap50"] != in_gt["metrics"]["val/ap50"]
    assert any(v is None for v in saved["metrics"].values())  # classes without GT: null, not NaN


def test_bf16_mixed_trains_evaluates_and_predicts(trained, toy_root, tmp_path):
    bf16 = [*trained["common"][:-1], "trainer.precision=bf16-mixed", "trainer.max_steps=2"]
    semantic = train(load_config("toy/semantic_baseline", [*bf16, f"output_dir={tmp_path}/s"]))
    instance = train(load_config("toy/instance_baseline", [*bf16, f"output_dir={tmp_path}/i",
                                                           f"instance.semantic_checkpoint={semantic['checkpoint']}"]))
    assert "val/ap50" in instance["metrics"] and "val/miou19" in semantic["metrics"]
    evaluate(load_config("toy/instance_baseline", bf16), instance["checkpoint"],
             masks=f"semantic:{semantic['checkpoint']}", out=tmp_path / "e.json")
    assert _predict(trained, tmp_path / "pred", "--precision", "bf16-mixed") == 0
    predictor = PanopticPredictor.from_checkpoints(trained["semantic"], [trained["instance"]])
    dataset = CityscapesDataset(trained["root"], "val")
    full = score(predictor, dataset, CPU)["pq"]["All"]["pq"]
    half = score(predictor, dataset, {**CPU, "precision": "bf16-mixed"})["pq"]["All"]["pq"]
    assert abs(full - half) <= 0.01


def test_scaled_input_predicts_at_native_size():
    torch.manual_seed(0)
    semantic = torch.nn.Conv2d(3, 19, 3, padding=1)
    embed = torch.nn.Conv2d(3, 4, 3, padding=1)
    predictor = PanopticPredictor(semantic, [embed], [ClusteringSettings(min_size=1)], scale=0.5)
    (result,) = predictor.predict(torch.rand(1, 3, 32, 48))
    assert result["semantic"].shape == result["instances"].shape == result["panoptic"].shape == (32, 48)
    segments = result["segments"]
    assert segments["id"].tolist() == list(range(1, int(result["instances"].max()) + 1))
    assert segments["area"].tolist() == [int((result["instances"] == k).sum()) for k in segments["id"].tolist()]
    assert np.all((segments["score"] > 0).numpy() & (segments["score"] <= 1).numpy())
