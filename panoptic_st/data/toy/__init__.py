"""Procedural toy domain-adaptation benchmark: SYNTHIA-, GTA5- and Cityscapes-format street scenes.

Every image is drawn from one shared scene model (perspective street with a vanishing point, facades, poles,
trees and the eight thing classes painted far-to-near), so the three datasets differ only in how the scene is
rendered (two clean synthetic styles vs. one "real" style) and in the label quirks of the real formats.
Results measured on the toy are in docs/results.md.

With `native_size=True` every dataset is written at the real datasets' sizes (height x width): SYNTHIA
RAND_CITYSCAPES 760 x 1280, Cityscapes 1024 x 2048 and GTA5 1052 x 1914, except the GTA5 files 00002 and 00003 of
every ten (00002, 00003, 00012, 00013, ...), which are 1054 x 1914 and 1080 x 1920. Those two sizes are chosen to
stand for the few real GTA5 images that are not 1052 x 1914; their share here is not the real one. The scene
geometry scales with the image as at any size; textures, blurs, skyline widths and the smallest instance scale too
(`detail_scale`), so a native-size image looks like an enlarged default one.

Modules, in drawing order: `scene` (classes, canvas), `street` (perspective and facades), `things` and `stuff`
(objects), `layout` (where objects stand, the drawn scene), `crowds` (the dense groups of the instance gap),
`render` (the three styles), `formats` (the on-disk formats), `metadata` (split lists, README), `domains` (image
sets and sizes), `folders` (staging, install) and `driver` (`make_toy`).
"""

from panoptic_st.data.labels import NUM_CLASSES
from panoptic_st.data.toy.domains import (
    DEFAULT_SIZE,
    DOMAINS,
    GTA5_ODD_PERIOD,
    GTA5_ODD_SIZES,
    NATIVE_COUNTS,
    NATIVE_SIZES,
    detail_scale,
    image_rng,
    native_image_size,
)
from panoptic_st.data.toy.driver import make_toy, truck_and_train_index
from panoptic_st.data.toy.formats import CITIES, cityscapes_stem
from panoptic_st.data.toy.layout import MIN_INSTANCE_PX, draw_scene
from panoptic_st.data.toy.metadata import README_TITLE
from panoptic_st.data.toy.render import object_stripes, render_gta, render_real, render_synthia
from panoptic_st.data.toy.scene import STATIC, Scene

__all__ = [
    "CITIES", "DEFAULT_SIZE", "DOMAINS", "GTA5_ODD_PERIOD", "GTA5_ODD_SIZES", "MIN_INSTANCE_PX", "NATIVE_COUNTS",
    "NATIVE_SIZES", "NUM_CLASSES", "README_TITLE", "STATIC", "Scene", "cityscapes_stem", "detail_scale",
    "draw_scene", "image_rng", "make_toy", "native_image_size", "object_stripes", "render_gta", "render_real",
    "render_synthia", "truck_and_train_index",
]
