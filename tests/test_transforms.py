import numpy as np
import pytest

from panoptic_st.data.transforms import eval_transform, source_train_transform, target_train_transform


def _scene(h=40, w=80):
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 0] = np.arange(w)[None, :]
    semantic = np.tile((np.arange(w) // 10).astype(np.uint8), (h, 1))
    semantic[:5] = 255
    instance = np.zeros((h, w), np.int32)
    instance[20:30, 40:60] = 26001
    return image, semantic, instance


def test_identity_settings_leave_everything_unchanged():
    image, semantic, instance = _scene()
    out = source_train_transform((40, 80), scale=(1.0, 1.0), flip=False)(image, semantic, instance)
    for a, b in zip(out, (image, semantic, instance)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", range(5))
def test_maps_move_together_and_padding_is_ignore_and_no_instance(seed):
    np.random.seed(seed)
    image, semantic, instance = _scene()
    out_img, out_sem, out_inst = source_train_transform((48, 96), scale=(0.5, 1.0))(image, semantic, instance)
    assert out_img.shape == (48, 96, 3) and out_sem.shape == out_inst.shape == (48, 96)
    padded = out_img.sum(axis=2) == 0
    padded &= (out_sem == 255)
    assert padded.any()  # the crop is larger than the scaled image, so padding exists
    assert (out_inst[padded] == 0).all()
    assert set(np.unique(out_inst)) <= {0, 26001}
    labelled = out_sem != 255
    # the red channel encodes the column; the semantic map is column // 10 of the same (resampled) column
    cols = out_img[..., 0][labelled].astype(int)
    assert np.abs(cols // 10 - out_sem[labelled]).max() <= 1


def test_target_and_eval_transforms_give_requested_sizes():
    image, semantic, instance = _scene()
    out = target_train_transform((20, 40), (20, 40))(image, semantic, instance)
    assert [a.shape[:2] for a in out] == [(20, 40)] * 3
    out = eval_transform((10, 20))(image, semantic, instance)
    assert out[1].dtype == np.uint8 and out[2].dtype == np.int32
    assert eval_transform(None) is None


def test_reseeded_augmentations_draw_flip_and_crop_independently():
    pipeline = source_train_transform((32, 64), (0.5, 1.0), True)
    ramp = np.tile(np.arange(192, dtype=np.uint8)[None, :, None], (96, 1, 3))
    flips, offsets = [], []
    for seed in range(400):
        pipeline.reseed(seed)
        image, _, _ = pipeline(ramp, np.zeros((96, 192), np.uint8), np.zeros((96, 192), np.int32))
        row = image[0, :, 0].astype(float)
        flips.append(float(row[-1] < row[0]))
        offsets.append(min(row[0], row[-1]))
    assert 0.4 < np.mean(flips) < 0.6
    assert abs(np.corrcoef(flips, offsets)[0, 1]) < 0.1
    pipeline.reseed(7)
    first = pipeline(ramp, np.zeros((96, 192), np.uint8), np.zeros((96, 192), np.int32))[0]
    pipeline.reseed(7)
    assert np.array_equal(first, pipeline(ramp, np.zeros((96, 192), np.uint8), np.zeros((96, 192), np.int32))[0])
