"""The evaluation fixtures of the tests: synthetic Cityscapes-format scenes and the official evaluators to compare
with, both importable from the package (``panoptic_st.evaluation.synthetic`` and ``.official``)."""

from panoptic_st.evaluation.official import official_instance, official_panoptic, official_semantic
from panoptic_st.evaluation.synthetic import EvalFixture, FixtureImage, make_eval_fixture, to_contract

__all__ = [
    "EvalFixture",
    "FixtureImage",
    "make_eval_fixture",
    "official_instance",
    "official_panoptic",
    "official_semantic",
    "to_contract",
]
