"""Training batches as a pure function of (seed, step): exact resume, worker-count independence and DDP sharding.

Sample `i` of the stream (counted over all processes) is item `perm_e[i mod n]` of the dataset, where `perm_e` is
the seeded permutation of epoch `e = i // n`, augmented with a seed derived from `(seed, i)`. A run resumed at
step k therefore sees exactly the batches an uninterrupted run sees from step k on, and process `r` of `w` takes
positions `r*B .. r*B+B-1` of every global batch of `w*B` samples.

With `class_probabilities` (SAC's optional target importance sampling, see `importance_probabilities`), position `i` instead picks class `i mod C` and
draws an image with probability `uniform * 1/n + (1 - uniform) * share[image, class]`, seeded by `(seed, i)`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from panoptic_st.data.transforms import Pipeline

_SEED_MIX = 0x9E3779B1


def position_generator(seed: int, position: int) -> torch.Generator:
    """The generator of one stream position of a run seeded with `seed`."""
    return torch.Generator().manual_seed(seed * _SEED_MIX + position)


def augmentation_seed(seed: int, position: int) -> int:
    """A 31-bit augmentation seed for stream position `position` of a run seeded with `seed`."""
    return int(torch.randint(2**31 - 1, (), generator=position_generator(seed, position)))


def importance_probabilities(class_pixels: torch.Tensor, uniform: float = 0.25) -> torch.Tensor:
    """[N, C] per-image predicted pixel counts -> [C, N] sampling probabilities of the images for each class.

    Each image's share of the class's pixels, mixed with `uniform`; a class predicted nowhere samples uniformly.
    """
    pixels = class_pixels.double().T
    totals = pixels.sum(dim=1, keepdim=True)
    shares = torch.where(totals > 0, pixels / totals.clamp(min=1), torch.full_like(pixels, 1.0 / pixels.shape[1]))
    return uniform / pixels.shape[1] + (1.0 - uniform) * shares


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of (dataset index, augmentation seed) from `start_batch` on: endless, or `num_batches` of them."""

    def __init__(self, size: int, batch_size: int, seed: int, start_batch: int = 0, rank: int = 0,
                 world_size: int = 1, num_batches: int | None = None,
                 class_probabilities: torch.Tensor | None = None) -> None:
        if size <= 0 or batch_size <= 0:
            raise ValueError(f"need a non-empty dataset and batch, got size={size}, batch_size={batch_size}")
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.start_batch, self.rank, self.world_size = start_batch, rank, world_size
        self.num_batches = num_batches
        self.class_probabilities = class_probabilities
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def permutation(self, epoch: int) -> torch.Tensor:
        """The dataset order of one pass (cached for the current pass)."""
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * _SEED_MIX + 7919 * epoch + 1)
            self._epoch, self._perm = epoch, torch.randperm(self.size, generator=generator)
        return self._perm

    def sample(self, position: int) -> tuple[int, int]:
        """(dataset index, augmentation seed) at a global stream position."""
        if self.class_probabilities is not None:
            probs = self.class_probabilities[position % len(self.class_probabilities)]
            index = int(torch.multinomial(probs, 1, generator=position_generator(self.seed + 1, position)))
            return index, augmentation_seed(self.seed, position)
        epoch, offset = divmod(position, self.size)
        return int(self.permutation(epoch)[offset]), augmentation_seed(self.seed, position)

    def batch(self, step: int) -> list[tuple[int, int]]:
        """This process's share of global batch `step`."""
        first = (step * self.world_size + self.rank) * self.batch_size
        return [self.sample(first + j) for j in range(self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_batch
        while self.num_batches is None or step < self.start_batch + self.num_batches:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("an endless StepBatchSampler has no length")
        return self.num_batches


class SeededSamples(Dataset):
    """Reads `(index, seed)` keys: re-seeds the augmentation pipeline, then returns `dataset[index]`."""

    def __init__(self, dataset: Dataset, pipeline: Pipeline) -> None:
        self.dataset, self.pipeline = dataset, pipeline

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        self.pipeline.reseed(seed)
        return self.dataset[index]
