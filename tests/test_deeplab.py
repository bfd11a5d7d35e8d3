import time

import pytest
import timm
import torch
import torchvision

from panoptic_st.config import ConfigError
from panoptic_st.models.deeplab import ASPPSum, build_deeplab, param_groups
from panoptic_st.models.weights import timm_encoder

TOY_ENCODER = "mobilenetv3_small_100"


@pytest.fixture
def single_thread():
    """Time forwards on one thread: the CPU is shared, and contended multi-threading makes timings erratic."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_deeplabv2_resnet101_has_output_stride_8_and_input_size_logits():
    model = build_deeplab("deeplabv2", "resnet101").eval()
    x = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        features = model.encoder(x)
        logits = model(x)
    assert features[-1].shape == (1, 2048, 8, 16)
    assert logits.shape == (1, 19, 64, 128)
    assert isinstance(model.head, ASPPSum)
    assert 42e6 < sum(p.numel() for p in model.parameters()) < 44e6


@pytest.mark.parametrize("arch", ["deeplabv2", "deeplabv3", "deeplabv3plus"])
def test_toy_variants_forward_fast_at_input_size(arch, single_thread):
    model = build_deeplab(arch, TOY_ENCODER, num_classes=11).eval()
    x = torch.rand(2, 3, 96, 192)
    with torch.no_grad():
        assert model.encoder(x)[-1].shape[-2:] == (12, 24)
        model(x)
        seconds = []
        for _ in range(3):
            start = time.perf_counter()
            logits = model(x)
            seconds.append(time.perf_counter() - start)
    assert logits.shape == (2, 11, 96, 192)
    assert min(seconds) < 1.0


def test_v2_toy_resnet18_is_dilated():
    model = build_deeplab("deeplabv2", "resnet18", output_stride=8)
    assert model.encoder(torch.rand(1, 3, 32, 64))[-1].shape == (1, 512, 4, 8)


def test_aspp_sum_adds_branches_and_is_initialised_small():
    torch.manual_seed(0)
    head = ASPPSum(256, 19)
    x = torch.rand(1, 256, 30, 30)
    expected = sum(conv(x) for conv in head.branches)
    assert torch.allclose(head([x]), expected)
    assert [conv.dilation for conv in head.branches] == [(6, 6), (12, 12), (18, 18), (24, 24)]
    weights = torch.cat([conv.weight.flatten() for conv in head.branches])
    assert abs(weights.std().item() - 0.01) < 1e-3
    assert all(torch.count_nonzero(conv.bias) == 0 for conv in head.branches)


def test_param_groups_rates_decay_and_coverage():
    model = build_deeplab("deeplabv3plus", TOY_ENCODER)
    groups = {g["name"]: g for g in param_groups(model, lr=2.5e-4, weight_decay=5e-4)}
    assert {name: g["lr"] for name, g in groups.items()} == pytest.approx(
        {"encoder_weight": 2.5e-4, "encoder_bias": 5e-4, "head_weight": 2.5e-3, "head_bias": 5e-3}
    )
    assert {name: g["weight_decay"] for name, g in groups.items()} == {
        "encoder_weight": 5e-4,
        "encoder_bias": 0.0,
        "head_weight": 5e-4,
        "head_bias": 0.0,
    }
    grouped = [id(p) for g in groups.values() for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    head_ids = {id(p) for p in model.head.parameters()}
    assert all(id(p) in head_ids for p in groups["head_bias"]["params"] + groups["head_weight"]["params"])
    torch.optim.SGD(list(groups.values()), lr=2.5e-4, momentum=0.9)


@pytest.mark.parametrize("arch", ["deeplabv2", "deeplabv3"])
def test_encoder_weights_come_from_a_local_file(arch, tmp_path):
    classifier = timm.create_model(TOY_ENCODER)
    path = tmp_path / "imagenet.pth"
    torch.save(classifier.state_dict(), path)
    model = build_deeplab(arch, TOY_ENCODER, encoder_weights_file=str(path))
    encoder_state = model.encoder.state_dict()
    key = next(k for k in encoder_state if k.endswith("conv_stem.weight"))
    assert torch.equal(encoder_state[key], classifier.state_dict()["conv_stem.weight"])


@pytest.mark.parametrize("arch", ["deeplabv2", "deeplabv3plus"])
def test_a_torchvision_resnet_checkpoint_loads_into_the_encoder(arch, tmp_path):
    reference = torchvision.models.resnet18().state_dict()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(reference, path)
    encoder = timm_encoder(build_deeplab(arch, "resnet18", encoder_weights_file=str(path)).encoder).state_dict()
    assert all(torch.equal(encoder[k], reference[k]) for k in encoder if not k.endswith("num_batches_tracked"))


def test_weights_of_another_network_are_refused_not_silently_skipped(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ConfigError, match=r"other.pth: \d+ of \d+ tensors of the resnet34 encoder are missing"):
        build_deeplab("deeplabv2", "resnet34", encoder_weights_file=str(path))
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="broken.pth: not a readable checkpoint"):
        build_deeplab("deeplabv2", "resnet18", encoder_weights_file=str(tmp_path / "broken.pth"))


def test_user_errors_are_short_messages(tmp_path):
    with pytest.raises(ValueError, match="deeplabv3plus"):
        build_deeplab("deeplabv4", TOY_ENCODER)
    with pytest.raises(ConfigError, match="missing.pth"):
        build_deeplab("deeplabv2", TOY_ENCODER, encoder_weights_file=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="divisible by 8"):
        build_deeplab("deeplabv3plus", TOY_ENCODER)(torch.rand(1, 3, 60, 60))
