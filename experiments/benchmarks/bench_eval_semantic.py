"""Benchmark: official ``evalPixelLevelSemanticLabeling`` vs ``panoptic_st.evaluation.semantic.evaluate_semantic``.

Generates Cityscapes-like ``*_gtFine_labelIds.png`` ground truth and label-id predictions at 2048x1024
(``panoptic_st.evaluation.synthetic``) and times both evaluators on the same files in alternating pairs, for the
predictions written by PIL (the fixture's, with void ids) and for the same trainId maps written by
``panoptic_st.evaluation.export.write_semantic_prediction``. The official script runs on one process (without its
instance-level nIoU, which ours does not reproduce); ours gets ``--workers`` threads (default 1).

    python experiments/benchmarks/bench_eval_semantic.py [--images 8] [--pairs 5] [--workers 1]
"""

from __future__ import annotations

import sys

from bench_eval_pairs import full_size_fixture, single_process_arguments, time_pairs

from panoptic_st.evaluation.export import write_semantic_prediction
from panoptic_st.evaluation.official import official_semantic
from panoptic_st.evaluation.semantic import evaluate_semantic
from panoptic_st.evaluation.synthetic import to_contract

METRICS = ("confMatrix", "classScores", "averageScoreClasses", "categoryScores", "averageScoreCategories")


def official_metrics(result: dict) -> dict:
    return {key: result[key] for key in METRICS}


def main(argv=None) -> int:
    args = single_process_arguments(__doc__, argv)
    with full_size_fixture("bench_sem_", args.images) as (fx, root):
        exported = root / "exported"
        for im in fx.images:
            write_semantic_prediction(exported, im.prefix, to_contract(im)["pred_semantic"])
        ok = True
        for name, pred_dir in (("predictions written by PIL", fx.semantic_pred_dir),
                               ("predictions written by export.py", exported)):
            _, diff = time_pairs(
                name,
                lambda: official_semantic(fx.gt_dir, pred_dir),  # noqa: B023
                lambda: evaluate_semantic(fx.gt_dir, pred_dir, workers=args.workers),  # noqa: B023
                official_metrics,
                args.pairs,
            )
            ok &= diff < 1e-12
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
