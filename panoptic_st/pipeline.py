"""The whole method on the toy benchmark: data -> semantic baseline -> semantic self-training -> instance baseline
-> instance self-training -> panoptic merge -> evaluation of baseline against self-trained, as report files."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from panoptic_st.data.check import CheckReport, check_dataset
from panoptic_st.data.cityscapes import CityscapesDataset
from panoptic_st.data.labels import CLASS_NAMES, NUM_CLASSES
from panoptic_st.panoptic.predictor import PanopticPredictor
from panoptic_st.prediction import score
from panoptic_st.stages import Stage, run_chain, train_stage
from panoptic_st.viz import save_panoptic_panel, save_per_class_bars

TOY_FORMATS = (("synthia", "synthia"), ("gta5", "gta5"), ("cityscapes", "cityscapes"))
QUICK_TOY = {"n_source": 60, "n_target": 60, "n_val": 20}


DEMO_STAGES = (
    Stage("toy/semantic_baseline", name="semantic_baseline"),
    Stage("toy/semantic_selftrain", "semantic_baseline", name="semantic_self_train"),
    Stage("toy/instance_baseline", overrides=("trainer.limit_val_batches=0",), name="instance_baseline"),
    Stage("toy/instance_selftrain", "instance_baseline", "semantic_self_train",
          overrides=("trainer.limit_val_batches=0",), name="instance_self_train"),
)
"""The demo's stages in run order; each trains the steps of its config (`trainer.max_steps`)."""
QUICK_STEPS = {"semantic_baseline": 20, "semantic_self_train": 10, "instance_baseline": 20, "instance_self_train": 5}
"""Training steps of each stage in a quick demo (`--quick`), instead of its config's."""


class StageClock:
    """Wall seconds of each named part of a run, printed as each part ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def timing(self, name: str) -> Iterator[None]:
        """Time the body under `name`."""
        start = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - start, 1)
        print(f"[time] {name}: {self.seconds[name]:.1f} s", flush=True)

    def table(self) -> str:
        """Markdown table of the seconds of every part, in run order."""
        rows = [f"| {name} | {seconds:.1f} |" for name, seconds in self.seconds.items()]
        return "\n".join(["| stage | seconds |", "|---|---:|", *rows])


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


def demo_stages(out: Path, quick: bool) -> list[Stage]:
    """The demo's stages writing to `out/<stage>`, with the quick step counts when `quick`."""
    def steps(stage: Stage) -> tuple[str, ...]:
        return (f"trainer.max_steps={QUICK_STEPS[stage.name]}",) if quick else ()

    return [dataclasses.replace(stage, overrides=(*stage.overrides, *steps(stage)), output_dir=out / stage.name)
            for stage in DEMO_STAGES]


def run_stages(out: Path, data_root: Path, seed: int, quick: bool = False, overrides: Sequence[str] = (),
               clock: StageClock | None = None) -> dict[str, dict]:
    """Train the demo's four stages in order (a stage that already finished with the same config is reused);
    `overrides` apply to every stage. Returns {stage: train result}; `clock` times each stage."""
    clock = clock or StageClock()

    def timed(stage: Stage, stage_overrides: list[str]) -> dict:
        with clock.timing(f"train {stage.name}"):
            return train_stage(stage, stage_overrides)

    return run_chain(demo_stages(out, quick), timed, common=[f"seed={seed}", f"data.root={data_root}", *overrides])


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


PAIRS = {"baseline": ("semantic_baseline", "instance_baseline"),
         "self-trained": ("semantic_self_train", "instance_self_train")}


def run_demo(out: Path, data_root: Path, seed: int = 0, quick: bool = False, overrides: Sequence[str] = ()) -> dict:
    """The whole method end to end on the toy benchmark; prints and saves the results, with the seconds of each
    stage, in `out`. `overrides` apply to every training stage."""
    start, clock = time.perf_counter(), StageClock()
    out.mkdir(parents=True, exist_ok=True)
    with clock.timing("toy data"):
        ensure_toy_data(data_root, seed, quick)
    with clock.timing("data check"):
        stats_table = class_statistics_table(check_toy_data(data_root))
    print("\nPer-domain class statistics (share of labelled pixels):\n" + stats_table)
    # The data check above read every image; the stages need not read them all again before training.
    stages = run_stages(out, data_root, seed, quick, ("data.check_on_setup=false", *overrides), clock)
    results = {}
    for name, (semantic, instance) in PAIRS.items():
        with clock.timing(f"evaluate {name}"):
            results[name] = evaluate_pair(stages[semantic]["checkpoint"], stages[instance]["checkpoint"],
                                          data_root / "cityscapes", label=name)
    table = panoptic_table(results)
    print(f"\nPanoptic segmentation on toy Cityscapes val (19 classes unless noted):\n{table}")
    with clock.timing("figures"):
        save_figures(out / "figures", results)
    seconds = time.perf_counter() - start
    print(f"\nTime per stage ({seconds / 60:.1f} min in all):\n{clock.table()}")
    summary = {"seed": seed, "quick": quick, "seconds": round(seconds, 1), "stage_seconds": clock.seconds,
               "data_root": str(data_root), "stages": stages, "results": _json_ready(results)}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(
        f"# panoptic_st demo (seed {seed}{', quick' if quick else ''})\n\n"
        f"## Panoptic results on toy Cityscapes val\n\n{table}\n\n"
        "Figures: `figures/panoptic_*.png` (overlays), `figures/per_class_pq.png`, `figures/per_class_iou.png`.\n\n"
        f"## Toy data class statistics\n\n{stats_table}\n\n"
        f"## Time per stage\n\n{clock.table()}\n\nTotal time: {seconds / 60:.1f} min.\n")
    print(f"\nresults saved to {out / 'report.md'}, {out / 'results.json'} and {out / 'figures'}/")
    return summary
