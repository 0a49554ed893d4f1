"""Where a run is in its schedule: the learning rate of a step, and the rest of an epoch that
a resumed run continues (the data order is a function of seed and epoch only)."""
from __future__ import annotations

import math

import torch


def lr_lambda(warmup: int, total: int):
    """Linear warm-up, then cosine decay to 1 % of the base rate."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        t = (step - warmup) / max(1, total - warmup)
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f



class _SkipFirst(torch.utils.data.Sampler):
    """A sampler without its first ``n`` indices: the rest of an interrupted epoch."""

    def __init__(self, sampler, n: int):
        self.sampler, self.n = sampler, n

    def __iter__(self):
        it = iter(self.sampler)
        for _ in range(self.n):
            next(it, None)
        return it

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.n)


def rest_of_epoch(loader, batches_done: int):
    """``loader`` without its first ``batches_done`` batches, without loading them."""
    if batches_done == 0:
        return loader
    return torch.utils.data.DataLoader(
        loader.dataset, batch_size=loader.batch_size,
        sampler=_SkipFirst(loader.sampler, batches_done * loader.batch_size),
        num_workers=loader.num_workers, collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory, drop_last=loader.drop_last,
        worker_init_fn=loader.worker_init_fn, generator=loader.generator,
        multiprocessing_context=loader.multiprocessing_context)

