"""DistributedSampler: each rank's share of a dataset's indices, as torch.utils.data's."""

import math
import numbers

import numpy as np

from . import _group as G


# torch.randperm switches to another algorithm (64-bit draws, an inside-out shuffle) at and
# above this many elements; datasets that large use NumPy's permutation instead.
_RANDPERM_SMALL = (2**32 - 1) // 20


def randperm_like_torch(n, seed):
    """torch.randperm(n, generator=torch.Generator().manual_seed(seed)) without torch, as an
    int64 array, for n below about 2**32 / 20.

    torch's CPU generator is MT19937 seeded with the seed's low 32 bits by the reference
    init_genrand, as NumPy's legacy RandomState(seed); randperm then swaps element i with
    element i + r_i mod (n - i) for i = 0 .. n - 2, r_i the generator's successive 32-bit
    outputs (which RandomState.randint over [0, 2**32) returns unchanged).
    """
    if not -2**63 <= seed < 2**64:
        raise ValueError(f"randperm_like_torch: seed must be in [-2**63, 2**64) as torch's "
                         f"manual_seed takes it, got {seed}")
    seed %= 2**64  # torch's manual_seed takes a negative seed modulo 2**64
    if n >= _RANDPERM_SMALL:
        return np.random.default_rng(seed).permutation(n)
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    draws = np.random.RandomState(seed & 0xFFFFFFFF).randint(0, 2**32, size=n - 1,
                                                             dtype=np.uint32)
    partners = draws.astype(np.int64) % np.arange(n, 1, -1) + np.arange(n - 1)
    order = list(range(n))
    for i, j in enumerate(partners.tolist()):
        order[i], order[j] = order[j], order[i]
    return np.array(order, dtype=np.int64)


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"DistributedSampler: {name} must be an int, got {value!r}")
    return int(value)


class DistributedSampler:
    """Indices of rank `rank`'s shard of `dataset` (anything with len(), or that length as an
    int) for the current epoch.

    Every rank draws the same permutation (seed + epoch; call set_epoch(epoch) at the start of
    each epoch for a new order) and takes every num_replicas-th index starting at its rank. With
    drop_last=False the index list is padded by repeating its start until it divides evenly,
    so every rank gets ceil(len / num_replicas) indices; with drop_last=True the tail is dropped
    instead (floor). num_replicas and rank default to the process group's. The permutation is
    torch's: the index lists equal torch.utils.data.DistributedSampler's for the same arguments
    and epoch (see randperm_like_torch), up to 2**32 / 20 (214,748,364) samples; a larger
    dataset's order is NumPy's permutation. seed + epoch must be in [-2**63, 2**64), as for
    torch's manual_seed.
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
                 drop_last=False):
        n = _count(dataset, "dataset") if isinstance(dataset, numbers.Integral) else len(dataset)
        if num_replicas is None:
            num_replicas = G._require("DistributedSampler").size
        if rank is None:
            rank = G._require("DistributedSampler").rank
        num_replicas, rank = _count(num_replicas, "num_replicas"), _count(rank, "rank")
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be at least 1, "
                             f"got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas - 1}], "
                             f"got {rank}")
        self.dataset = dataset
        self.dataset_len, self.num_replicas, self.rank = n, num_replicas, rank
        self.shuffle, self.seed, self.drop_last = bool(shuffle), _count(seed, "seed"), drop_last
        self.epoch = 0
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch):
        self.epoch = _count(epoch, "epoch")

    @property
    def real_count(self):
        """How many of this rank's indices are the dataset's own: the padding (drop_last=False)
        repeats indices at the end of the padded order, so it comes last in every shard."""
        if self.drop_last:
            return self.num_samples
        return max(0, -(-(self.dataset_len - self.rank) // self.num_replicas))

    def indices(self):
        """This rank's indices for the current epoch, as an int64 array."""
        n = self.dataset_len
        if self.shuffle:
            order = randperm_like_torch(n, self.seed + self.epoch)
        else:
            order = np.arange(n)
        if not self.drop_last:
            pad = self.total_size - n
            if pad > 0:
                order = np.concatenate([order, np.resize(order, pad)]) if n else order
        else:
            order = order[:self.total_size]
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return self.num_samples
