import pytest
import timm
import torch

from panoptic_st.config import ConfigError
from panoptic_st.models.unet import build_embedding_unet

ENCODER = "tu-mobilenetv3_small_100"


def test_output_is_embedding_map():
    torch.manual_seed(0)
    model = build_embedding_unet(ENCODER, embedding_dim=8).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 96, 192))
    assert out.shape == (2, 8, 96, 192)
    assert out.min() < 0  # no activation on the embeddings


def test_encoder_weights_from_local_file(tmp_path):
    reference = timm.create_model("mobilenetv3_small_100")
    path = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), path)
    model = build_embedding_unet(ENCODER, embedding_dim=4, encoder_weights_file=str(path))
    loaded = model.encoder.model.state_dict()
    assert torch.equal(loaded["conv_stem.weight"], reference.state_dict()["conv_stem.weight"])


def test_bad_arguments():
    with pytest.raises(ValueError, match="tu-"):
        build_embedding_unet("resnet18")
    with pytest.raises(ConfigError, match="missing.pth"):
        build_embedding_unet(ENCODER, encoder_weights_file="missing.pth")
