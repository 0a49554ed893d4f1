"""Losses: Charbonnier, SSIM, CLIP soft residual distillation, classification, RestorationLoss."""
import pytest
import torch

from weather_restore_ros.model import build_model
from weather_restore_ros.model.losses import (RestorationLoss, charbonnier,
                                              degradation_mask, gate_loss, psnr_loss,
                                              soft_residual_distillation, ssim, ssim_loss, tone_loss,
                                              weather_classification_loss)


def _tokens(b=2, n=49, c=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.randn(b, n, c, generator=g)
    # Degradation concentrated on some patches, weak elsewhere.
    strength = torch.rand(b, n, 1, generator=g) ** 3
    deg = clean + strength * torch.randn(b, n, c, generator=g) * 2
    return deg, clean


def test_charbonnier():
    x = torch.rand(2, 3, 8, 8)
    assert charbonnier(x, x).item() == pytest.approx(1e-3, rel=1e-4)     # minimum is eps
    assert charbonnier(x, x + 0.5).item() == pytest.approx((0.25 + 1e-6) ** 0.5, rel=1e-5)
    p = x.clone().requires_grad_()
    charbonnier(p, x + 0.1).backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_tone_loss_weighs_a_global_shift_and_not_texture():
    """A frame darkened by 6 grey levels costs the tone loss the whole shift; zero-mean texture
    noise, which the pixel loss charges more, nearly nothing."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 64, 64, generator=g)
    darker = x - 6 / 255
    noisy = x + (torch.rand(2, 3, 64, 64, generator=g) - 0.5) * 32 / 255   # mean |e| 8
    assert tone_loss(darker, x).item() == pytest.approx(6 / 255, rel=0.01)
    assert tone_loss(noisy, x).item() < 0.1 * tone_loss(darker, x).item()
    assert charbonnier(noisy, x).item() > charbonnier(darker, x).item()
    weights = RestorationLoss({'tone': 1.0, 'ssim': 0.0, 'srd': 0.0, 'cls': 0.0})
    total, parts = weights(darker, x)
    assert parts['tone'].item() == pytest.approx(tone_loss(darker, x).item())
    assert total.item() == pytest.approx(parts['recon'].item() + parts['tone'].item(), rel=1e-5)


def test_psnr_loss_is_minus_psnr_averaged_per_image():
    x = torch.rand(2, 3, 8, 8)
    off = torch.tensor([0.1, 0.03]).view(2, 1, 1, 1)   # per-image errors: 20 dB and 30.5 dB
    # -(20 + 30) / 2: MSE + 1e-4 = 0.0101 and 0.001
    assert psnr_loss(x, x + off).item() == pytest.approx(-(19.957 + 30.0) / 2, abs=1e-3)
    # The gradient is the squared error's (towards the mean, not the median) divided by the
    # image's own MSE, so a nearly-right image still gets a pull (plain MSE's would vanish).
    p = x.clone().requires_grad_()
    psnr_loss(p, x + off).backward()
    g = p.grad.abs().flatten(1).mean(1)
    assert torch.isfinite(p.grad).all()
    assert g[1].item() == pytest.approx(g[0].item() * (0.03 / 0.001) / (0.1 / 0.0101), rel=1e-3)
    # Capped at 40 dB: a pair with nothing to restore cannot dominate the batch.
    assert psnr_loss(x, x).item() == pytest.approx(-40.0, abs=1e-3)
    # A frame off by one grey level pulls at most a few times harder than a 20 dB one (without
    # the cap: ~26 times, and without bound as it approaches the target).
    y = x * 0.5 + 0.25                        # no clamping at 0 or 1
    p = y.clone().requires_grad_()
    psnr_loss(p, y + torch.tensor([1 / 255, 0.1]).view(2, 1, 1, 1)).backward()
    g = p.grad.abs().flatten(1).mean(1)
    assert 1.0 < (g[0] / g[1]).item() < 5.0


def test_gate_loss_rewards_gates_that_find_the_degraded_pixels():
    torch.manual_seed(0)
    clean = torch.rand(1, 3, 37, 45)                     # odd size: gates cover the padded grid
    degraded = clean.clone()
    degraded[..., 4:20, 8:30] = (degraded[..., 4:20, 8:30] + 0.3).clamp(max=1.0)  # a "drop"
    degraded[..., 30, 40] += 0.01                        # below the 4/255 threshold
    mask = degradation_mask(degraded, clean)
    assert mask.shape == (1, 1, 37, 45) and mask[0, 0, 30, 40] == 0
    assert 0.9 * 16 * 22 < mask.sum() <= 16 * 22
    model = build_model('small', clip_dim=32)
    out = model(degraded, torch.randn(1, 32))
    assert [tuple(g.shape[-2:]) for g in out.gates] == [(19, 23), (10, 12), (5, 6), (3, 3)]

    def gates_from(m):   # gates that copy a mask, at each gate's grid
        return [torch.nn.functional.interpolate(m, size=g.shape[-2:], mode='area')
                .clamp(0.02, 0.98) for g in out.gates]
    right = gate_loss(gates_from(mask), degraded, clean)
    wrong = gate_loss(gates_from(1 - mask), degraded, clean)
    unsure = gate_loss([torch.full_like(g, 0.5) for g in out.gates], degraded, clean)
    assert right < unsure < wrong
    # Through the model, the loss reaches the gate heads (and nothing breaks under autocast).
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = gate_loss(out.gates, degraded, clean)
    assert loss.dtype == torch.float32
    loss.backward()
    assert model.encoder.sar[0].gate[0].weight.grad.abs().sum() > 0
    # The BCE of soft targets equals torch's; a NaN gate gives a NaN loss (which the trainer
    # skips and counts), not an exception.
    g, m = torch.rand(2, 1, 5, 5), (torch.rand(2, 1, 5, 5) > 0.5).float()
    pair = (m.expand(2, 3, 5, 5) * 0.5, torch.zeros(2, 3, 5, 5))
    ref = torch.nn.functional.binary_cross_entropy(g, m)
    assert gate_loss([g], *pair).item() == pytest.approx(ref.item(), rel=1e-5)
    g[0, 0, 0, 0] = float('nan')
    assert torch.isnan(gate_loss([g], *pair))


def test_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-5)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    noisier = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert ssim(noisier, x) < ssim(noisy, x) < 1
    assert ssim(noisy, x) == pytest.approx(ssim(x, noisy).item(), abs=1e-6)   # symmetric
    p = noisy.clone().requires_grad_()
    ssim_loss(p, x).backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    small = torch.rand(1, 1, 6, 9)
    assert ssim(small, small).item() == pytest.approx(1.0, abs=1e-5)       # window shrinks
    with pytest.raises(ValueError):
        ssim(x, x[:, :1])


def test_srd_zero_when_student_matches_teacher_residual():
    deg, clean = _tokens()
    student = (deg - clean).clone()
    assert soft_residual_distillation(student, deg, clean).item() < 1e-5
    assert soft_residual_distillation(student, deg, clean, l2_weight=1.0).item() < 1e-5
    # Direction only by default: a scaled student is also perfect.
    assert soft_residual_distillation(3 * student, deg, clean).item() < 1e-5
    assert soft_residual_distillation(3 * student, deg, clean, l2_weight=1.0).item() > 0.1


@pytest.mark.parametrize('l2_weight', [0.0, 0.5])
def test_srd_grows_with_mismatch(l2_weight):
    deg, clean = _tokens()
    r = deg - clean
    noise = torch.randn(r.shape, generator=torch.Generator().manual_seed(5))
    losses = [soft_residual_distillation((1 - a) * r + a * noise, deg, clean,
                                         l2_weight=l2_weight).item()
              for a in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)]
    assert losses[0] < 1e-5
    assert all(b > a for a, b in zip(losses, losses[1:])), losses
    anti = soft_residual_distillation(-r, deg, clean, l2_weight=l2_weight).item()
    assert anti > losses[-1]        # opposite direction is the worst


def test_srd_no_gradient_to_teacher():
    deg, clean = _tokens()
    deg.requires_grad_()
    clean.requires_grad_()
    student = torch.randn(deg.shape, requires_grad=True)
    loss = soft_residual_distillation(student, deg, clean, l2_weight=1.0)
    loss.backward()
    assert deg.grad is None and clean.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_srd_weights_degraded_patches_more():
    # Only patch 0 is degraded; a student wrong on patch 0 costs far more than one wrong elsewhere.
    clean = torch.randn(1, 16, 8)
    deg = clean.clone()
    deg[:, 0] += 5 * torch.randn(8)
    deg[:, 1:] += 0.05 * torch.randn(15, 8)
    r = deg - clean
    wrong_hot = r.clone()
    wrong_hot[:, 0] *= -1
    wrong_cold = r.clone()
    wrong_cold[:, 5] *= -1
    hot = soft_residual_distillation(wrong_hot, deg, clean).item()
    cold = soft_residual_distillation(wrong_cold, deg, clean).item()
    assert hot > 100 * cold


def test_srd_clean_pairs_are_skipped():
    deg, clean = _tokens(b=2)
    r = deg - clean
    deg2 = torch.cat([deg[:1], clean[1:]])       # image 1: degraded == clean
    student = r.clone()
    assert soft_residual_distillation(student, deg2, clean).item() < 1e-5
    s = torch.randn(1, deg.shape[1], deg.shape[2], requires_grad=True)
    loss = soft_residual_distillation(s, clean[:1], clean[:1])
    assert loss.item() == 0.0
    loss.backward()        # still attached to the student graph
    with pytest.raises(ValueError):
        soft_residual_distillation(torch.randn(2, 49, 16), deg, clean)


def test_classification_loss():
    logits = torch.tensor([[5.0, 0, 0, 0, 0], [0, 0, 5.0, 0, 0]], requires_grad=True)
    good = weather_classification_loss(logits, torch.tensor([0, 2]))
    bad = weather_classification_loss(logits, torch.tensor([1, 1]))
    assert good < bad
    smooth = weather_classification_loss(logits, torch.tensor([0, 2]), label_smoothing=0.1)
    assert smooth > good
    none = weather_classification_loss(logits, torch.tensor([-100, -100]))
    assert none.item() == 0.0
    none.backward()


def test_restoration_loss_combines_terms():
    torch.manual_seed(0)
    m = build_model('tiny')
    x = torch.rand(2, 3, 32, 32)
    target = torch.rand(2, 3, 32, 32)
    out = m(x, torch.randn(2, 32))
    deg, clean = _tokens(b=2, n=16, c=m.cfg.srd_dim)
    student = m.srd_student(out.residuals, (4, 4))
    crit = RestorationLoss({'recon': 1.0, 'psnr': 0.01, 'ssim': 0.5, 'gate': 0.3, 'srd': 0.2,
                            'cls': 0.1})
    total, parts = crit(out, target, labels=torch.tensor([1, 3]), inputs=x, srd_student=student,
                        teacher_degraded=deg, teacher_clean=clean)
    assert set(parts) == {'recon', 'psnr', 'ssim', 'gate', 'srd', 'cls', 'total'}
    expect = (parts['recon'] + 0.01 * parts['psnr'] + 0.5 * parts['ssim'] + 0.3 * parts['gate']
              + 0.2 * parts['srd'] + 0.1 * parts['cls'])
    assert total.item() == pytest.approx(expect.item(), rel=1e-6)
    assert not any(v.requires_grad for v in parts.values())
    total.backward()
    assert m.srd_head.weight.grad is not None and m.classifier[0].weight.grad is not None
    # Terms without inputs or with weight 0 are skipped.
    total2, parts2 = RestorationLoss({'ssim': 0})(out.image.detach(), target)
    assert set(parts2) == {'recon', 'total'}
    with pytest.raises(ValueError):
        RestorationLoss({'perceptual': 1.0})


def test_losses_stay_fp32_under_autocast():
    x = torch.rand(1, 3, 24, 24)
    y = torch.rand(1, 3, 24, 24)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert ssim(x, y).dtype == torch.float32
        assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
        assert charbonnier(x.bfloat16(), y).dtype == torch.float32
