"""Do-no-harm measure: coloured speckle that a restorer put into a frame (pure PyTorch, no ROS).

A network whose multiplicative blocks run away on an unfamiliar input does not always overflow:
held finite, it sprays saturated magenta/green/white dots over compact regions (a car, a
pedestrian). Such a frame is worse than the rainy input, and neither the output's finiteness nor
a PSNR mean shows it. What does: the dots are *isolated chroma* that the input did not have, in
a colour the input's pixel did not have either.

Measure, per pixel (values on the 0..255 scale):

* chroma ``C = max(R, G, B) - min(R, G, B)`` (0 for grey, high for saturated colour);
* its high-pass ``H = |C - med(C)|`` with ``med`` a 5x5 median: large only where a pixel's
  colour differs from its neighbourhood's (an isolated dot), not on a saturated flat area or a
  smooth colour change (dehazing restores colour smoothly);
* the output's *unexplained* chroma ``U``: what is left of the output pixel's colour vector
  (its RGB minus its grey level) after taking away the best multiple ``k`` in ``[0, 10]`` of the
  input pixel's colour vector, measured like ``C`` (max - min of the remainder);
* a *speckle pixel* has ``H_out > 60`` where the input's ``H_in < 20``, and ``U > 60``: new,
  isolated colour that is not the input's colour made stronger;
* a frame is *harmed* when speckle pixels cover more than ``0.05 %`` of it.

Why ``U``. Fog, rain streaks and snow are a near-grey veil over the scene (``I = t J + (1 - t)
A``, ``A`` the airlight or the streak's light): the veil takes saturation away and leaves each
pixel's hue. A restorer that removes it legitimately gives the pixel *more of its own colour*:
its colour vector is the input's times ``1/t``, at most 10 for a dehazer whose transmission is
floored at ``t0 = 0.1`` (the dark-channel baseline's). That is what a high-pass alone cannot
tell from speckle: a dehazed headlight, tail light or lit sign in fog is a small saturated dot
where the input had a pale blob (and a white light core in a halo that got its colour back is
the same in reverse). Without ``U`` the dark-channel baseline was harmed on 2 of 200 DAWN fog
photos and had a block over the guard's bound on 14 -- lights and lit signs in all 24 blocks
looked at; with it, on none (124 speckle pixels left in all, at most 9 in a block: white lights
turned yellow by a bluish airlight, where the input had no hue to keep). A runaway's dots have
no relation to the input's colour (magenta on a grey road): ``U`` is their whole chroma, and the
shipped model's harmed DAWN photos go from 45 to 44. The perfect derainer (Rain100L/H ground
truth as the output) is flagged on no frame with or without it: a removed streak over a
coloured object leaves a coloured pixel among coloured neighbours, which the high-pass does not
see, and at most 4 pixels of a 32x32 block pass the measure. ``python
tools/harm_calibration.py ROOT`` prints all of these.

What it does not see: achromatic dots (white or black on grey have no chroma), and a dense
field of speckle over a saturated area (the median is speckle too). On the DAWN photos the
runaway's white and black blotches sit among coloured dots, so its blocks are caught anyway;
some photos also get a milder, desaturated purple mottling that stays under the bounds.

``med`` is the separable 5-median (a 5-median along rows, then along columns): like the full
5x5 median it removes any dot up to 2 pixels wide, at a fraction of the cost (about 20
elementwise min/max operations on bytes instead of sorting 25 values per pixel), so the engine
can run it on every frame, on the device the frame is on. Evaluation uses the same function, so
the guard and the reported numbers agree.

**The guard** (:func:`guard`, what the engine runs on every restored frame): speckle is counted
in ``32 x 32`` blocks; a block with more than 12 speckle pixels (of 1024) is unsafe, and so are
its 8 neighbours (a runaway region's fringe is damaged too -- dark blotches, milder colour --
with fewer countable dots; the dilation takes the fringe with it). Unsafe blocks get the input
back, exactly. The seam is feathered: the block grid of weights (0 = input, 1 = output) is
upsampled bilinearly and stretched so that the ramp from input to output lies in the outer half
of the next block (a hard block edge between a dehazed and a foggy block is a visible step; a
ramp reaching into the unsafe ring leaves half-visible blotches, seen on DAWN photos). A frame
without unsafe blocks is the output, bit for bit. The bound sits at the top of what good outputs
reach: at most 9 speckle pixels in any block of the dark-channel baseline on the 200 DAWN fog
photos at 640 px (12 at their own size), 4 for the perfect derainer; the shipped model's
speckled blocks hold up to 250. It leans that way because the two errors are not alike: a false
alarm gives back a patch of the input, never a frame worse than the input; a miss publishes
speckle. On a 2-core CPU (shared, loaded) a 640x480 check costs about 4 ms when nothing is found
(the byte-only :func:`isolated_new_chroma` and an early return) and about 10 ms when blocks are
replaced; on a GPU all of it is a few elementwise kernels.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

#: A speckle pixel: output high-pass above this ...
SPECKLE_OUT = 60
#: ... where the input's high-pass is below this ...
SPECKLE_IN = 20
#: ... and the output's chroma not explained by the input's colour is above this.
SPECKLE_HUE = 60
#: The most a legitimate restorer amplifies a pixel's colour (1 / t0 of a dehazer).
MAX_GAIN = 10.0
#: A frame is harmed when more than this fraction of its pixels is speckle (0.05 %).
HARM_FRACTION = 5e-4
#: The guard's block side in pixels ...
BLOCK = 32
#: ... and the speckle pixels a block may hold before it (and its neighbours) get the input back.
BLOCK_BOUND = 12


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> uint8 as published (rounded); uint8 passes through."""
    if images.dtype == torch.uint8:
        return images
    return (images.float().clamp(0, 1) * 255).round_().to(torch.uint8)


def chroma(images: torch.Tensor) -> torch.Tensor:
    """``[B,3,H,W]`` images (uint8, or float in [0, 1]) -> ``[B,1,H,W]`` uint8 chroma.

    Everything below runs on uint8: exact (max - min of bytes is a byte) and about seven times
    faster than float32 on a CPU (0.5 ms for a 640x480 median here). Works on any strides: the
    engine passes ``[B,H,W,3]`` frames permuted, where three channel planes are faster than a
    reduction over the innermost dimension."""
    r, g, b = to_uint8(images).unbind(1)
    hi = torch.maximum(torch.maximum(r, g), b)
    lo = torch.minimum(torch.minimum(r, g), b)
    return (hi - lo).unsqueeze(1)


def _median5_1d(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Median of 5 consecutive values along ``dim`` (replicate padding), by min/max only."""
    n = x.shape[dim]
    # replicate padding by concatenation: F.pad(mode='replicate') has no integer CUDA kernel in
    # older torch releases
    first, last = x.narrow(dim, 0, 1), x.narrow(dim, n - 1, 1)
    p = torch.cat([first, first, x, last, last], dim)
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


def _opponent(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pairwise channel differences ``R-G, G-B, B-R`` of uint8 images, float32 ``[B,H,W]``.
    (A pixel's colour vector, RGB minus its mean, in the coordinates where max - min of the
    vector is the largest absolute difference, i.e. chroma.)"""
    r, g, b = to_uint8(images).float().unbind(1)
    return r - g, g - b, b - r


def unexplained_chroma(inputs: torch.Tensor, outputs: torch.Tensor,
                       max_gain: float = MAX_GAIN) -> torch.Tensor:
    """``[B,1,H,W]`` float: the output pixel's chroma left after removing the best multiple
    ``k in [0, max_gain]`` of the input pixel's colour vector (``C(out - k * in)`` on the
    colour vectors). 0 where the output is the input's colour, stronger or weaker; the whole
    output chroma where the input pixel is grey."""
    ai, bi, ci = _opponent(inputs)
    ao, bo, co = _opponent(outputs)
    dot = (ai * ao).addcmul_(bi, bo).addcmul_(ci, co)
    norm = (ai * ai).addcmul_(bi, bi).addcmul_(ci, ci).clamp_(min=1.0)
    k = dot.div_(norm).clamp_(0.0, max_gain)
    u = torch.maximum(ao.addcmul_(k, ai, value=-1).abs_(), bo.addcmul_(k, bi, value=-1).abs_())
    return torch.maximum(u, co.addcmul_(k, ci, value=-1).abs_()).unsqueeze(1)


def isolated_new_chroma(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``[B,1,H,W]`` bool: the first two conditions of a speckle pixel (bytes only, cheap):
    isolated chroma in the output where the input had none. :func:`speckle_mask` is this and
    the colour condition, so it never holds where this does not."""
    return (highpass(chroma(outputs)) > SPECKLE_OUT) & (highpass(chroma(inputs)) < SPECKLE_IN)


def speckle_mask(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``[B,1,H,W]`` bool: pixels where the output has isolated chroma the input had not, in a
    colour that is not the input pixel's own."""
    return (isolated_new_chroma(inputs, outputs)
            & (unexplained_chroma(inputs, outputs) > SPECKLE_HUE))


def speckle_fraction(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``[B]`` float: the fraction of each frame's pixels that are speckle."""
    return speckle_mask(inputs, outputs).flatten(1).float().mean(1)


def harmed(inputs: torch.Tensor, outputs: torch.Tensor,
           fraction: float = HARM_FRACTION) -> torch.Tensor:
    """``[B]`` bool: frames whose speckle covers more than ``fraction`` of them."""
    return speckle_fraction(inputs, outputs) > fraction


def block_counts(mask: torch.Tensor, block: int = BLOCK) -> torch.Tensor:
    """``[B,1,H,W]`` bool -> ``[B,1,ceil(H/block),ceil(W/block)]`` float: set pixels per block
    (the last row/column of blocks may be partial)."""
    return F.avg_pool2d(mask.float(), block, ceil_mode=True, divisor_override=1)


def unsafe_blocks(mask: torch.Tensor, block: int = BLOCK, bound: int = BLOCK_BOUND,
                  grow: int = 1) -> torch.Tensor:
    """``[B,1,H,W]`` speckle mask -> ``[B,1,h,w]`` bool block grid: blocks with more than
    ``bound`` speckle pixels and, with ``grow``, the blocks within ``grow`` blocks of one."""
    bad = (block_counts(mask, block) > bound).float()
    if grow:
        bad = F.max_pool2d(bad, 2 * grow + 1, stride=1, padding=grow)
    return bad > 0


class Guarded(NamedTuple):
    images: torch.Tensor     # [B,3,H,W] uint8: the output, with the input in its unsafe blocks
    weights: torch.Tensor    # [B,1,H,W] float in [0, 1]: 1 = output kept, 0 = input
    unsafe: torch.Tensor     # [B] bool: some block was unsafe (part of the frame is the input)
    replaced: torch.Tensor   # [B] float: the share of the frame that is the input (1 - mean weight)


def guard(inputs: torch.Tensor, outputs: torch.Tensor, block: int = BLOCK,
          bound: int = BLOCK_BOUND, grow: int = 1) -> Guarded:
    """The run-time guard: ``outputs`` with the input put back in the unsafe blocks (see the
    module docstring), feathered over half a block each side of the boundary.

    ``inputs``/``outputs``: ``[B,3,H,W]`` uint8 (any strides, any device). On a GPU it all
    stays on the device, without synchronisation. On a CPU, where looking at a value costs
    nothing, frames on which no block can be unsafe (too few :func:`isolated_new_chroma`
    pixels in every block; the colour condition only removes pixels) skip the rest and come
    back as they were; the result is the same either way. A frame without unsafe blocks comes
    back bit for bit (weight 1 -> exactly the output)."""
    inputs, outputs = to_uint8(inputs), to_uint8(outputs)
    b, _, h, w = inputs.shape
    candidates = isolated_new_chroma(inputs, outputs)
    if inputs.device.type == 'cpu' and not bool((block_counts(candidates, block) > bound).any()):
        none = torch.zeros(b, dtype=torch.bool)
        return Guarded(outputs, torch.ones(()).expand(b, 1, h, w), none, none.float())
    mask = candidates & (unexplained_chroma(inputs, outputs) > SPECKLE_HUE)
    bad = unsafe_blocks(mask, block, bound, grow)
    # bilinear between block centres is <= 1/2 all over an unsafe block; stretched, the ramp
    # from input to output lies in the outer half of the next block (half a block wide)
    weights = F.interpolate(1.0 - bad.float(), scale_factor=block, mode='bilinear',
                            align_corners=False)[..., :h, :w].mul_(2).sub_(1).clamp_(0, 1)
    # blend on int16 with 7-bit weights: (out - in) * w7 stays within int16; w7 = 0 gives the
    # input and w7 = 128 the output exactly (floor((128 d + 64) / 128) = d)
    w7 = weights.mul(128).round_().to(torch.int16)
    base = inputs.to(torch.int16)
    delta = outputs.to(torch.int16) - base
    images = (base + ((delta * w7 + 64) >> 7)).to(torch.uint8)
    return Guarded(images, weights, bad.flatten(1).any(1), 1.0 - weights.flatten(1).mean(1))


#: The decoder's cell: a stride-16 U-Net (pixel-unshuffle stem + 3 halvings) upsampled with
#: pixel shuffle gives each 16 x 16 cell its own copy of the coarse features.
GRID_CELL = 16


def grid_artifact(inputs: torch.Tensor, outputs: torch.Tensor,
                  cell: int = GRID_CELL) -> torch.Tensor:
    """How much the restorer's change ``outputs - inputs`` steps at the edges of ``cell``-pixel
    cells, per image (``(N,)``; ~0 for a change with no grid; the step in units of the change's
    mean pixel-to-pixel variation).

    A network that dehazes flat fog through pixel-shuffle upsamplers tiles it into visible
    cells: the change's gradient peaks on cell edges. Measured on the gradient magnitude of the
    change (grey levels of the channel mean, images as :func:`to_uint8` takes them) averaged
    per phase of the cell: the *peak* at the edge phase is its excess over the two phases
    beside it. JPEG's 8 x 8 blocks, which a dehazer amplifies, peak on every 8th column, the
    cell edges among them, so the half-cell phase's peak is subtracted (floored at 0: a smooth
    bilinear change bends there, which lowers its gradient rather than raising it). Score =
    ``(edge peak - half-cell peak) / (mean gradient + 0.5)``, the larger of the horizontal and
    vertical one (0.5: a change of under a grey level has no grid to see). Images narrower
    than two cells score 0.
    """
    if inputs.shape[-1] < 2 * cell or inputs.shape[-2] < 2 * cell:
        return torch.zeros(inputs.shape[0], device=inputs.device)
    d = to_uint8(outputs).float().mean(1) - to_uint8(inputs).float().mean(1)
    scores = []
    for g in (torch.diff(d, dim=-1).abs().mean(-2), torch.diff(d, dim=-2).abs().mean(-1)):
        n = g.shape[-1] // cell * cell                 # whole cells: every phase equally often
        phase = g[..., :n].unflatten(-1, (-1, cell)).mean(-2)          # (N, cell)

        def peak(j):
            return phase[:, j] - (phase[:, j - 1] + phase[:, (j + 1) % cell]) / 2
        excess = peak(cell - 1) - peak(cell // 2 - 1).clamp(min=0)
        scores.append(excess / (g.mean(-1) + 0.5))
    return torch.maximum(*scores)


#: Crushed detail: the cell side, ...
CRUSH_CELL = 16
#: ... the luma is first averaged over squares of this side (thin streaks are not structure) ...
CRUSH_POOL = 4
#: ... a cell the input showed (mean luma above this, 0..255) ...
CRUSH_SEEN = 48
#: ... that the output took down to near black (mean luma below this) with less contrast.
CRUSH_DARK = 24


def crushed_fraction(inputs: torch.Tensor, outputs: torch.Tensor,
                     cell: int = CRUSH_CELL) -> torch.Tensor:
    """The share of ``cell``-pixel cells whose content the restorer pushed into black, per
    image (``(N,)``): the input's cell was visible (mean luma > ``CRUSH_SEEN``), the output's is
    near black (< ``CRUSH_DARK``) and has *less* contrast than the input's had -- contrast as
    the spread of the cell's ``CRUSH_POOL``-pixel square means, so that removing thin rain
    streaks (which add contrast of their own) is not counted as losing structure.

    Global over-darkening, which neither the speckle measure nor a PSNR mean shows on a photo
    without ground truth: a dehazer that removes more veil than there was takes dark scenery
    down to black and its detail with it (trees, a rider at night). A correct dehaze of a dark
    object also makes the cell dark, but *raises* its contrast (the detail comes back as ``1/t``
    of what fog left), so it does not count; only darkness bought with lost structure does.
    Reported, not guarded. Calibration: the dark-channel baseline on every second DAWN fog
    photo at 640 px, mean 0.049, 33 of 100 photos above 5 %; Rain100H's ground truth against
    its input (the rain accumulation veil removed) 0.014, 11 of 100. Luma is BT.601 on the
    0..255 scale; images narrower than a cell score 0.
    """
    if inputs.shape[-1] < cell or inputs.shape[-2] < cell:
        return torch.zeros(inputs.shape[0], device=inputs.device)
    w = torch.tensor([0.299, 0.587, 0.114], device=inputs.device).view(1, 3, 1, 1)
    k = cell // CRUSH_POOL

    def stats(images):
        y = F.avg_pool2d((to_uint8(images).float() * w).sum(1, keepdim=True), CRUSH_POOL)
        mean = F.avg_pool2d(y, k)
        return mean, (F.avg_pool2d(y * y, k) - mean * mean).clamp(min=0)
    mean_in, var_in = stats(inputs)
    mean_out, var_out = stats(outputs)
    crushed = (mean_in > CRUSH_SEEN) & (mean_out < CRUSH_DARK) & (var_out < var_in)
    return crushed.float().flatten(1).mean(1)
