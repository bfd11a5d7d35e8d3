"""Spatial embeddings: the joint space [appearance, s * (x, y) + offset], its losses with hand-computed values, the
rotation of positions in the consistency view, clustering, and a spatial model trained, saved and predicted."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_overrides

from panoptic_st.config import ConfigError, load_config
from panoptic_st.instance.losses import (
    centre_offset_loss,
    instance_dice_loss,
    pull_loss,
    push_loss,
    regulariser_loss,
    spoco_loss,
    unlabelled_push_loss,
)
from panoptic_st.instance.pseudo_labels import cluster_embeddings, instance_pseudo_labels
from panoptic_st.instance.spatial import (
    SpatialEmbeddingNet,
    build_instance_network,
    joint_embedding,
    joint_space_precision,
    pixel_coordinates,
    rotate_back_embeddings,
)
from panoptic_st.ops.geometry import rotate, rotate_back
from panoptic_st.panoptic.predictor import PanopticPredictor
from panoptic_st.training import train

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
TINY = tiny_overrides("data.batch_size=2", "data.target_batch_size=2", "data.val_batch_size=3",
                      "trainer.limit_val_batches=0", "trainer.max_steps=2")


def centre_offsets(labels: torch.Tensor, scale: float) -> torch.Tensor:
    """Offsets [2, H, W] in joint units that move every labelled pixel of [H, W] onto its instance's centroid
    (unlabelled pixels: 0)."""
    coords = pixel_coordinates(*labels.shape, like=torch.zeros(()))
    offsets = torch.zeros_like(coords)
    for instance in labels.unique():
        if instance == 0:
            continue
        mask = labels == instance
        centre = coords[:, mask].mean(1)
        offsets[:, mask] = scale * (centre[:, None] - coords[:, mask])
    return offsets


def joint_from(appearance: torch.Tensor, offsets: torch.Tensor, scale: float) -> torch.Tensor:
    """Joint embeddings [1, D+2, H, W] of appearance [D, H, W] and offsets [2, H, W]."""
    return joint_embedding(torch.cat([appearance, offsets])[None], scale)


@pytest.mark.parametrize("device", DEVICES)
def test_joint_embedding_hand_computed(device):
    # one appearance channel, then offsets (x, y); pixel (row 1, column 2) at scale 0.5 sits at (1.0, 0.5)
    output = torch.zeros(1, 3, 2, 3, device=device)
    output[0, 0] = 7.0
    output[0, 1, 1, 2], output[0, 2, 1, 2] = 0.25, -1.0
    joint = joint_embedding(output, scale=0.5)
    assert joint.shape == output.shape and joint.device == output.device
    assert torch.all(joint[0, 0] == 7.0)
    assert joint[0, 1:, 1, 2].tolist() == [1.0 + 0.25, 0.5 - 1.0]
    assert joint[0, 1:, 0, 1].tolist() == [0.5, 0.0]
    assert joint_embedding(output[0], scale=0.5).equal(joint[0])


def test_joint_embedding_refuses_bad_input():
    with pytest.raises(ValueError, match="scale must be positive"):
        joint_embedding(torch.zeros(1, 3, 2, 2), scale=0.0)
    with pytest.raises(ValueError, match=r"D\+2"):
        joint_embedding(torch.zeros(1, 2, 2, 2), scale=1.0)


def test_touching_identical_objects_have_means_their_scaled_centre_distance_apart():
    # 1 x 4 image, objects {x=0,1} and {x=2,3} of one appearance, zero offsets: centres 0.5 and 2.5, so at scale
    # 0.5 the joint means lie 0.5 * 2 = 1 apart; push (delta_d 2): [4 - 1]^2 for each ordered pair, over 2 pairs = 9
    labels = torch.tensor([[1, 1, 2, 2]])
    joint = joint_from(torch.zeros(1, 1, 4), torch.zeros(2, 1, 4), scale=0.5)
    means = torch.stack([joint[0, :, labels == k].mean(1) for k in (1, 2)])
    assert torch.linalg.vector_norm(means[0] - means[1]).item() == pytest.approx(1.0)
    assert push_loss(joint, labels[None], delta_d=2.0).item() == pytest.approx(9.0)
    assert push_loss(torch.zeros(1, 1, 1, 4), labels[None], delta_d=2.0).item() == pytest.approx(16.0)


def test_pull_is_zero_when_offsets_point_to_the_centre_and_hand_computed_without():
    labels = torch.tensor([[1, 1, 2, 2]])
    appearance = torch.zeros(1, 1, 4)
    exact = joint_from(appearance, centre_offsets(labels, 0.5), scale=0.5)
    assert pull_loss(exact, labels[None], delta_v=0.0).item() == 0.0
    # zero offsets: positions 0, 0.5 | 1, 1.5, each 0.25 from its mean -> (0.25 - 0.1)^2 per pixel and instance
    raw = joint_from(appearance, torch.zeros(2, 1, 4), scale=0.5)
    assert pull_loss(raw, labels[None], delta_v=0.1).item() == pytest.approx(0.15**2)


def test_dice_and_unlabelled_push_in_the_joint_space_hand_computed():
    # 1 x 5, labels [1, 1, 2, 2, 0], scale 0.5, offsets to the centres: instances at 0.25 and 1.25, the unlabelled
    # pixel at 2.0 (zero offset), one appearance for all
    labels = torch.tensor([[1, 1, 2, 2, 0]])
    joint = joint_from(torch.zeros(1, 1, 5), centre_offsets(labels, 0.5), scale=0.5)
    # Dice, delta_v 0.5: own pixels phi(0) = 1, the other instance 1 away: exp(-1 ln2 / 0.25) = 1/16, the unlabelled
    # pixel 1.75 and 0.75 away
    far, near = 2.0 ** (-(1.75**2) / 0.25), 2.0 ** (-(0.75**2) / 0.25)
    dice = [1 - 4 / (2 + 2 / 256 + p**2 + 2) for p in (far, near)]
    assert instance_dice_loss(joint, labels[None], delta_v=0.5).item() == pytest.approx(sum(dice) / 2, rel=1e-5)
    # unlabelled push, delta_d 2: [2 - 1.75]^2 and [2 - 0.75]^2, averaged over the two instances
    assert unlabelled_push_loss(joint, labels[None], delta_d=2.0).item() == pytest.approx((0.0625 + 1.5625) / 2)


def test_regulariser_sees_the_appearance_part_only():
    labels = torch.tensor([[[1, 1, 2, 2]]])
    appearance = torch.tensor([[[3.0, 3.0, -1.0, -1.0]]])
    joint = joint_from(appearance, torch.zeros(2, 1, 4), scale=10.0)
    terms = spoco_loss(joint, labels, appearance_dim=1, w_reg=1.0)
    assert terms["reg"].item() == pytest.approx(regulariser_loss(appearance[None], labels).item()) == 2.0
    assert spoco_loss(joint, labels)["reg"].item() > 10.0


def test_centre_offset_term_hand_computed_zero_at_the_centres_and_weighted_in_the_sum():
    labels = torch.tensor([[1, 1, 2, 2, 0]])
    appearance = torch.zeros(1, 1, 5)
    exact = joint_from(appearance, centre_offsets(labels, 0.5), scale=0.5)
    assert centre_offset_loss(exact, labels[None], scale=0.5).item() == 0.0
    # zero offsets: x positions 0, 0.5 | 1, 1.5 around centres 0.25 | 1.25, rows all 0: L1 0.25 for each of the
    # four labelled pixels; the unlabelled pixel does not count
    raw = joint_from(appearance, torch.zeros(2, 1, 5), scale=0.5)
    assert centre_offset_loss(raw, labels[None], scale=0.5).item() == pytest.approx(0.25)
    # a 2 x 2 instance, scale 1, zero offsets: every pixel 0.5 + 0.5 from the centre (0.5, 0.5) in L1
    square = torch.ones(2, 2, dtype=torch.long)
    assert centre_offset_loss(joint_from(torch.zeros(1, 2, 2), torch.zeros(2, 2, 2), 1.0), square[None],
                              scale=1.0).item() == pytest.approx(1.0)
    terms = spoco_loss(raw, labels[None], w_offset=3.0, spatial_scale=0.5)
    without = spoco_loss(raw, labels[None])
    assert terms["offset"].item() == pytest.approx(0.25)
    assert terms["loss"].item() == pytest.approx(without["loss"].item() + 0.75)
    assert "offset" not in without
    with pytest.raises(ValueError, match="spatial_scale"):
        spoco_loss(raw, labels[None], w_offset=1.0)


def test_offset_weight_must_be_a_finite_non_negative_number():
    assert load_config("toy/instance_baseline_spatial", ["instance.offset_weight=2"]).instance.offset_weight == 2.0
    for bad in ("-1", "nan"):
        with pytest.raises(ConfigError, match="instance.offset_weight"):
            load_config("toy/instance_baseline_spatial", [f"instance.offset_weight={bad}"])
    with pytest.raises(ConfigError, match="spatial_embedding"):
        load_config("toy/instance_baseline", ["instance.offset_weight=1"])


def two_touching_boxes(size: int = 32) -> torch.Tensor:
    """Labels [size, size]: two touching 10 x 10 boxes (ids 1, 2) about the centre, inside the inscribed circle."""
    labels = torch.zeros(size, size, dtype=torch.long)
    labels[11:21, 6:16], labels[11:21, 16:26] = 1, 2
    return labels


def exact_joint(labels: torch.Tensor, scale: float) -> torch.Tensor:
    """Joint embeddings [1, 3, H, W] of one appearance channel (the id) and offsets exactly to the centroids."""
    return joint_from(labels[None].float(), centre_offsets(labels, scale), scale)


@pytest.mark.parametrize("angle", [90.0, 37.0, 150.0])
def test_rotating_back_an_exact_offset_field_matches_the_original_view(angle):
    """The momentum network's view is rotated; its exact joint embeddings (offsets to the rotated objects' centres),
    warped back and with positions rotated back, equal the original view's inside the objects."""
    scale, labels = 0.5, two_touching_boxes()
    rotated = rotate(labels[None, None].float(), angle, mode="nearest")[0, 0].round().long()
    teacher = exact_joint(rotated, scale)
    back, valid = rotate_back_embeddings(teacher, torch.tensor([angle]), scale)
    objects = torch.stack([labels == 1, labels == 2]).float()
    interior = (-torch.nn.functional.max_pool2d(-objects, 5, stride=1, padding=2) > 0.5).any(0)
    compare = valid[0] & interior
    assert int(compare.sum()) > 50
    error = (back - exact_joint(labels, scale))[0][:, compare].abs().max().item()
    # nearest resampling moves a rotated box's centroid by a fraction of a pixel at 37 degrees
    assert error < (1e-5 if angle == 90.0 else 0.1 * scale)
    unrotated, _ = rotate_back(teacher, torch.tensor([angle]))
    assert (unrotated - exact_joint(labels, scale))[0][:, compare].abs().max().item() > 1.0


def test_rotating_back_without_a_scale_is_plain_rotate_back():
    embeddings = torch.randn(2, 3, 16, 16)
    angles = torch.tensor([30.0, 120.0])
    for got, expected in zip(rotate_back_embeddings(embeddings, angles), rotate_back(embeddings, angles)):
        assert got.equal(expected)


def test_joint_mean_shift_splits_touching_objects_that_look_alike():
    """Two touching boxes of one class and one appearance: one instance in the appearance space, two in the joint
    space (centres 10 px apart, 5 units at scale 0.5, beyond the merge distance 2)."""
    labels = two_touching_boxes()
    semantic = torch.where(labels > 0, 13, 0)
    appearance = torch.zeros(1, *labels.shape)
    joint = joint_from(appearance, centre_offsets(labels, 0.5), scale=0.5)[0]
    settings = {"thing_classes": (13,), "bandwidth": 0.5, "delta_d": 2.0, "min_size": 10}
    alone, _ = instance_pseudo_labels(appearance, semantic, **settings)
    joint_map, classes = instance_pseudo_labels(joint, semantic, **settings)
    assert alone.unique().tolist() == [0, 1]
    assert classes.tolist() == [255, 13, 13]
    for instance in (1, 2):
        assert joint_map[labels == instance].unique().numel() == 1
    assert joint_map[labels == 1][0] != joint_map[labels == 2][0]


def test_spatial_network_starts_with_zero_offsets_that_learn():
    torch.manual_seed(0)
    net = build_instance_network("tu-mobilenetv3_small_100", 3, spatial_scale=0.25)
    assert isinstance(net, SpatialEmbeddingNet)
    images = torch.randn(1, 3, 32, 64)
    out = net(images)
    assert out.shape == (1, 5, 32, 64)
    assert out[0, 3:].equal(0.25 * pixel_coordinates(32, 64, like=out))
    assert out[0, :3].abs().sum() > 0
    out[0, 3:].sum().backward()
    assert net.net.segmentation_head[0].weight.grad[3:].abs().sum() > 0


def test_the_module_adds_the_weighted_centre_offset_term():
    from panoptic_st.instance.module import InstanceModule

    overrides = ["instance.offset_weight=2", "instance.encoder=tu-mobilenetv3_small_100"]
    module = InstanceModule(load_config("toy/instance_baseline_spatial", overrides).instance)
    labels = torch.zeros(1, 32, 64, dtype=torch.long)
    labels[0, 4:12, 8:20] = 1
    terms = module.loss_terms(torch.rand(1, 3, 32, 64), labels, consistency=False)
    cfg = module.cfg
    weights = {"pull": cfg.pull_weight, "push": cfg.push_weight, "reg": cfg.reg_weight,
               "instance": cfg.dice_weight, "unlabelled": cfg.unlabelled_push_weight, "offset": 2.0}
    parts = sum(w * terms[k] for k, w in weights.items())
    assert terms["offset"].item() > 0
    assert terms["loss"].item() == pytest.approx(parts.item(), rel=1e-5)


@pytest.fixture(scope="module")
def spatial_runs(toy_root, tmp_path_factory) -> dict:
    """A semantic network (1 step), a spatial instance baseline and spatial self-training from it (2 steps each)."""
    out = tmp_path_factory.mktemp("spatial")
    common = [f"data.root={toy_root}", *TINY]
    semantic = train(load_config("toy/semantic_baseline", [*common, "trainer.max_steps=1", f"output_dir={out}/s"]))
    spatial = ["instance.spatial_embedding=true", "instance.spatial_scale=0.2", "instance.spatial_bandwidth=1.5",
               "instance.min_size=5"]
    base = train(load_config("toy/instance_baseline_spatial", [*common, *spatial, f"output_dir={out}/b"]))
    self_train = train(load_config("toy/instance_selftrain_spatial", [
        *common, *spatial, f"output_dir={out}/t", f"instance.init_checkpoint={base['checkpoint']}",
        f"instance.semantic_checkpoint={semantic['checkpoint']}"]))
    return {"semantic": semantic, "base": base, "self_train": self_train, "common": common, "out": out}


def test_spatial_self_training_runs_its_rotation_consistency(spatial_runs):
    metrics = spatial_runs["self_train"]["metrics"]
    assert math.isfinite(metrics["train/target_consistency"]) and math.isfinite(metrics["train/target_loss"])


def test_spatial_checkpoint_predicts_with_its_joint_clustering(spatial_runs, toy_root):
    from panoptic_st.data.cityscapes import CityscapesDataset

    predictor = PanopticPredictor.from_checkpoints(spatial_runs["semantic"]["checkpoint"],
                                                   [spatial_runs["self_train"]["checkpoint"]])
    assert isinstance(predictor.instance_nets[0], SpatialEmbeddingNet)
    assert predictor.instance_nets[0].scale == 0.2 and predictor.clustering[0].bandwidth == 1.5
    item = CityscapesDataset(toy_root / "cityscapes", "val")[0]
    images = item["image"][None].repeat(2, 1, 1, 1)
    results = predictor.predict(images)
    height, width = images.shape[-2:]
    assert len(results) == 2
    for result in results:
        assert result["instances"].shape == result["panoptic"].shape == (height, width)
        assert len(result["segments"]["id"]) == int(result["instances"].max())


def test_spatial_and_appearance_checkpoints_do_not_mix(spatial_runs, tmp_path):
    from panoptic_st.checkpoints import CheckpointError

    cfg = load_config("toy/instance_baseline", [*spatial_runs["common"], f"output_dir={tmp_path}",
                                                f"instance.init_checkpoint={spatial_runs['base']['checkpoint']}"])
    with pytest.raises(CheckpointError, match="spatial_embedding=True"):
        train(cfg)


def test_joint_embedding_of_half_precision_outputs_is_float32_with_exact_positions():
    joint = joint_embedding(torch.zeros(1, 3, 1, 1024, dtype=torch.bfloat16), scale=1.0)
    assert joint.dtype == torch.float32
    assert joint[0, 1, 0].equal(torch.arange(1024, dtype=torch.float32))


def test_joint_clustering_under_bf16_autocast_equals_float32():
    """Joint positions are large (s * x): squared distances from bf16 matrix products would be coarser than the
    bandwidth, so clustering turns autocast off."""
    generator = torch.Generator().manual_seed(0)
    centres = torch.zeros(20, 3)
    centres[:, 1] = 3.0 * torch.arange(20)  # twenty objects in a row, 3 units apart
    points = centres.repeat_interleave(40, 0) + 0.1 * torch.randn(800, 3, generator=generator)
    expected = cluster_embeddings(points, "meanshift+", bandwidth=0.5, delta_d=2.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        labels = cluster_embeddings(points, "meanshift+", bandwidth=0.5, delta_d=2.0)
    assert torch.bincount(expected).tolist() == [40] * 20
    assert labels.equal(expected)


def test_joint_space_losses_run_without_autocast():
    labels = two_touching_boxes()
    noise = torch.randn(1, 3, *labels.shape, generator=torch.Generator().manual_seed(0))
    joint = exact_joint(labels, 0.5) + 0.01 * noise
    expected = spoco_loss(joint, labels[None], appearance_dim=1)["loss"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with joint_space_precision(True, "cpu"):
            assert not torch.is_autocast_enabled("cpu")
            loss = spoco_loss(joint, labels[None], appearance_dim=1)["loss"]
        with joint_space_precision(False, "cpu"):
            assert torch.is_autocast_enabled("cpu")
    assert loss.equal(expected)
