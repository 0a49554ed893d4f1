"""Do-no-harm measure: coloured speckle that a restorer put into a frame (pure PyTorch, no ROS).

A network whose multiplicative blocks run away on an unfamiliar input does not always overflow:
held finite, it sprays saturated magenta/green/white dots over compact regions (a car, a
pedestrian). Such a frame is worse than the rainy input, and neither the output's finiteness nor
a PSNR mean shows it. What does: the dots are *isolated chroma* that the input did not have.

Measure, per pixel (values on the 0..255 scale):

* chroma ``C = max(R, G, B) - min(R, G, B)`` (0 for grey, high for saturated colour);
* its high-pass ``H = |C - med(C)|`` with ``med`` a 5x5 median: large only where a pixel's
  colour differs from its neighbourhood's (an isolated dot), not on a saturated flat area or a
  smooth colour change (dehazing restores colour smoothly);
* a *speckle pixel* has ``H_out > 60`` where the input's ``H_in < 20``: new, isolated colour;
* a frame is *harmed* when speckle pixels cover more than ``0.05 %`` of it.

``med`` is the separable 5-median (a 5-median along rows, then along columns): like the full
5x5 median it removes any dot up to 2 pixels wide, at a fraction of the cost (about 20
elementwise min/max operations on bytes instead of sorting 25 values per pixel: about 2 ms
for a whole 640x480 check on a 2-core CPU, where the sorted 5x5 median takes 130 ms), so the engine can run it on every frame, on the
device the frame is on. Evaluation uses the same function, so the guard and the reported
numbers agree.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

#: A speckle pixel: output high-pass above this ...
SPECKLE_OUT = 60
#: ... where the input's high-pass is below this.
SPECKLE_IN = 20
#: A frame is harmed when more than this fraction of its pixels is speckle (0.05 %).
HARM_FRACTION = 5e-4


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 as published (rounded); uint8 passes through."""
    if images.dtype == torch.uint8:
        return images
    return (images.float().clamp(0, 1) * 255).round_().to(torch.uint8)


def chroma(images: torch.Tensor) -> torch.Tensor:
    """``[B,3,H,W]`` images (uint8, or float in [0, 1]) -> ``[B,1,H,W]`` uint8 chroma.

    Everything below runs on uint8: exact (max - min of bytes is a byte) and about seven times
    faster than float32 on a CPU (0.5 ms for a 640x480 median here)."""
    x = to_uint8(images)
    return x.amax(1, keepdim=True) - x.amin(1, keepdim=True)


def _median5_1d(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Median of 5 consecutive values along ``dim`` (replicate padding), by min/max only."""
    pad = [0, 0, 0, 0]
    pad[0 if dim == 3 else 2] = 2
    pad[1 if dim == 3 else 3] = 2
    p = F.pad(x, pad, mode='replicate')
    n = x.shape[dim]
    a, b, c, d, e = (p.narrow(dim, i, n) for i in range(5))
    # median of five with 6 compare-exchanges (Paeth): sort (a,b), (c,d); drop the extreme.
    a, b = torch.minimum(a, b), torch.maximum(a, b)
    c, d = torch.minimum(c, d), torch.maximum(c, d)
    # the larger of the two minima and the smaller of the two maxima bracket the median
    lo = torch.maximum(a, c)
    hi = torch.minimum(b, d)
    # median(a..e) = median(lo, hi, e)
    return torch.maximum(torch.minimum(lo, hi), torch.minimum(torch.maximum(lo, hi), e))


def median5(c: torch.Tensor) -> torch.Tensor:
    """Separable 5-median of ``[B,1,H,W]``: along rows, then along columns."""
    return _median5_1d(_median5_1d(c, 3), 2)


def highpass(c: torch.Tensor) -> torch.Tensor:
    """``|C - median5(C)|``: isolated chroma (uint8 in, uint8 out, no wrap-around)."""
    m = median5(c)
    return torch.maximum(c, m) - torch.minimum(c, m)


def speckle_mask(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``[B,1,H,W]`` bool: pixels where the output has isolated chroma the input had not."""
    h_out = highpass(chroma(outputs))
    h_in = highpass(chroma(inputs))
    return (h_out > SPECKLE_OUT) & (h_in < SPECKLE_IN)


def speckle_fraction(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``[B]`` float: the fraction of each frame's pixels that are speckle."""
    return speckle_mask(inputs, outputs).flatten(1).float().mean(1)


def harmed(inputs: torch.Tensor, outputs: torch.Tensor,
           fraction: float = HARM_FRACTION) -> torch.Tensor:
    """``[B]`` bool: frames whose speckle covers more than ``fraction`` of them."""
    return speckle_fraction(inputs, outputs) > fraction
