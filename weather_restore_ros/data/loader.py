"""DataLoaders with reproducible shuffling, single process or DistributedDataParallel."""
from __future__ import annotations

import random
from typing import Iterator

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler, Subset
from torch.utils.data.distributed import DistributedSampler


class SeededShuffleSampler(Sampler[int]):
    """A random permutation that depends only on (seed, epoch): resumable and reproducible."""

    def __init__(self, data_source, seed: int = 0):
        self.n = len(data_source)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def _distributed_active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _worker_init(worker_id: int) -> None:
    # Datasets here draw from per-sample generators; this only makes stray global RNG use in
    # user transforms reproducible too. torch seeds each worker as base_seed + worker_id.
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)
    cv2.setNumThreads(1)      # no OpenCV thread pool per worker (oversubscription)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                num_workers: int = 0, distributed: bool | None = None,
                drop_last: bool | None = None, pin_memory: bool | None = None, **kwargs
                ) -> DataLoader:
    """A DataLoader over ``dataset``.

    ``distributed``: None (default) uses a ``DistributedSampler`` (``seed``, ``shuffle``) when
    ``torch.distributed`` is initialised; True requires it to be initialised; False never uses it.
    Otherwise shuffling uses :class:`SeededShuffleSampler` (the order depends only on seed and
    epoch). ``drop_last`` defaults to ``shuffle`` (training) unless the dataset (per replica) is
    smaller than one batch, where it would leave no batch at all. Workers are not persistent, so
    :func:`set_epoch` on the loader (sampler and dataset) takes effect at the next iteration.
    Extra keyword arguments go to ``DataLoader``.
    """
    if distributed is None:
        distributed = _distributed_active()
    elif distributed and not _distributed_active():
        raise RuntimeError('make_loader(distributed=True) needs torch.distributed initialised '
                           '(torch.distributed.init_process_group)')
    if drop_last is None:
        replicas = torch.distributed.get_world_size() if distributed else 1
        # Dropping the last partial batch of a dataset smaller than one batch would leave none.
        drop_last = shuffle and len(dataset) // replicas >= batch_size
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
    elif shuffle:
        sampler = SeededShuffleSampler(dataset, seed=seed)
    else:
        sampler = None
    g = torch.Generator()
    g.manual_seed(int(seed))
    if num_workers > 0:
        # Forked workers inherit OpenCV's and OpenMP's thread pools mid-state and can hang on
        # their first cv2 call (seen here: a worker stuck in cv2.setNumThreads); spawned ones
        # start clean. The cost is one interpreter start per worker per epoch.
        kwargs.setdefault('multiprocessing_context', 'spawn')
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False,
                      num_workers=num_workers, drop_last=drop_last, pin_memory=pin_memory,
                      worker_init_fn=_worker_init if num_workers > 0 else None, generator=g,
                      persistent_workers=False, **kwargs)


def _datasets(ds) -> Iterator:
    yield ds
    if isinstance(ds, ConcatDataset):
        for d in ds.datasets:
            yield from _datasets(d)
    elif isinstance(ds, Subset):
        yield from _datasets(ds.dataset)


def set_epoch(loader_or_dataset, epoch: int) -> None:
    """Set the epoch of a loader's sampler and of its dataset(s) (through Concat/Subset)."""
    ds = loader_or_dataset
    if isinstance(loader_or_dataset, DataLoader):
        s = loader_or_dataset.sampler
        if hasattr(s, 'set_epoch'):
            s.set_epoch(epoch)
        ds = loader_or_dataset.dataset
    for d in _datasets(ds):
        if hasattr(d, 'set_epoch') and not isinstance(d, (ConcatDataset, Subset)):
            d.set_epoch(epoch)
