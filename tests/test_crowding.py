"""Copy-paste of source objects beside themselves (`instance.paste_neighbours`)."""

import pytest
import torch

from panoptic_st.config import ConfigError, load_config
from panoptic_st.instance.crowding import BRIGHTNESS, SHIFT, paste_neighbours


def one_object_scene(left: int = 20, width: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1 x 3 x 24 x 64 image with a textured 8 x `width` object (id 7) at column `left`, and its labels."""
    images = torch.full((1, 3, 24, 64), 0.2)
    labels = torch.zeros(1, 24, 64, dtype=torch.long)
    texture = torch.linspace(0.3, 0.6, 8 * width).view(8, width)
    images[0, :, 8:16, left:left + width] = texture
    labels[0, 8:16, left:left + width] = 7
    return images, labels


def test_probability_zero_changes_nothing_and_inputs_are_never_changed():
    images, labels = one_object_scene()
    kept = images.clone(), labels.clone()
    out_images, out_labels = paste_neighbours(images, labels, 0.0)
    assert torch.equal(out_images, images) and torch.equal(out_labels, labels)
    paste_neighbours(images, labels, 1.0)
    assert torch.equal(images, kept[0]) and torch.equal(labels, kept[1])


@pytest.mark.parametrize("seed", range(6))
def test_a_pasted_copy_touches_its_original_with_a_new_id_and_relit_pixels(seed):
    images, labels = one_object_scene(left=27, width=10)
    generator = torch.Generator().manual_seed(seed)
    out_images, out_labels = paste_neighbours(images, labels, 1.0, generator=generator)
    assert set(out_labels.unique().tolist()) == {0, 7, 8}
    copy = out_labels[0] == 8
    cols = copy.nonzero()[:, 1]
    assert copy.sum() == 80 and (copy.nonzero()[:, 0].unique() == torch.arange(8, 16)).all()
    shift = int(cols.min()) - 27
    assert SHIFT[0] * 10 <= abs(shift) <= SHIFT[1] * 10
    # in front: the overlapped part of the original now belongs to the copy, the rest keeps its id
    assert (out_labels[0] == 7).sum() == 80 - 8 * (10 - abs(shift))
    ratio = out_images[0][:, copy] / images[0][:, 8:16, 27:37].reshape(3, -1)
    assert BRIGHTNESS[0] - 1e-6 <= ratio.min() and ratio.max() <= BRIGHTNESS[1] + 1e-6
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), atol=1e-5)


def test_objects_below_min_size_are_not_copied_and_copies_are_clipped_at_the_border():
    images, labels = one_object_scene(left=60, width=4)
    _, small = paste_neighbours(images, labels, 1.0, min_size=33)
    assert torch.equal(small, labels)
    sides = set()
    for seed in range(20):
        _, out = paste_neighbours(images, labels, 1.0, min_size=32, generator=torch.Generator().manual_seed(seed))
        pasted = int((out == 8).sum())
        sides.add(pasted)
        assert pasted <= 32
    assert 32 in sides and min(sides) < 32  # pasted left whole, or right and cut at the border


def test_the_setting_must_be_a_probability():
    with pytest.raises(ConfigError, match="instance.paste_neighbours"):
        load_config("toy/instance_baseline", ["instance.paste_neighbours=1.5"])


def test_a_source_training_step_trains_on_the_pasted_scene(monkeypatch):
    from panoptic_st.instance import module as instance_module

    cfg = load_config("toy/instance_baseline", ["instance.paste_neighbours=0.5", "instance.encoder=tu-resnet18"])
    net = instance_module.InstanceModule(cfg.instance)
    images, labels = one_object_scene()
    semantic = torch.where(labels > 0, 13, 0)
    seen = {}

    def loss_terms(images, labels, consistency):
        seen["labels"] = labels
        return {"loss": images.sum() * 0}

    monkeypatch.setattr(net, "loss_terms", loss_terms)
    monkeypatch.setattr(instance_module, "paste_neighbours",
                        lambda images, labels, probability, min_size: paste_neighbours(images, labels, 1.0))
    monkeypatch.setattr(net, "log", lambda *args, **kwargs: None)
    monkeypatch.setattr(net, "log_dict", lambda *args, **kwargs: None)
    net.training_step({"image": images, "semantic": semantic, "instance": labels * 1000 + 1}, 0)
    assert len(seen["labels"].unique()) == 3  # background, the object and its pasted neighbour


def test_an_object_hidden_by_an_earlier_copy_is_not_copied():
    images, labels = one_object_scene(left=20, width=10)
    labels[0, 8:16, 34:36] = 9  # two columns to the right: any copy of object 7 shifted right covers them
    for seed in range(10):
        _, out = paste_neighbours(images, labels, 1.0, min_size=16, generator=torch.Generator().manual_seed(seed))
        assert out.max() <= 11
