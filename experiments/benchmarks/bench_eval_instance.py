"""Benchmark: official ``evalInstanceLevelSemanticLabeling`` vs ``panoptic_st.evaluation.instance``.

Generates 8 Cityscapes-like GT images at 2048x1024 with instance predictions (``.txt`` lists + mask PNGs, from
``panoptic_st.evaluation.synthetic``) and times both evaluators on the same files in alternating pairs (target:
>= 3x). The official run includes building its GT instance cache (fresh, as on a first run). Two prediction sets:
masks written by ``panoptic_st.evaluation.export.write_instance_prediction`` and masks written by PIL (some as RGB).
The official script runs on one process; ours gets the same number of workers (``--workers``, default 1).

    python experiments/benchmarks/bench_eval_instance.py [--images 8] [--pairs 5] [--workers 1]
"""

from __future__ import annotations

import sys

from bench_eval_pairs import full_size_fixture, single_process_arguments, time_pairs

from panoptic_st.evaluation.export import write_instance_prediction
from panoptic_st.evaluation.instance import evaluate_instances
from panoptic_st.evaluation.official import official_instance
from panoptic_st.evaluation.synthetic import to_contract


def official_metrics(result: dict) -> dict:
    return {"averages": result["averages"], "resultApMatrix": result["resultApMatrix"]}


def main(argv=None) -> int:
    args = single_process_arguments(__doc__, argv)
    with full_size_fixture("bench_ap_", args.images) as (fx, root):
        print(f"{sum(len(im.pred_masks) for im in fx.images)} predicted masks")
        exported = root / "exported"
        for im in fx.images:
            c = to_contract(im)
            write_instance_prediction(exported, im.prefix, c["pred_masks"], c["pred_labels"], c["pred_scores"])
        ok = True
        for name, pred_dir in (("masks written by export.py", exported), ("masks written by PIL", fx.instance_pred_dir)):
            _, diff = time_pairs(
                name,
                lambda: official_instance(fx.gt_dir, pred_dir, root / "work"),  # noqa: B023  (removes its GT cache)
                lambda: evaluate_instances(fx.gt_dir, pred_dir, workers=args.workers),  # noqa: B023
                official_metrics,
                args.pairs,
            )
            ok &= diff == 0.0
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
