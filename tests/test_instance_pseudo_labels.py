import pytest
import torch

from panoptic_st.config import InstanceConfig
from panoptic_st.data.labels import IGNORE_INDEX, train_id
from panoptic_st.instance.module import InstanceModule
from panoptic_st.instance.pseudo_labels import (
    drop_unconfident_instances,
    drop_unstable_instances,
    instance_predictions,
    instance_pseudo_labels,
    postprocess_instances,
)
from panoptic_st.instance.statistics import match_counts, pseudo_label_kinds
from panoptic_st.ops.segments import keep_random_segments

CAR, PERSON, ROAD = train_id("car"), train_id("person"), train_id("road")


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: mean-shift on these few pixels is faster without thread hand-offs on a shared CPU."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def scene(split_car: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Embeddings [4,40,60] and trainIds [40,60] with two cars, one person, a 10-px car speck and road.

    The person has the same embedding as the first car (clusters are per class). With `split_car`, the
    first car's embeddings form two modes 1.0 apart (mean-shift splits them, mean-shift+ merges them).
    """
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(4, 40, 60, generator=g) * 3.0
    semantic = torch.full((40, 60), ROAD)
    masks = {name: torch.zeros(40, 60, dtype=torch.bool) for name in ("car_a", "car_b", "person", "speck")}
    masks["car_a"][2:14, 2:20] = True
    masks["car_b"][20:30, 5:25] = True
    masks["person"][5:35, 40:50] = True
    masks["speck"][36:38, 30:35] = True
    centres = {"car_a": (0.0, 0.0), "car_b": (5.0, 0.0), "person": (0.0, 0.0), "speck": (0.0, 9.0)}
    for name, mask in masks.items():
        emb[:2, mask] = torch.tensor(centres[name])[:, None]
        emb[2:, mask] = 0.0
        emb[:, mask] += 0.05 * torch.randn(4, int(mask.sum()), generator=g)
        semantic[mask] = PERSON if name == "person" else CAR
    if split_car:
        emb[2, 2:14, 2:11] += 1.0
    return emb, semantic, masks


@pytest.mark.parametrize("method", ["meanshift+", "meanshift", "agglomerative"])
def test_three_objects_two_classes(method):
    emb, semantic, masks = scene()
    instances, classes = instance_pseudo_labels(emb, semantic, method=method)
    assert instances.dtype == torch.long and instances.shape == (40, 60)
    assert classes[0] == IGNORE_INDEX
    ids = [i for i in instances.unique().tolist() if i]
    assert len(ids) == 3 and classes.numel() == 4
    found = {}
    for name in ("car_a", "car_b", "person"):
        inside = instances[masks[name]].unique()
        assert inside.numel() == 1 and inside.item() > 0, name
        assert torch.equal(instances == inside.item(), masks[name]), name
        found[name] = classes[inside.item()].item()
    assert found == {"car_a": CAR, "car_b": CAR, "person": PERSON}
    assert (instances[masks["speck"]] == 0).all()
    assert (instances[semantic == ROAD] == 0).all()


def test_meanshift_plus_merges_split_object():
    emb, semantic, masks = scene(split_car=True)
    plain, _ = instance_pseudo_labels(emb, semantic, method="meanshift")
    merged, classes = instance_pseudo_labels(emb, semantic, method="meanshift+")
    assert instances_in(plain, masks["car_a"]) == 2
    assert instances_in(merged, masks["car_a"]) == 1
    assert (merged > 0).sum() == sum(int(masks[n].sum()) for n in ("car_a", "car_b", "person"))
    assert sorted(classes[1:].tolist()) == sorted([CAR, CAR, PERSON])


def instances_in(instances: torch.Tensor, mask: torch.Tensor) -> int:
    return int((instances[mask].unique() > 0).sum())


def test_min_size_and_thing_classes():
    emb, semantic, masks = scene()
    instances, classes = instance_pseudo_labels(emb, semantic, min_size=201)  # car_b has 200 px
    assert instances_in(instances, masks["car_b"]) == 0
    assert instances_in(instances, masks["car_a"]) == 1
    only_person, classes = instance_pseudo_labels(emb, semantic, thing_classes=(PERSON,))
    assert classes.tolist() == [IGNORE_INDEX, PERSON]
    assert torch.equal(only_person > 0, masks["person"])


def test_no_things_and_bad_arguments():
    emb = torch.randn(4, 8, 8)
    instances, classes = instance_pseudo_labels(emb, torch.full((8, 8), ROAD))
    assert instances.sum() == 0 and classes.tolist() == [IGNORE_INDEX]
    with pytest.raises(ValueError, match="method"):
        instance_pseudo_labels(emb, torch.zeros(8, 8, dtype=torch.long), method="kmeans")
    with pytest.raises(ValueError, match="semantic"):
        instance_pseudo_labels(emb, torch.zeros(8, 9, dtype=torch.long))


def test_postprocess_removes_one_pixel_spurs():
    instances = torch.zeros(30, 40, dtype=torch.long)
    instances[5:15, 5:15] = 1
    instances[10, 15:30] = 1  # 1-px spur
    instances[20:28, 20:35] = 2
    instances[27, 0:20] = 3  # an instance that is only a line
    instances[2:4, 20:38] = 4  # a 2-px bar is thinner than the 3x3 opening
    out = postprocess_instances(instances, kernel=3)
    blob = torch.zeros_like(instances)
    blob[5:15, 5:15] = 1
    blob[20:28, 20:35] = 2
    assert torch.equal(out, blob)


def test_postprocess_keeps_image_border_and_fills_nothing():
    instances = torch.zeros(10, 10, dtype=torch.long)
    instances[0:4, 0:4] = 5
    instances[2, 2] = 0  # opening never adds pixels: the hole stays
    out = postprocess_instances(instances, kernel=3)
    assert (out[instances == 0] == 0).all()
    assert out[0, 0] == 5  # the border does not erode
    with pytest.raises(ValueError, match="kernel"):
        postprocess_instances(instances, kernel=2)


def test_instance_predictions_scores_and_classes():
    instances = torch.zeros(4, 6, dtype=torch.long)
    instances[:2, :3] = 1
    instances[2:, 3:] = 4
    probs = torch.zeros(3, 4, 6)
    probs[0] = 0.2
    probs[1, :2, :3] = torch.tensor([[0.6, 0.7, 0.8], [0.9, 0.5, 0.7]])
    probs[2, 2:, 3:] = 0.8
    probs[1, 2:, 3:] = 0.0
    masks, classes, scores = instance_predictions(instances, probs)
    assert masks.shape == (2, 4, 6) and masks.dtype == torch.bool
    assert torch.equal(masks[0], instances == 1) and torch.equal(masks[1], instances == 4)
    assert classes.tolist() == [1, 2]
    assert scores.tolist() == pytest.approx([0.7, 0.8])
    table = torch.tensor([IGNORE_INDEX, 0, 0, 0, 0])
    _, classes, scores = instance_predictions(instances, probs, table)
    assert classes.tolist() == [0, 0] and scores.tolist() == pytest.approx([0.2, 0.2])
    empty = instance_predictions(torch.zeros(4, 6, dtype=torch.long), probs)
    assert empty[0].shape == (0, 4, 6) and empty[1].numel() == 0 and empty[2].numel() == 0


def test_unconfident_pseudo_instances_become_unlabelled():
    instances = torch.zeros(4, 6, dtype=torch.long)
    instances[:2, :3] = 1
    instances[2:, 3:] = 4
    table = torch.tensor([IGNORE_INDEX, 1, 1, 1, 2])
    probs = torch.zeros(3, 4, 6)
    probs[1, :2, :3] = torch.tensor([[0.6, 0.7, 0.8], [0.9, 0.5, 0.7]])  # instance 1 (class 1): mean 0.7
    probs[2, 2:, 3:] = 0.9  # instance 4 (class 2): mean 0.9
    kept = drop_unconfident_instances(instances, table, probs, min_confidence=0.8)
    assert (kept[:2, :3] == 0).all() and (kept[2:, 3:] == 4).all() and (kept[instances == 0] == 0).all()
    assert torch.equal(drop_unconfident_instances(instances, table, probs, 0.65), instances)
    assert torch.equal(drop_unconfident_instances(instances, table, probs, 0.0), instances)
    assert (drop_unconfident_instances(instances, table, probs, 0.95) == 0).all()
    empty = torch.zeros(4, 6, dtype=torch.long)
    assert torch.equal(drop_unconfident_instances(empty, table[:1], probs, 0.8), empty)


def test_confidence_threshold_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="pseudo_label_min_confidence"):
        InstanceModule(InstanceConfig(pseudo_label_min_confidence=80.0))


def test_oracle_keeps_whole_instances_at_the_given_rate():
    instances = torch.arange(1, 1001).repeat_interleave(4).view(100, 40)  # 1000 instances of 4 pixels
    assert torch.equal(keep_random_segments(instances, 1.0), instances)
    kept = keep_random_segments(instances, 0.3, torch.Generator().manual_seed(0))
    whole = [(kept[instances == i] == i).all() or (kept[instances == i] == 0).all() for i in range(1, 1001)]
    assert all(whole)
    share = (torch.unique(kept) > 0).sum().item() / 1000
    assert 0.25 < share < 0.35


@pytest.mark.parametrize("override", [{"pseudo_labels": "gt"}, {"oracle_fraction": 0.0}, {"oracle_fraction": 1.5},
                                      {"pseudo_label_stability_bandwidth": 0.0}, {"clustering": "kmeans"},
                                      {"consistency_max_angle": -1.0}, {"consistency_max_angle": 400.0}])
def test_invalid_pseudo_label_options_are_refused(override):
    with pytest.raises(ValueError, match=next(iter(override))):
        InstanceModule(InstanceConfig(**override))


def test_instances_that_split_at_a_finer_bandwidth_become_unlabelled():
    emb, semantic, masks = scene(split_car=True)
    merged, _ = instance_pseudo_labels(emb, semantic, method="meanshift+")  # car_a: one instance of two modes
    kept = drop_unstable_instances(merged, emb, bandwidth=0.5, min_size=50)
    assert (kept[masks["car_a"]] == 0).all()
    assert torch.equal(kept[masks["car_b"]], merged[masks["car_b"]]) and (kept[masks["car_b"]] > 0).all()
    assert torch.equal(kept[masks["person"]], merged[masks["person"]])
    assert torch.equal(drop_unstable_instances(merged, emb, bandwidth=1.5, min_size=50), merged)  # modes 1.0 apart
    assert torch.equal(drop_unstable_instances(merged, emb, bandwidth=0.5, min_size=200), merged)  # halves too small


def test_pseudo_label_kinds_sorts_pseudo_instances_by_their_error():
    """Hand-made maps: one exact object, one label over two touching objects, a fifth of an object, background."""
    truth = torch.zeros(10, 20, dtype=torch.long)
    truth[0:4, 0:4] = 1           # matched exactly
    truth[5:9, 0:4] = 2           # these two touch and are merged by one pseudo-instance
    truth[5:9, 4:8] = 3
    truth[0:4, 10:20] = 4         # only a fifth of it is labelled
    pseudo = torch.zeros_like(truth)
    pseudo[0:4, 0:4] = 7
    pseudo[5:9, 0:8] = 3
    pseudo[0:4, 10:12] = 9
    pseudo[6:9, 14:18] = 5        # background
    assert pseudo_label_kinds(pseudo, truth) == {"true": 1, "merge": 1, "fragment": 1, "other": 1}
    assert match_counts(pseudo, truth) == (1, 3)
    assert pseudo_label_kinds(pseudo, torch.zeros_like(truth)) == {"true": 0, "merge": 0, "fragment": 0, "other": 4}
    assert match_counts(torch.zeros_like(truth), truth) == (0, 0)



def toy_like_embeddings(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings [8,96,192] and trainIds [96,192] like the toy's: side-by-side cars and persons in bands (touching
    objects of one class), each object a noisy cluster around its own centre, road elsewhere."""
    g = torch.Generator().manual_seed(seed)
    emb = 0.5 * torch.randn(8, 96, 192, generator=g)
    semantic = torch.full((96, 192), ROAD)
    for cls, (top, bottom) in ((CAR, (50, 90)), (PERSON, (10, 45))):
        edges = torch.sort(torch.randint(20, 172, (4,), generator=g)).values.tolist()
        for left, right in zip([10, *edges], [*edges, 182]):
            semantic[top:bottom, left:right] = cls
            centre = 1.5 * torch.randn(8, 1, 1, generator=g)
            emb[:, top:bottom, left:right] = centre + 0.15 * torch.randn(8, bottom - top, right - left, generator=g)
    return emb, semantic


@pytest.mark.parametrize("seed", range(4))
def test_subsampled_clustering_matches_clustering_every_pixel(seed):
    """Mean-shift on a strided subset of each class mask (instance.pseudo_label_max_points), the other pixels taking
    their nearest mode, gives the pseudo-labels of clustering every pixel (adjusted Rand index >= 0.99)."""
    from sklearn.metrics import adjusted_rand_score

    emb, semantic = toy_like_embeddings(seed)
    exact, _ = instance_pseudo_labels(emb, semantic, (CAR, PERSON), min_size=15)
    capped, _ = instance_pseudo_labels(emb, semantic, (CAR, PERSON), min_size=15, max_points=512)
    assert int((semantic != ROAD).sum()) > 4 * 512
    assert adjusted_rand_score(exact.flatten().numpy(), capped.flatten().numpy()) >= 0.99
