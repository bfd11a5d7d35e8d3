"""The whole method on the toy benchmark: data -> semantic baseline -> semantic self-training -> instance baseline
-> instance self-training -> panoptic merge -> evaluation of baseline against self-trained, as report files."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from panoptic_st.config import ExperimentConfig, load_config
from panoptic_st.data.check import CheckReport, check_dataset
from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.labels import CLASS_NAMES, NUM_CLASSES
from panoptic_st.panoptic.predictor import PanopticPredictor
from panoptic_st.prediction import score
from panoptic_st.training import train_or_reuse
from panoptic_st.viz import save_panoptic_panel, save_per_class_bars

TOY_FORMATS = (("synthia", "synthia"), ("gta5", "gta5"), ("cityscapes", "cityscapes"))
QUICK_TOY = {"n_source": 60, "n_target": 60, "n_val": 20}


@dataclass(frozen=True)
class DemoSchedule:
    """Training steps of each stage of the demo."""

    semantic_baseline: int = 300
    semantic_self_train: int = 300
    instance_baseline: int = 250
    instance_self_train: int = 100


QUICK_SCHEDULE = DemoSchedule(20, 10, 20, 5)


def ensure_toy_data(root: Path, seed: int, quick: bool) -> None:
    """Generate the toy benchmark unless `root` already holds it."""
    if (root / "cityscapes" / "leftImg8bit").is_dir():
        print(f"toy data: using {root}")
        return
    from panoptic_st.data.toy import make_toy

    result = make_toy(root, seed=seed, **(QUICK_TOY if quick else {}))
    print(f"toy data: generated in {root} in {result['seconds']:.1f} s")


def check_toy_data(root: Path) -> dict[str, CheckReport]:
    """Full check of the three toy datasets; raises on any defect."""
    reports = {}
    for name, fmt in TOY_FORMATS:
        report = check_dataset(root / name, fmt)
        if not report.ok:
            raise RuntimeError(report.summary())
        reports[name] = report
    return reports


def class_statistics_table(reports: dict[str, CheckReport]) -> str:
    """Markdown table: share of labelled pixels per class in each domain."""
    names = list(reports)
    lines = ["| class | " + " | ".join(f"{n} px %" for n in names) + " |", "|---|" + "---:|" * len(names)]
    shares = {n: 100.0 * r.class_pixels[:-1] / max(int(r.class_pixels[:-1].sum()), 1) for n, r in reports.items()}
    for c, cls in enumerate(CLASS_NAMES):
        lines.append(f"| {cls} | " + " | ".join(f"{shares[n][c]:.2f}" for n in names) + " |")
    lines.append("| images | " + " | ".join(str(reports[n].items) for n in names) + " |")
    return "\n".join(lines)


def _stage(experiment: str, out: Path, common: list[str], extra: list[str]) -> tuple[ExperimentConfig, dict]:
    cfg = load_config(experiment, [*common, f"output_dir={out}", *extra])
    print(f"\n== {experiment} -> {out} ({cfg.trainer.max_steps} steps)", flush=True)
    return cfg, train_or_reuse(cfg)


def run_stages(out: Path, data_root: Path, seed: int, schedule: DemoSchedule,
               overrides: tuple[str, ...] = ()) -> dict[str, tuple]:
    """Train the four stages in order (a stage that already finished with the same config is reused);
    `overrides` apply to every stage. Returns {stage: (config, result)}."""
    common = [f"seed={seed}", f"data.root={data_root}", *overrides]
    no_val = ["trainer.limit_val_batches=0"]
    stages = {}
    stages["semantic_baseline"] = _stage("toy/semantic_baseline", out / "semantic_baseline", common,
                                         [f"trainer.max_steps={schedule.semantic_baseline}"])
    sem_base = stages["semantic_baseline"][1]["checkpoint"]
    stages["semantic_self_train"] = _stage("toy/semantic_selftrain", out / "semantic_self_train", common, [
        f"trainer.max_steps={schedule.semantic_self_train}", f"semantic.init_checkpoint={sem_base}"])
    sem_self = stages["semantic_self_train"][1]["checkpoint"]
    stages["instance_baseline"] = _stage("toy/instance_baseline", out / "instance_baseline", common,
                                         [f"trainer.max_steps={schedule.instance_baseline}", *no_val])
    inst_base = stages["instance_baseline"][1]["checkpoint"]
    stages["instance_self_train"] = _stage("toy/instance_selftrain", out / "instance_self_train", common, [
        f"trainer.max_steps={schedule.instance_self_train}", f"instance.init_checkpoint={inst_base}",
        f"instance.semantic_checkpoint={sem_self}", *no_val])
    return stages


def evaluate_pair(semantic_ckpt: str | Path, instance_ckpt: str | Path, cityscapes_root: Path, label: str = "",
                  panels: int = 4) -> dict:
    """A semantic and an instance checkpoint through the predictor on Cityscapes val, scored in process (the same
    numbers as `panoptic-st predict` followed by `panoptic-st eval`, with the toy's scaled minimum region size)."""
    predictor = PanopticPredictor.from_checkpoints(semantic_ckpt, [instance_ckpt])
    print(f"panoptic evaluation {label}", flush=True)
    return score(predictor, CityscapesDataset(cityscapes_root, "val"), {"accelerator": "cpu", "progress": False},
                 batch_size=10, panels=panels)


def _row(name: str, r: dict) -> str:
    a, t, s = r["pq"]["All"], r["pq"]["Things"], r["pq"]["Stuff"]
    cells = [a["sq"], a["rq"], a["pq"], a["pq_plus"], t["sq"], t["rq"], t["pq"], s["sq"], s["rq"], s["pq"],
             r["pq16"]["All"]["pq"], float(r["miou"]["miou_19"]), r["ap"]["ap50"]]
    return f"| {name} | " + " | ".join(f"{100 * float(v):.2f}" for v in cells) + " |"


def panoptic_table(results: dict[str, dict]) -> str:
    """The thesis's panoptic table (SQ/RQ/PQ/PQ+ for all, things, stuff) with PQ-16, mIoU and AP50."""
    head = ("| model | SQ | RQ | PQ | PQ+ | SQ th | RQ th | PQ th | SQ st | RQ st | PQ st | PQ-16 | mIoU-19 | AP50 |\n"
            "|---|" + "---:|" * 13)
    return "\n".join([head, *(_row(name, r) for name, r in results.items())])


def _json_ready(results: dict[str, dict]) -> dict:
    def clean(value):
        if isinstance(value, torch.Tensor):
            return value.tolist() if value.numel() > 1 else float(value)
        if isinstance(value, dict):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, float) and np.isnan(value):
            return None
        return value

    return {name: clean({k: v for k, v in r.items() if k != "panels"}) for name, r in results.items()}


def _image(tensor: torch.Tensor) -> np.ndarray:
    return (tensor.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def save_figures(figures: Path, results: dict[str, dict]) -> None:
    """Panoptic overlays of the first validation images and per-class PQ bars."""
    figures.mkdir(parents=True, exist_ok=True)
    names = list(results)
    for k in range(len(results[names[0]]["panels"])):
        image, _, truth = results[names[0]]["panels"][k]
        rows = {name: results[name]["panels"][k][1].numpy() for name in names}
        save_panoptic_panel(figures / f"panoptic_{k}.png", _image(image), {**rows, "ground truth": truth.numpy()})
    per_class = {name: [r["pq"]["per_class"][c]["pq"] for c in range(NUM_CLASSES)] for name, r in results.items()}
    save_per_class_bars(figures / "per_class_pq.png", per_class, "PQ")
    iou = {name: r["miou"]["iou"].tolist() for name, r in results.items()}
    save_per_class_bars(figures / "per_class_iou.png", iou, "IoU")


def run_demo(out: Path, data_root: Path, seed: int = 0, quick: bool = False) -> dict:
    """The whole method end to end on the toy benchmark; prints and saves the results in `out`."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    ensure_toy_data(data_root, seed, quick)
    stats_table = class_statistics_table(check_toy_data(data_root))
    print("\nPer-domain class statistics (share of labelled pixels):\n" + stats_table)
    stages = run_stages(out, data_root, seed, QUICK_SCHEDULE if quick else DemoSchedule())
    pairs = {"baseline": ("semantic_baseline", "instance_baseline"),
             "self-trained": ("semantic_self_train", "instance_self_train")}
    results = {name: evaluate_pair(stages[s][1]["checkpoint"], stages[i][1]["checkpoint"], data_root / "cityscapes",
                                   label=name) for name, (s, i) in pairs.items()}
    table = panoptic_table(results)
    seconds = time.perf_counter() - start
    print(f"\nPanoptic segmentation on toy Cityscapes val (19 classes unless noted), {seconds / 60:.1f} min:\n{table}")
    save_figures(out / "figures", results)
    summary = {"seed": seed, "quick": quick, "seconds": round(seconds, 1), "data_root": str(data_root),
               "stages": {k: v[1] for k, v in stages.items()}, "results": _json_ready(results)}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(
        f"# panoptic_st demo (seed {seed}{', quick' if quick else ''})\n\n"
        f"## Panoptic results on toy Cityscapes val\n\n{table}\n\n"
        "Figures: `figures/panoptic_*.png` (overlays), `figures/per_class_pq.png`, `figures/per_class_iou.png`.\n\n"
        f"## Toy data class statistics\n\n{stats_table}\n\nTotal time: {seconds / 60:.1f} min.\n")
    print(f"\nresults saved to {out / 'report.md'}, {out / 'results.json'} and {out / 'figures'}/")
    return summary
