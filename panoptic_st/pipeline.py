"""The stages of a full run on the toy benchmark, chained: data -> checks -> (training stages) -> report."""

from __future__ import annotations

import json
import time
from pathlib import Path

from panoptic_st.data.check import CheckReport, check_dataset
from panoptic_st.data.labels import CLASS_NAMES

TOY_FORMATS = (("synthia", "synthia"), ("gta5", "gta5"), ("cityscapes", "cityscapes"))
QUICK_TOY = dict(n_source=60, n_target=60, n_val=20)


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
    lines = ["| class | " + " | ".join(f"{n} px %" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    shares = {n: 100.0 * r.class_pixels[:-1] / max(int(r.class_pixels[:-1].sum()), 1) for n, r in reports.items()}
    for c, cls in enumerate(CLASS_NAMES):
        lines.append(f"| {cls} | " + " | ".join(f"{shares[n][c]:.2f}" for n in names) + " |")
    lines.append("| images | " + " | ".join(str(reports[n].items) for n in names) + " |")
    return "\n".join(lines)


def run_demo(out: Path, data_root: Path, seed: int = 0, quick: bool = False) -> dict:
    """The whole method end to end on the toy benchmark; prints and saves the results in `out`."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    ensure_toy_data(data_root, seed, quick)
    reports = check_toy_data(data_root)
    table = class_statistics_table(reports)
    print("\nPer-domain class statistics (share of labelled pixels):\n" + table)
    results = {
        "data_root": str(data_root),
        "class_pixels": {n: r.class_pixels.tolist() for n, r in reports.items()},
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "report.md").write_text(f"# panoptic_st demo\n\n## Toy data class statistics\n\n{table}\n")
    print(f"\nresults saved to {out / 'report.md'} and {out / 'results.json'}")
    return results
