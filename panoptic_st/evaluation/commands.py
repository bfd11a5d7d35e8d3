"""``eval`` command line: official-format result files in, tables and JSON out.

``add_eval_commands(subparsers)`` registers on an argparse subparsers object::

    eval panoptic --gt-json F --gt-dir D --pred-json F --pred-dir D [--out F]
    eval semantic --gt-dir D --pred-dir D [--out F]
    eval instance --gt-dir D --pred-dir D [--out F]

Each sets ``func`` on the parsed namespace; ``args.func(args)`` prints a table, writes the results as JSON to
``--out`` (and a Markdown table beside it, ``.md``) and returns 0; a malformed input raises
:class:`EvaluationInputError` and a failed write an ``OSError`` naming the file, which ``panoptic_st.cli.main``
prints as one ``error: ...`` line. ``main(argv)`` is ``panoptic_st.cli.main``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from cityscapesscripts.helpers.labels import id2label

__all__ = ["add_eval_commands", "main"]


def _fmt(x: float, scale: float = 100.0) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{scale * x:5.1f}"


def _write(out: Path | None, results: dict, table: str) -> None:
    print(table)
    if out is None:
        return
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((out, json.dumps(_strict(results), indent=2, sort_keys=True, default=str, allow_nan=False)),
                       (out.with_suffix(".md"), "```\n" + table + "\n```\n")):
        try:
            path.write_text(text)
        except OSError as err:  # a write that fails at flush (disk full) names no file
            raise OSError(err.errno, err.strerror, str(path)) from None
    print(f"results written to {out}")


def _strict(value):
    """NaN and infinity as null, so the JSON loads with any strict parser."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def _panoptic_table(res: dict) -> str:
    lines = [f"{'class':14s} |    PQ    SQ    RQ   PQ+", "-" * 40]
    for cid in sorted(res["per_class"]):
        e = res["per_class"][cid]
        name = id2label[cid].name if cid in id2label else str(cid)
        lines.append(f"{name:14s} | {_fmt(e['pq'])} {_fmt(e['sq'])} {_fmt(e['rq'])} {_fmt(e.get('pq_plus'))}")
    lines += ["-" * 40, f"{'':14s} |    PQ    SQ    RQ   PQ+    N"]
    for name in ("All", "Things", "Stuff"):
        e = res[name]
        lines.append(
            f"{name:14s} | {_fmt(e['pq'])} {_fmt(e['sq'])} {_fmt(e['rq'])} {_fmt(e.get('pq_plus'))} {e['n']:4d}"
        )
    return "\n".join(lines)


def _semantic_table(res: dict) -> str:
    lines = [f"{'class':14s} |   IoU", "-" * 22]
    lines += [f"{name:14s} | {_fmt(v)}" for name, v in res["trainIdIoU"].items()]
    lines.append("-" * 22)
    lines += [f"{'mIoU (' + n + ')':14s} | {_fmt(v)}" for n, v in res["averageScoreProtocols"].items()]
    lines.append(f"{'categories':14s} | {_fmt(res['averageScoreCategories'])}")
    return "\n".join(lines)


def _instance_table(res: dict) -> str:
    avg = res["averages"]
    lines = [f"{'class':14s} |    AP  AP50", "-" * 28]
    lines += [f"{name:14s} | {_fmt(v['ap'])} {_fmt(v['ap50%'])}" for name, v in avg["classes"].items()]
    lines += ["-" * 28, f"{'average':14s} | {_fmt(avg['allAp'])} {_fmt(avg['allAp50%'])}"]
    return "\n".join(lines)


def run_panoptic(args: argparse.Namespace) -> int:
    from panoptic_st.evaluation.panoptic import evaluate_panoptic

    res = evaluate_panoptic(
        args.gt_json, args.gt_dir, args.pred_json, args.pred_dir, pq_plus=True, workers=args.workers,
        progress=sys.stderr.isatty(),
    )  # fmt: skip
    _write(args.out, res, _panoptic_table(res))
    return 0


def run_semantic(args: argparse.Namespace) -> int:
    from panoptic_st.evaluation.semantic import evaluate_semantic

    res = evaluate_semantic(args.gt_dir, args.pred_dir, workers=args.workers, progress=sys.stderr.isatty())
    _write(args.out, res, _semantic_table(res))
    return 0


def run_instance(args: argparse.Namespace) -> int:
    from panoptic_st.evaluation.instance import evaluate_instances

    res = evaluate_instances(
        args.gt_dir, args.pred_dir, workers=args.workers, progress=sys.stderr.isatty(),
        min_region_size=args.min_region_size,
    )
    _write(args.out, res, _instance_table(res))
    return 0


def _region_size(text: str) -> int | None:
    if text == "scaled":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'scaled', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_eval_commands(subparsers) -> argparse.ArgumentParser:
    """Register ``eval {panoptic,semantic,instance}`` on ``subparsers``; returns the ``eval`` parser."""
    ev = subparsers.add_parser(
        "eval", help="evaluate Cityscapes-format result files (same numbers as the official scripts)"
    )
    sub = ev.add_subparsers(dest="eval_task", metavar="{panoptic,semantic,instance}")
    sub.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", type=Path, default=None, help="write the results as JSON (and a .md table)")
        p.add_argument("--workers", type=int, default=None, help="threads (default: up to 2)")

    pan = sub.add_parser("panoptic", help="PQ/SQ/RQ and PQ+ from COCO panoptic JSON + PNGs")
    pan.add_argument("--gt-json", type=Path, required=True, help="e.g. gtFine/cityscapes_panoptic_val.json")
    pan.add_argument("--gt-dir", type=Path, required=True, help="e.g. gtFine/cityscapes_panoptic_val")
    pan.add_argument("--pred-json", type=Path, required=True)
    pan.add_argument("--pred-dir", type=Path, required=True)
    common(pan)
    pan.set_defaults(func=run_panoptic)

    sem = sub.add_parser("semantic", help="IoU / mIoU from label-id PNGs")
    sem.add_argument(
        "--gt-dir", type=Path, required=True, help="folder with *_gtFine_labelIds.png (recursive)"
    )
    sem.add_argument("--pred-dir", type=Path, required=True, help="folder with {city}_{seq}_{frame}*.png")
    common(sem)
    sem.set_defaults(func=run_semantic)

    ins = sub.add_parser("instance", help="AP / AP50 from .txt result lists and mask PNGs")
    ins.add_argument("--gt-dir", type=Path, required=True, help="folder with *_gtFine_instanceIds.png")
    ins.add_argument("--pred-dir", type=Path, required=True, help="folder with {city}_{seq}_{frame}*.txt")
    ins.add_argument("--min-region-size", type=_region_size, default=100, metavar="N|scaled",
                     help="ignore GT instances under N px (official: 100); 'scaled': 100 px at 2048x1024 scaled to "
                          "each image (downscaled data such as the toy)")
    common(ins)
    ins.set_defaults(func=run_instance)
    return ev


def main(argv: list[str] | None = None) -> int:
    """``python -m panoptic_st.evaluation.commands eval panoptic ...``: the ``panoptic-st`` command line."""
    from panoptic_st.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
