"""One rank of a torchrun training run for test_training.py: trains from a YAML config and
writes what this rank saw (sample indices in order, step, final weights) to OUT/<rank>.json.

    torchrun --standalone --nproc_per_node=2 test/ddp_worker.py CONFIG.yaml OUT
"""
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import Dataset

from weather_restore_ros.training.config import TrainConfig
from weather_restore_ros.training.trainer import Trainer


class Recording(Dataset):
    """A dataset that remembers which indices this process read (num_workers 0)."""

    def __init__(self, inner):
        self.inner, self.indices = inner, []

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        self.indices.append(int(i))
        return self.inner[i]

    def set_epoch(self, epoch):
        self.inner.set_epoch(epoch)


def main(config: str, out: str) -> None:
    torch.set_num_threads(1)
    trainer = Trainer(TrainConfig.from_yaml(config), device='cpu')
    trainer.train_set = Recording(trainer.train_set)
    trainer.train(progress=False)
    record = {'rank': trainer.rank, 'world': trainer.world, 'steps': trainer.step,
              'indices': trainer.train_set.indices,
              'weights': [float(p.double().sum()) for p in trainer.model.parameters()]}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f'{trainer.rank}.json').write_text(json.dumps(record))
    trainer.close()


if __name__ == '__main__':
    main(*sys.argv[1:3])
