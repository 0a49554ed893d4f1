"""Training losses: reconstruction (Charbonnier, PSNR, SSIM), CLIP soft residual distillation
(SRD), weather classification, and ``RestorationLoss`` combining them with weights.

All losses return scalars averaged over the batch and are safe in fp32 under autocast (the SSIM
statistics and the SRD norms are computed in fp32).
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F


# ---------------------------------------------------------------------- reconstruction
def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``mean(sqrt((pred - target)^2 + eps^2))``: a smooth L1 (robust to outliers, no kink at 0).

    Its minimum is ``eps`` (not 0), the usual definition in deraining papers (MPRNet, Restormer).
    """
    d = pred.float() - target.float()
    return torch.sqrt(d * d + eps * eps).mean()


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Negative PSNR in dB, ``mean_b 10 log10(MSE_b + eps)`` (NAFNet's PSNR loss, for images in
    [0, 1]), capped at 40 dB by ``eps``.

    Why next to Charbonnier: an L1-type loss is minimised by the conditional *median*, so where
    the network cannot tell which way the correction goes (the content behind a lens raindrop)
    "change nothing" is a stable optimum. A squared error is minimised by the conditional *mean*
    (a plausible fill) and is what PSNR measures; the log normalises each image by its own
    error, so hard images are not drowned by easy ones in the batch. (On its own it did not make
    the small CPU-trained model remove drops: see the model card.)

    The cap matters for pairs with nothing to restore (clear weather: target == input). With
    NAFNet's ``eps = 1e-8`` their loss runs to -80 dB and its gradient (``~ 1 / MSE``) outweighs
    every degraded image: a fine-tune on raindrops + clear frames learned to shut its output.
    """
    d = pred.float() - target.float()
    mse = (d * d).flatten(1).mean(dim=1)
    return (10.0 / math.log(10.0) * torch.log(mse + eps)).mean()


def tone_loss(pred: torch.Tensor, target: torch.Tensor, cell: int = 16,
              eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier between the ``cell x cell`` means of prediction and target: the image's
    local tone, which the pixel loss weighs no more than any texture error.

    Why: a restorer unsure whether a frame has a veil (light rain over a hazy sky, drops on a
    bright scene) splits the difference and darkens the whole frame by a few grey levels, which
    costs more PSNR than the streaks it removes (Rain100L's worst images, the held-out drops) and
    is what a viewer sees first. Weighting the tone lets the network be sure before it dehazes.
    """
    return charbonnier(F.avg_pool2d(pred, cell, ceil_mode=True),
                       F.avg_pool2d(target, cell, ceil_mode=True), eps)


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    g = g / g.sum()
    return g.view(1, 1, 1, size).expand(channels, 1, 1, size).contiguous()


def ssim(pred: torch.Tensor, target: torch.Tensor, window_size: int = 11, sigma: float = 1.5,
         data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) of ``[B, C, H, W]`` images, per channel, differentiable.

    Gaussian window ``11``, ``sigma 1.5``, ``K1 = 0.01``, ``K2 = 0.03``, 'valid' filtering (no
    padding artefacts at the borders), as in the reference implementation; the window shrinks
    (keeping it odd) for images smaller than 11 pixels. The separable filter is two 1-D convs.
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f'ssim needs two [B, C, H, W] tensors of one shape, '
                         f'got {tuple(pred.shape)} and {tuple(target.shape)}')
    x, y = pred.float(), target.float()
    c = x.shape[1]
    size = min(window_size, x.shape[-2], x.shape[-1])
    size = size if size % 2 else size - 1
    wx = _gaussian_window(size, sigma, c, x.device, x.dtype)   # [C, 1, 1, k]
    wy = wx.transpose(-1, -2)                                  # [C, 1, k, 1]

    def blur(t):
        return F.conv2d(F.conv2d(t, wx, groups=c), wy, groups=c)

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    # fp32 even under autocast: the variances are differences of nearly equal blurred moments.
    with torch.autocast(device_type=x.device.type, enabled=False):
        mu_x, mu_y = blur(x), blur(y)
        mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
        s_xx = blur(x * x) - mu_xx
        s_yy = blur(y * y) - mu_yy
        s_xy = blur(x * y) - mu_xy
        num = (2 * mu_xy + c1) * (2 * s_xy + c2)
        ssim_map = num / ((mu_xx + mu_yy + c1) * (s_xx + s_yy + c2))
    return ssim_map.mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, **kw) -> torch.Tensor:
    """``1 - ssim(pred, target)``."""
    return 1.0 - ssim(pred, target, **kw)


# ---------------------------------------------------------------------- SAR gate supervision
def degradation_mask(degraded: torch.Tensor, clean: torch.Tensor,
                     threshold: float = 4.0 / 255.0) -> torch.Tensor:
    """``[B, 1, H, W]`` 1.0 where the weather changed a pixel by more than ``threshold`` (any
    channel, images in [0, 1]), else 0.0: what the SAR gate should find on a paired sample."""
    d = (degraded.float() - clean.float()).abs().amax(dim=1, keepdim=True)
    return (d > threshold).float()


def gate_loss(gates: Sequence[torch.Tensor], degraded: torch.Tensor, clean: torch.Tensor,
              threshold: float = 4.0 / 255.0) -> torch.Tensor:
    """Binary cross-entropy of each gate (``[B, 1, h, w]`` in [0, 1] at any stride: the SAR
    gates, the published mask) against the pair's degradation mask, area-pooled to the gate's grid
    (a soft target: the degraded fraction of each cell); mean over the gates.

    Why: the paper localises degradation through CLIP-SRD, which needs a pretrained CLIP
    teacher. Without one the gates stayed ~0.5 everywhere, so the published degradation mask
    said nothing and a correction learned for one weather (lens drops) was applied to every
    pixel of every image. Synthetic pairs give the mask for free. (The finest SAR gate sees only
    a few pixels, too few to find a drop; ``ModelConfig.mask_head`` sees the U-Net's context.)
    A gate's grid covers the padded image (cropped to the valid cells), so the mask is padded
    (replicate) to match.
    """
    mask = degradation_mask(degraded, clean, threshold)
    h, w = mask.shape[-2:]
    terms = []
    for g in gates:
        gh, gw = g.shape[-2:]
        f = 1                                 # the gate's stride: a power of two
        while gh * f < h or gw * f < w:
            f *= 2
        m = F.pad(mask, (0, gw * f - w, 0, gh * f - h), mode='replicate')
        target = F.avg_pool2d(m, f) if f > 1 else m
        # Written out rather than F.binary_cross_entropy, which raises on a NaN gate: a NaN
        # loss is what the trainer's non-finite-step guard skips and counts.
        p = g.float().clamp(1e-6, 1.0 - 1e-6)
        terms.append(-(target * p.log() + (1.0 - target) * (1.0 - p).log()).mean())
    return torch.stack(terms).mean()


# ---------------------------------------------------------------------- CLIP-SRD
def soft_residual_distillation(student: torch.Tensor, teacher_degraded: torch.Tensor,
                               teacher_clean: torch.Tensor, temperature: float = 0.1,
                               l2_weight: float = 0.0, eps: float = 1e-6) -> torch.Tensor:
    """CLIP soft residual distillation (SRD). All token tensors are ``[B, N, C]``.

    Teacher: CLIP's patch-token residual ``r = tokens(degraded) - tokens(clean)`` -- what the
    weather changed, in CLIP's semantic feature space -- **detached** (CLIP is frozen; no
    gradient ever reaches the teacher tokens). Student: the projection of the SAR gated residual
    features onto the same patch grid (``WeatherRestorer.srd_student``).

    *Soft* weighting: patches are weighted by how strongly the weather changed them,
    ``w_n = softmax_n(m_n / T)`` with ``m_n = ||r_n|| / max_n' ||r_n'||`` in ``[0, 1]`` (normalised
    per image, so the temperature is independent of CLIP's token scale and of the layer the
    tokens come from). At ``T = 0.1`` the most-degraded patch weighs ``e^10`` times an unchanged
    one; a uniformly degraded image (haze) gets near-uniform weights. Unchanged patches have no
    meaningful residual direction, so they should not count much (patches below 1e-6 of the
    peak are dropped and the weights renormalised).

    Per image: ``sum_n w_n * (1 - cos(s_n, r_n))`` -- the student must point where CLIP's
    residual points (direction, not scale: the student lives in a different feature space and a
    1x1 projection cannot be expected to match CLIP's norms) -- plus, if ``l2_weight > 0``, a
    scale-matching term ``l2_weight * sum_n w_n ||s_n - r_n||^2 / sum_n w_n ||r_n||^2`` (relative
    squared error, also invariant to CLIP's scale). Both are exactly 0 when ``s == r``.

    Images whose teacher residual vanishes (clean training pairs: degraded == clean) carry no
    direction to distil and are left out of the batch mean; a batch of only such images gives 0
    (still attached to the student's graph).
    """
    if not (student.shape[:2] == teacher_degraded.shape[:2] == teacher_clean.shape[:2]):
        raise ValueError(f'SRD token shapes differ: student {tuple(student.shape)}, teacher '
                         f'{tuple(teacher_degraded.shape)} / {tuple(teacher_clean.shape)}')
    if student.shape[-1] != teacher_degraded.shape[-1]:
        raise ValueError(f'SRD: student width {student.shape[-1]} != CLIP token width '
                         f'{teacher_degraded.shape[-1]} (set ModelConfig.srd_dim)')
    s = student.float()
    with torch.no_grad():
        r = (teacher_degraded.float() - teacher_clean.float()).detach()
        norm = r.norm(dim=-1)                                      # [B, N]
        peak = norm.amax(dim=1, keepdim=True)                      # [B, 1]
        valid = peak.squeeze(1) > eps                              # [B]
        rel = norm / peak.clamp_min(eps)                           # [B, N] in [0, 1]
        w = torch.softmax(rel / temperature, dim=1)
        # Patches CLIP did not change at all (|r| < 1e-6 of the peak) have no direction to learn.
        w = w * (rel > 1e-6)
        w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-30)
    # Cosine with a tiny eps (F.cosine_similarity's 1e-8 on the norm product would misjudge
    # small-but-valid residuals).
    cos = (F.normalize(s, dim=-1, eps=1e-12) * F.normalize(r, dim=-1, eps=1e-20)).sum(-1)  # [B,N]
    per_image = (w * (1.0 - cos)).sum(dim=1)
    if l2_weight > 0:
        err = (s - r).pow(2).sum(-1)
        ref = (w * norm.pow(2)).sum(dim=1).clamp_min(eps)
        per_image = per_image + l2_weight * (w * err).sum(dim=1) / ref
    n_valid = valid.sum()
    return (per_image * valid).sum() / n_valid.clamp_min(1)


# ---------------------------------------------------------------------- classification
def weather_classification_loss(logits: torch.Tensor, labels: torch.Tensor,
                                label_smoothing: float = 0.0,
                                ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy of the weather head; ``labels == ignore_index`` (unknown weather) are
    skipped, and a batch without any label gives 0 instead of NaN."""
    labels = labels.long()
    if not bool((labels != ignore_index).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing,
                           ignore_index=ignore_index)


# ---------------------------------------------------------------------- combination
DEFAULT_LOSS_WEIGHTS = {'recon': 1.0, 'psnr': 0.0, 'ssim': 0.2, 'tone': 0.0, 'gate': 0.0,
                        'srd': 0.1, 'cls': 0.05}


class RestorationLoss(nn.Module):
    """Weighted sum ``recon * charbonnier + psnr * (-PSNR) + ssim * (1 - SSIM) + tone *
    charbonnier(16 px means) + gate * BCE(SAR
    gates, degradation mask) + srd * SRD + cls * CE``.

    ``weights``: any subset of ``DEFAULT_LOSS_WEIGHTS`` (missing keys take its values; unknown
    keys raise). A term is computed only when its weight is non-zero and its inputs are given
    (gate needs a ``RestorerOutput`` and the degraded ``inputs``, SRD the three token tensors,
    cls labels), so the same module serves paired data with or without
    CLIP teachers or weather labels.

    ``forward(pred, target, ...) -> (total, parts)``; ``pred`` is the restored image or a
    ``RestorerOutput`` (then ``logits`` default to ``pred.logits``). ``parts`` maps each computed
    term (unweighted) and ``'total'`` to detached scalar tensors, for logging.
    """

    def __init__(self, weights: Optional[Mapping[str, float]] = None,
                 srd_temperature: float = 0.1, srd_l2_weight: float = 0.0,
                 label_smoothing: float = 0.0, charbonnier_eps: float = 1e-3):
        super().__init__()
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(DEFAULT_LOSS_WEIGHTS))
        if unknown:
            raise ValueError(f'unknown loss weight(s) {unknown}; '
                             f'valid: {sorted(DEFAULT_LOSS_WEIGHTS)}')
        self.weights = {**DEFAULT_LOSS_WEIGHTS, **{k: float(v) for k, v in weights.items()}}
        self.srd_temperature = srd_temperature
        self.srd_l2_weight = srd_l2_weight
        self.label_smoothing = label_smoothing
        self.charbonnier_eps = charbonnier_eps

    def forward(self, pred, target: torch.Tensor, *, logits: Optional[torch.Tensor] = None,
                labels: Optional[torch.Tensor] = None,
                inputs: Optional[torch.Tensor] = None,
                srd_student: Optional[torch.Tensor] = None,
                teacher_degraded: Optional[torch.Tensor] = None,
                teacher_clean: Optional[torch.Tensor] = None,
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        gates = None
        if hasattr(pred, 'image'):
            if logits is None:
                logits = pred.logits
            gates = [pred.mask, *pred.gates]   # the published mask and every SAR gate
            pred = pred.image
        w = self.weights
        parts: dict[str, torch.Tensor] = {}
        total = pred.new_zeros((), dtype=torch.float32)
        if w['recon']:
            parts['recon'] = charbonnier(pred, target, self.charbonnier_eps)
            total = total + w['recon'] * parts['recon']
        if w['psnr']:
            parts['psnr'] = psnr_loss(pred, target)
            total = total + w['psnr'] * parts['psnr']
        if w['ssim']:
            parts['ssim'] = ssim_loss(pred, target)
            total = total + w['ssim'] * parts['ssim']
        if w['tone']:
            parts['tone'] = tone_loss(pred, target)
            total = total + w['tone'] * parts['tone']
        if w['gate'] and gates is not None and inputs is not None:
            parts['gate'] = gate_loss(gates, inputs, target)
            total = total + w['gate'] * parts['gate']
        have_srd = not (srd_student is None or teacher_degraded is None or teacher_clean is None)
        if w['srd'] and have_srd:
            parts['srd'] = soft_residual_distillation(srd_student, teacher_degraded, teacher_clean,
                                                      self.srd_temperature, self.srd_l2_weight)
            total = total + w['srd'] * parts['srd']
        if w['cls'] and logits is not None and labels is not None:
            parts['cls'] = weather_classification_loss(logits, labels, self.label_smoothing)
            total = total + w['cls'] * parts['cls']
        out = {k: v.detach() for k, v in parts.items()}
        out['total'] = total.detach()
        return total, out
