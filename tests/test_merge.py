import torch

from panoptic_st.ops.geometry import warp_labels
from panoptic_st.ops.segments import fill_segments_with_majority_label, keep_random_segments
from panoptic_st.panoptic.merge import VOID, merge_panoptic, stuff_area_threshold

ROAD, SKY, PERSON, CAR = 0, 10, 11, 13


def test_stuff_threshold_scales_with_resolution():
    assert stuff_area_threshold(1024, 2048) == 2048
    assert stuff_area_threshold(512, 1024) == 512
    assert stuff_area_threshold(96, 192) == 18


def test_merge_majority_class_stuff_and_void():
    semantic = torch.tensor([
        [SKY, SKY, SKY, SKY, SKY, 255],
        [ROAD, CAR, CAR, PERSON, PERSON, CAR],
        [ROAD, CAR, PERSON, PERSON, ROAD, ROAD],
    ])
    instances = torch.tensor([
        [0, 0, 0, 0, 0, 0],
        [0, 7, 7, 9, 9, 0],
        [0, 7, 0, 9, 9, 0],
    ])
    pan = merge_panoptic(semantic, instances, stuff_area=3)
    expected = torch.tensor([
        [SKY * 1000] * 5 + [VOID],
        [ROAD * 1000, CAR * 1000 + 1, CAR * 1000 + 1, PERSON * 1000 + 1, PERSON * 1000 + 1, VOID],
        [ROAD * 1000, CAR * 1000 + 1, VOID, PERSON * 1000 + 1, PERSON * 1000 + 1, ROAD * 1000],
    ])
    # instance 7 (3 car px) is a car even where the semantic map says person; instance 9 has 3 person px vs a
    # road px, so it is a person; the car pixel without an instance (row 1, col 5) is void; road has 3 px >= 3
    assert torch.equal(pan, expected)
    small = merge_panoptic(semantic, instances, stuff_area=4)
    assert (small[pan == ROAD * 1000] == VOID).all() and (small[0, :5] == SKY * 1000).all()


def test_instances_without_thing_pixels_are_dropped():
    semantic = torch.full((2, 2), ROAD)
    pan = merge_panoptic(semantic, torch.tensor([[1, 1], [0, 0]]), stuff_area=1)
    assert torch.equal(pan, torch.tensor([[VOID, VOID], [0, 0]]))


def test_guided_refinement_overlays_majority_label():
    labels = torch.tensor([[[CAR, CAR, 255, PERSON], [ROAD, ROAD, 255, 255]]])
    instances = torch.tensor([[[1, 1, 1, 1], [0, 0, 2, 2]]])
    refined = fill_segments_with_majority_label(labels, instances)
    assert refined.tolist() == [[[CAR, CAR, CAR, CAR], [ROAD, ROAD, 255, 255]]]


def test_sample_instances_keeps_a_fraction():
    instances = torch.arange(10).repeat(3, 1)[None]
    kept = keep_random_segments(instances, 0.3, torch.Generator().manual_seed(0), exact_count=True)
    ids = kept.unique()
    assert len(ids[ids != 0]) == 3
    assert torch.equal(kept != 0, torch.isin(instances, ids[ids != 0]))


def test_labels_warp_into_views_with_nearest_neighbours():
    labels = torch.tensor([[[1, 2], [3, 4]]])
    flip = torch.tensor([[[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert warp_labels(labels, flip).tolist() == [[[2, 1], [4, 3]]]
