"""Spatial embeddings of the instance branch: the appearance embedding joined with (pixel coordinate + offset).

SPOCO's embeddings carry appearance only, so two touching objects that look alike share one mode and no mean-shift
bandwidth splits them. Neven et al. ("Instance Segmentation by Jointly Optimizing Spatial Embeddings and Clustering
Bandwidth", CVPR 2019) put the position into what is learned: a pixel's spatial embedding is its coordinate plus a
predicted offset, trained to land on its instance's centre. Here the U-Net predicts D appearance channels a_i and 2
offset channels o_i, and pixel i at column x_i, row y_i has the joint embedding

    e_i = [a_i, s * (x_i, y_i) + o_i]

with s the scale in joint units per pixel. The offset o_i is in joint units (s times the offset in pixels), so the
network's outputs stay of the order of the appearance embedding whatever the image size; coordinates count pixels of
the network's input (not fractions of its size), so training crops and whole images share one unit.

The SPOCO losses and mean-shift(+merge) act on e_i unchanged. Pull draws every pixel's s * (x, y) + o_i to its
instance's mean, a centre; with margins delta_v and delta_d in joint units, the pixels of an instance then lie within
delta_v / s pixels of its centre, the push is met by position alone for centres at least 2 * delta_d / s pixels
apart, and mean-shift+ keeps two modes apart whose centres are more than delta_d / s pixels apart, however alike the
objects look.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn

from panoptic_st.models.unet import build_embedding_unet
from panoptic_st.ops.geometry import rotate_back

OFFSET_CHANNELS = 2
"""Offset channels (x, y) after the appearance channels of a spatial embedding network's output."""


def pixel_coordinates(height: int, width: int, like: Tensor) -> Tensor:
    """Pixel coordinates [2, H, W]: channel 0 the column x, channel 1 the row y (0-based, y downwards), on the device
    and in the dtype of `like`."""
    ys = torch.arange(height, device=like.device, dtype=like.dtype)
    xs = torch.arange(width, device=like.device, dtype=like.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y])


def joint_embedding(output: Tensor, scale: float) -> Tensor:
    """Joint embeddings e_i = [a_i, s * (x_i, y_i) + o_i] of network outputs [..., D+2, H, W] (D appearance channels,
    then the offsets o_i in joint units); s = `scale` joint units per pixel. Neven et al. (CVPR 2019): spatial
    embedding = pixel coordinate + predicted offset. At least float32 (bf16 holds integers exactly only to 256)."""
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if output.dim() < 3 or output.shape[-3] <= OFFSET_CHANNELS:
        raise ValueError(f"expected outputs [..., D+{OFFSET_CHANNELS}, H, W] with D >= 1, got {tuple(output.shape)}")
    output = output.to(torch.promote_types(output.dtype, torch.float32))
    appearance, offsets = output.split([output.shape[-3] - OFFSET_CHANNELS, OFFSET_CHANNELS], dim=-3)
    positions = scale * pixel_coordinates(*output.shape[-2:], like=output) + offsets
    return torch.cat([appearance, positions], dim=-3)


def rotate_positions_back(embeddings: Tensor, angle_deg: float | Tensor, scale: float) -> Tensor:
    """Joint embeddings [B, D+2, H, W] predicted on views rotated by `angle_deg` (see `losses.rotate`), already
    warped back to the original frame, with their positions mapped back into that frame too.

    `rotate` moves the content at p to R (p - c) + c, with c = ((W-1)/2, (H-1)/2) the image centre and, for a
    counter-clockwise angle a as displayed (y downwards), R = [[cos a, sin a], [-sin a, cos a]]. A position z' = s q'
    predicted in the rotated view therefore stands for z = s c + R^T (z' - s c) in the original one: the offsets
    turn with the view, the coordinates are transformed with them.
    """
    batch, channels, height, width = embeddings.shape
    angle = torch.as_tensor(angle_deg, dtype=embeddings.dtype, device=embeddings.device).expand(batch)
    rad = torch.deg2rad(angle)
    cos, sin = torch.cos(rad), torch.sin(rad)
    rotation_t = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # R^T [B, 2, 2]
    centre = scale * embeddings.new_tensor([(width - 1) / 2, (height - 1) / 2])[None, :, None, None]
    appearance, positions = embeddings.split([channels - OFFSET_CHANNELS, OFFSET_CHANNELS], dim=1)
    back = torch.einsum("bij,bjhw->bihw", rotation_t, positions - centre) + centre
    return torch.cat([appearance, back], dim=1)


def rotate_back_embeddings(embeddings: Tensor, angle_deg: float | Tensor,
                           spatial_scale: float | None = None) -> tuple[Tensor, Tensor]:
    """`ops.geometry.rotate_back` of embeddings [B, C, H, W] predicted on rotated views (the rotation-consistency view);
    with `spatial_scale`, they are joint embeddings whose positions are rotated back as well
    (`rotate_positions_back`). Returns the embeddings and the validity mask [B, H, W]."""
    back, valid = rotate_back(embeddings, angle_deg)
    if spatial_scale is None:
        return back, valid
    return rotate_positions_back(back, angle_deg, spatial_scale), valid


def joint_space_precision(spatial: bool, device_type: str) -> contextlib.AbstractContextManager:
    """Autocast off for computations in the joint space when `spatial` (else nothing changes): squared distances of
    positions as large as s * image width, from bf16 or fp16 matrix products, are coarser than delta_v^2."""
    return torch.autocast(device_type, enabled=False) if spatial else contextlib.nullcontext()


class SpatialEmbeddingNet(nn.Module):
    """A network of D + 2 output channels (appearance, then offsets) whose forward gives joint embeddings
    [B, D+2, H, W] (`joint_embedding`). Positions count pixels of its input: an input resized before the network
    (the predictor's `scale`) resizes them too."""

    def __init__(self, net: nn.Module, scale: float) -> None:
        super().__init__()
        self.net = net
        self.scale = scale

    def forward(self, images: Tensor) -> Tensor:
        return joint_embedding(self.net(images), self.scale)


def zero_offset_head(head: nn.Conv2d) -> None:
    """Zero the weights and biases of the last `OFFSET_CHANNELS` output channels of the final convolution, so the
    initial offsets are 0 (the joint space starts as appearance + scaled pixel position) while their gradients are
    not (the convolution's inputs are not zero)."""
    with torch.no_grad():
        head.weight[-OFFSET_CHANNELS:].zero_()
        if head.bias is not None:
            head.bias[-OFFSET_CHANNELS:].zero_()


def build_instance_network(encoder: str, embedding_dim: int, encoder_weights_file: str | None = None,
                           spatial_scale: float | None = None) -> nn.Module:
    """The instance branch's embedding U-Net (`build_embedding_unet`); with `spatial_scale`, a U-Net of
    embedding_dim + 2 channels whose offsets start at 0, giving joint embeddings (`SpatialEmbeddingNet`)."""
    if spatial_scale is None:
        return build_embedding_unet(encoder, embedding_dim, encoder_weights_file)
    net = build_embedding_unet(encoder, embedding_dim + OFFSET_CHANNELS, encoder_weights_file)
    zero_offset_head(net.segmentation_head[0])
    return SpatialEmbeddingNet(net, spatial_scale)
