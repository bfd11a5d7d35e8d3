"""`eval` CLI and the one-line EvaluationInputError for each kind of malformed input."""

from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from panoptic_st.evaluation import (
    EvaluationInputError,
    evaluate_instances,
    evaluate_panoptic,
    evaluate_semantic,
)
from panoptic_st.evaluation.commands import add_eval_commands, main
from panoptic_st.evaluation.synthetic import make_eval_fixture


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return make_eval_fixture(tmp_path_factory.mktemp("cmd"), n_images=3, seed=2)


@pytest.fixture
def fx(pristine, tmp_path):
    """A private copy that a test may break."""
    shutil.copytree(pristine.root, tmp_path / "fx")
    r = tmp_path / "fx"
    p = pristine
    return type(p)(
        r, r / p.gt_dir.relative_to(p.root), r / p.panoptic_gt_json.relative_to(p.root),
        r / p.panoptic_gt_dir.relative_to(p.root), r / p.semantic_pred_dir.relative_to(p.root),
        r / p.instance_pred_dir.relative_to(p.root), r / p.panoptic_pred_json.relative_to(p.root),
        r / p.panoptic_pred_dir.relative_to(p.root), p.images,
    )  # fmt: skip


def _raises(fn, *args, names):
    with pytest.raises(EvaluationInputError) as info:
        fn(*args)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(names) in msg, msg
    return msg


def _pan(fx):
    return fx.panoptic_gt_json, fx.panoptic_gt_dir, fx.panoptic_pred_json, fx.panoptic_pred_dir


def _edit_pred_json(fx, change):
    data = json.loads(fx.panoptic_pred_json.read_text())
    change(data["annotations"][0]["segments_info"], data)
    fx.panoptic_pred_json.write_text(json.dumps(data))
    return data["annotations"][0]


# ---- panoptic


def test_panoptic_missing_gt_json(fx):
    fx.panoptic_gt_json.unlink()
    _raises(evaluate_panoptic, *_pan(fx), names=fx.panoptic_gt_json)


def test_panoptic_missing_prediction_for_an_image(fx):
    _edit_pred_json(fx, lambda segs, data: data["annotations"].pop(0))
    _raises(evaluate_panoptic, *_pan(fx), names=fx.panoptic_pred_json)


def test_panoptic_missing_png(fx):
    ann = json.loads(fx.panoptic_pred_json.read_text())["annotations"][1]
    (fx.panoptic_pred_dir / ann["file_name"]).unlink()
    _raises(evaluate_panoptic, *_pan(fx), names=fx.panoptic_pred_dir / ann["file_name"])


def test_panoptic_size_mismatch(fx):
    ann = json.loads(fx.panoptic_pred_json.read_text())["annotations"][0]
    png = fx.panoptic_pred_dir / ann["file_name"]
    img = np.asarray(Image.open(png))
    Image.fromarray(np.ascontiguousarray(img[:, :-2])).save(png)
    msg = _raises(evaluate_panoptic, *_pan(fx), names=png)
    assert "differs" in msg


def test_panoptic_unknown_category(fx):
    def change(segs, data):
        segs[0]["category_id"] = 99

    _edit_pred_json(fx, change)
    msg = _raises(evaluate_panoptic, *_pan(fx), names=fx.panoptic_pred_json)
    assert "category" in msg


def test_panoptic_duplicate_segment_ids(fx):
    _edit_pred_json(fx, lambda segs, data: segs.append(dict(segs[0])))
    msg = _raises(evaluate_panoptic, *_pan(fx), names=fx.panoptic_pred_json)
    assert "duplicate" in msg


def test_panoptic_png_segment_missing_from_json(fx):
    ann = _edit_pred_json(fx, lambda segs, data: segs.pop(0))
    _raises(evaluate_panoptic, *_pan(fx), names=fx.panoptic_pred_dir / ann["file_name"])


def test_panoptic_json_segment_missing_from_png(fx):
    _edit_pred_json(fx, lambda segs, data: segs.append({"id": 12345, "category_id": 26, "iscrowd": 0}))
    msg = _raises(evaluate_panoptic, *_pan(fx), names=fx.panoptic_pred_json)
    assert "12345" in msg


# ---- semantic


def _first_sem(fx):
    return min(fx.semantic_pred_dir.rglob("*.png"))


def test_semantic_size_mismatch(fx):
    png = _first_sem(fx)
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(png)
    _raises(evaluate_semantic, fx.gt_dir, fx.semantic_pred_dir, names=png)


def test_semantic_missing_prediction(fx):
    png = _first_sem(fx)
    png.unlink()
    gt = min(fx.gt_dir.rglob("*_gtFine_labelIds.png"))
    _raises(evaluate_semantic, fx.gt_dir, fx.semantic_pred_dir, names=gt)


def test_semantic_two_predictions_for_one_image(fx):
    png = _first_sem(fx)
    shutil.copy(png, png.with_name(png.stem + "_copy.png"))
    msg = _raises(evaluate_semantic, fx.gt_dir, fx.semantic_pred_dir, names=png.name.split("_pred")[0])
    assert "several" in msg


def test_semantic_unknown_label_id(fx):
    png = _first_sem(fx)
    arr = np.asarray(Image.open(png)).copy()
    arr[0, 0] = 200
    Image.fromarray(arr).save(png)
    _raises(evaluate_semantic, fx.gt_dir, fx.semantic_pred_dir, names=png)


def test_semantic_colour_prediction(fx):
    png = _first_sem(fx)
    arr = np.asarray(Image.open(png))
    Image.fromarray(np.dstack([arr, arr, arr])).save(png)
    _raises(evaluate_semantic, fx.gt_dir, fx.semantic_pred_dir, names=png)


# ---- instance


def _first_txt(fx):
    return min(fx.instance_pred_dir.rglob("*.txt"))


@pytest.mark.parametrize(
    "line, expect",
    [
        ("masks/whatever.png 26\n", "expected"),
        ("masks/nonexistent.png 26 0.5\n", "nonexistent.png"),
        ("../../outside.png 26 0.5\n", "outside"),
        ("masks/{mask} 77 0.5\n", "unknown label id"),
    ],
)
def test_instance_bad_result_lines(fx, line, expect):
    txt = _first_txt(fx)
    mask = min((txt.parent / "masks").iterdir()).name
    txt.write_text(txt.read_text() + line.format(mask=mask))
    msg = _raises(evaluate_instances, fx.gt_dir, fx.instance_pred_dir, names=txt.parent)
    assert expect in msg


def test_instance_mask_size_mismatch(fx):
    txt = _first_txt(fx)
    rel = txt.read_text().splitlines()[0].split()[0]
    Image.fromarray(np.full((5, 5), 255, np.uint8)).save(txt.parent / rel)
    _raises(evaluate_instances, fx.gt_dir, fx.instance_pred_dir, names=rel)


# ---- command line


def _cli_args(fx, task):
    if task == "panoptic":
        return ["eval", "panoptic", "--gt-json", str(fx.panoptic_gt_json), "--gt-dir", str(fx.panoptic_gt_dir),
                "--pred-json", str(fx.panoptic_pred_json), "--pred-dir", str(fx.panoptic_pred_dir)]  # fmt: skip
    pred = fx.semantic_pred_dir if task == "semantic" else fx.instance_pred_dir
    return ["eval", task, "--gt-dir", str(fx.gt_dir), "--pred-dir", str(pred)]


@pytest.mark.parametrize("task", ["panoptic", "semantic", "instance"])
def test_cli_writes_results(fx, tmp_path, capsys, task):
    out = tmp_path / f"{task}.json"
    assert main(_cli_args(fx, task) + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert out.with_suffix(".md").exists()
    if task == "panoptic":
        ref = evaluate_panoptic(*_pan(fx))
        assert res["All"]["pq"] == pytest.approx(ref["All"]["pq"]) and "All" in printed
    elif task == "semantic":
        ref = evaluate_semantic(fx.gt_dir, fx.semantic_pred_dir)
        assert (
            res["averageScoreClasses"] == pytest.approx(ref["averageScoreClasses"]) and "mIoU (19)" in printed
        )
    else:
        ref = evaluate_instances(fx.gt_dir, fx.instance_pred_dir)
        assert res["averages"]["allAp"] == pytest.approx(ref["averages"]["allAp"]) and "average" in printed


@pytest.mark.parametrize("task", ["panoptic", "semantic", "instance"])
def test_cli_reports_bad_input_in_one_line(fx, capsys, task):
    shutil.rmtree(fx.gt_dir if task != "panoptic" else fx.panoptic_gt_dir)
    assert main(_cli_args(fx, task)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_add_eval_commands_on_a_foreign_parser():
    parser = argparse.ArgumentParser()
    add_eval_commands(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["eval", "semantic", "--gt-dir", "a", "--pred-dir", "b"])
    assert callable(args.func) and str(args.gt_dir) == "a" and args.out is None
