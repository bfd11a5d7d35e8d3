import numpy as np
import pytest
import torch
from sklearn.cluster import MeanShift, get_bin_seeds
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from panoptic_st.instance.meanshift import (
    agglomerative_clusters,
    bin_seeds,
    mean_shift,
    merge_clusters,
    nearest_center,
)


@pytest.fixture(autouse=True)
def one_thread():
    """One OpenMP thread for torch and scikit-learn: on a shared 2-core machine two threads make
    scikit-learn's per-query parallel loops tens of times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def blobs(n: int, dim: int, k: int, seed: int = 1, spread: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Blob data whose typical distance from a blob centre is `spread` (bandwidth 0.5 resolves the blobs)."""
    x, y = make_blobs(n, dim, centers=k, cluster_std=spread / np.sqrt(dim), center_box=(-10, 10), random_state=seed)
    return x.astype(np.float32), y


def sklearn_labels(x: np.ndarray, bandwidth: float = 0.5, **kw) -> np.ndarray:
    return MeanShift(bandwidth=bandwidth, bin_seeding=True, **kw).fit(x).labels_


@pytest.mark.parametrize(
    ("n", "dim", "k"),
    [(1000, 2, 2), (3000, 2, 50), (1000, 16, 50), (5000, 4, 12), (10000, 8, 12), (4000, 16, 50), (2000, 12, 30)],
)
def test_agrees_with_sklearn(n, dim, k):
    x, _ = blobs(n, dim, k)
    labels, centers = mean_shift(torch.from_numpy(x), 0.5)
    expected = sklearn_labels(x)
    assert labels.dtype == torch.long and labels.shape == (n,)
    assert centers.shape == (expected.max() + 1, dim)
    assert adjusted_rand_score(expected, labels.numpy()) >= 0.99


def test_agrees_with_sklearn_on_overlapping_blobs():
    # wide blobs: sklearn itself finds many spurious modes; the two must still agree
    x, _ = blobs(800, 4, 4, seed=3, spread=0.7)
    labels, _ = mean_shift(torch.from_numpy(x), 0.5)
    assert adjusted_rand_score(sklearn_labels(x), labels.numpy()) >= 0.99


def test_min_bin_freq_and_bandwidth_as_sklearn():
    x, _ = blobs(3000, 3, 8, seed=4, spread=1.2)
    labels, _ = mean_shift(torch.from_numpy(x), 1.0, min_bin_freq=5)
    expected = sklearn_labels(x, bandwidth=1.0, min_bin_freq=5)
    assert adjusted_rand_score(expected, labels.numpy()) >= 0.99


@pytest.mark.slow
def test_agrees_with_sklearn_100k():
    x, _ = blobs(100_000, 8, 20, seed=5)
    labels, _ = mean_shift(torch.from_numpy(x), 0.5)
    assert adjusted_rand_score(sklearn_labels(x), labels.numpy()) >= 0.99


def test_bin_seeds_match_sklearn():
    x, _ = blobs(2000, 3, 5, seed=2, spread=1.0)
    for freq in (1, 3):
        ours = {tuple(np.round(r, 4)) for r in bin_seeds(torch.from_numpy(x), 0.5, freq).numpy()}
        theirs = {tuple(np.round(r, 4)) for r in get_bin_seeds(x, 0.5, freq)}
        assert ours == theirs


def test_bin_seeds_high_dimensional_fallback():
    # 16 dims spanning many bins: the exact float64 key would overflow, rows are compared directly
    x = torch.randn(500, 16) * 20
    x[250:] = x[:250]
    seeds = bin_seeds(x, 0.5)
    assert seeds.shape == (250, 16)


def test_modes_within_bandwidth_are_merged_and_all_points_labelled():
    # two tight groups 0.4 apart are one mode; a far group is another
    x = torch.cat([torch.zeros(30, 2), torch.full((20, 2), 0.2), torch.full((25, 2), 5.0)])
    labels, centers = mean_shift(x, 0.5)
    assert centers.shape[0] == 2
    assert labels[:50].unique().numel() == 1 and labels[50:].unique().numel() == 1
    assert labels[0] != labels[-1]
    assert torch.allclose(centers[labels[-1]], torch.tensor([5.0, 5.0]))


def test_chunking_and_groups_do_not_change_result():
    x, _ = blobs(3000, 4, 10, seed=6)
    points = torch.from_numpy(x)
    reference, _ = mean_shift(points, 0.5)
    for options in ({"chunk_size": 1000}, {"n_groups": 1}, {"n_groups": 200}, {"bin_seeding": False}):
        labels, _ = mean_shift(points, 0.5, **options)
        assert adjusted_rand_score(reference.numpy(), labels.numpy()) == pytest.approx(1.0)


def test_float64_and_single_point():
    labels, centers = mean_shift(torch.tensor([[1.0, 2.0]], dtype=torch.float64), 0.5)
    assert labels.tolist() == [0] and centers.dtype == torch.float64
    assert torch.allclose(centers, torch.tensor([[1.0, 2.0]], dtype=torch.float64))


def test_points_seed_when_every_bin_centre_is_off_its_points():
    # 8-d points at 0.45 in every coordinate: their bin centre (the origin) lies 1.27 away, beyond bandwidth 1
    points = torch.full((30, 8), 0.45) + torch.randn(30, 8) * 0.01
    with pytest.raises(ValueError, match="No point was within bandwidth"):
        MeanShift(bandwidth=1.0, bin_seeding=True).fit(points.numpy())
    labels, centers = mean_shift(points, 1.0)
    assert labels.tolist() == [0] * 30
    torch.testing.assert_close(centers[0], points.mean(0), atol=1e-5, rtol=0)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="non-empty"):
        mean_shift(torch.zeros(0, 3), 0.5)
    with pytest.raises(ValueError, match="bandwidth"):
        mean_shift(torch.zeros(4, 3), 0.0)
    with pytest.raises(ValueError, match="no seed"):
        mean_shift(torch.randn(20, 3) * 100, 0.5, min_bin_freq=5)


def test_nearest_center_chunked():
    points = torch.tensor([[0.0, 0.0], [4.0, 4.0], [0.9, 0.0], [3.0, 3.5]])
    centers = torch.tensor([[0.0, 0.0], [4.0, 4.0]])
    assert nearest_center(points, centers, chunk_size=2).tolist() == [0, 1, 0, 1]


def test_merge_clusters_by_decreasing_size():
    # sizes 5, 3, 4, 1 with means 0, 1.5, 10, 11: the size-3 cluster joins the first anchor, the size-1 the second
    means = [0.0, 1.5, 10.0, 11.0]
    sizes = [5, 3, 4, 1]
    labels = torch.cat([torch.full((s,), i) for i, s in enumerate(sizes)])
    emb = torch.tensor([means[i] for i in labels.tolist()])[:, None]
    merged = merge_clusters(emb, labels, delta_d=2.0)
    expected = torch.cat([torch.full((s,), t) for s, t in zip(sizes, [0, 0, 1, 1])])
    assert merged.tolist() == expected.tolist()
    assert merge_clusters(emb, labels, delta_d=1.2).unique().numel() == 3
    assert merge_clusters(emb, labels, delta_d=0.5).unique().numel() == 4


def test_merge_visits_largest_cluster_first():
    # the largest cluster (mean 1.5) is the anchor that both others join; in label order 3.2 would stay apart
    labels = torch.tensor([0] * 2 + [1] * 10 + [2] * 5)
    emb = torch.tensor([0.0] * 2 + [1.5] * 10 + [3.2] * 5)[:, None]
    assert merge_clusters(emb, labels, delta_d=2.0).tolist() == [0] * 17


def test_merge_compares_to_anchor_not_to_merged_mean():
    # 0 -> anchor; 1.9 joins it; 3.8 is 1.9 from the second cluster but 3.8 from the anchor: new instance
    labels = torch.tensor([0] * 6 + [1] * 5 + [2] * 4)
    emb = torch.tensor([0.0] * 6 + [1.9] * 5 + [3.8] * 4)[:, None]
    assert merge_clusters(emb, labels, delta_d=2.0).unique().numel() == 2


def test_agglomerative_clusters():
    x, y = blobs(600, 4, 3, seed=7)
    points = torch.from_numpy(x)
    labels = agglomerative_clusters(points, distance_threshold=2.0)
    assert adjusted_rand_score(y, labels.numpy()) == pytest.approx(1.0)
    sub = agglomerative_clusters(points, distance_threshold=2.0, max_points=100, generator=torch.Generator().manual_seed(0))
    assert sub.shape == (600,) and adjusted_rand_score(y, sub.numpy()) == pytest.approx(1.0)
