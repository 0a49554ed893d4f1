"""The eager PyTorch backend: the engine's modules, called as they are."""
from __future__ import annotations

import torch


class TorchBackend:
    """Runs the restorer and the encoder modules themselves (the engine's default).

    Holds the engine's own module objects, so whatever the engine did to them (device, dtype,
    memory format) applies here too.
    """

    name = 'torch'

    def __init__(self, restorer: torch.nn.Module, encoder: torch.nn.Module):
        self.restorer, self.encoder = restorer, encoder

    def describe(self) -> str:
        return f'torch {torch.__version__}'

    def restore(self, x: torch.Tensor, prior: torch.Tensor):
        out = self.restorer(x, prior)
        return out.image, out.mask, out.logits

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.encode(x).embedding
