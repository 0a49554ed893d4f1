"""The training objective: restorer + prior encoder + losses as one module (what DDP wraps)."""
from __future__ import annotations

import torch

from ..encoders import ClipEncoder
from ..model.losses import RestorationLoss
from ..model.restorer import WeatherRestorer
from .config import LOSS_OPTIONS, LOSS_TERMS


class Objective(torch.nn.Module):
    """Restorer + prior encoder + losses as one module, so that DDP wraps a single forward and
    sees every parameter that gets a gradient (the restorer's and a trainable CLIP tower's).

    ``loss``: weights of :data:`LOSS_TERMS` (recon default 1.0, the others off when missing) and
    :data:`LOSS_OPTIONS`, combined by :class:`RestorationLoss`. 'srd' needs ``teacher``, a frozen
    CLIP (the prior encoder itself when that is frozen: then one CLIP pass gives both the prior
    embedding and the degraded image's teacher tokens).
    ``forward(x, y, label) -> (weighted total, {term: unweighted detached value})``.
    """

    def __init__(self, model: WeatherRestorer, clip: ClipEncoder, teacher: ClipEncoder | None,
                 loss: dict):
        super().__init__()
        self.model, self.clip = model, clip
        self._teacher = [teacher]  # a list: not a submodule, so DDP neither syncs nor owns it
        weights = {k: float(loss.get(k, 1.0 if k == 'recon' else 0.0)) for k in LOSS_TERMS}
        if weights['srd'] > 0 and teacher is None:
            raise ValueError('loss.srd > 0 needs a CLIP teacher')
        opt = {k: float(loss.get(k, v)) for k, v in LOSS_OPTIONS.items()}
        self.criterion = RestorationLoss(weights, srd_temperature=opt['srd_temperature'],
                                         srd_l2_weight=opt['srd_l2_weight'],
                                         label_smoothing=opt['label_smoothing'])

    @property
    def weights(self) -> dict[str, float]:
        return self.criterion.weights

    def forward(self, x: torch.Tensor, y: torch.Tensor, label: torch.Tensor):
        teacher = self._teacher[0]
        srd = self.weights['srd'] > 0
        shared = srd and teacher is self.clip
        prior = self.clip.encode(x, with_tokens=shared)
        out = self.model(x, prior.embedding)
        tokens = {}
        if srd:
            with torch.no_grad():
                degraded = prior if shared else teacher.encode(x, with_tokens=True)
                clean = teacher.encode(y, with_tokens=True)
            tokens = dict(srd_student=self.model.srd_student(out.residuals, degraded.grid),
                          teacher_degraded=degraded.tokens, teacher_clean=clean.tokens)
        total, parts = self.criterion(out, y, labels=label, inputs=x, **tokens)
        del parts['total']
        return total, parts

