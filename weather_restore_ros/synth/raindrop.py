"""Raindrops on the lens or windscreen.

Physical model: an adherent drop is a small, thick, convex lens a few centimetres from the camera,
far out of its focus. It refracts a wide cone of the scene into its footprint, so it shows a
demagnified, upside-down (point-reflected) and shifted view of the surroundings, distorted more
towards its rim (a spherical cap acts like a fisheye), while total internal reflection darkens
the rim and the light source gives a small specular highlight. Because the drop is defocused, its
content and its edges are blurred; it covers the background with a soft alpha (Roser & Geiger,
2009; Qian et al., CVPR 2018).
"""
from __future__ import annotations

import cv2
import numpy as np

from ._common import blur, lerp, luminance, mix, scale_add

_BOUNDARY_POINTS = 40
_HARMONICS = np.arange(2, 6)
_MIN_WORK_SIDE = 120  # the drop layer is rendered at half resolution above twice this
_MAX_DROPS = 255  # labels are uint8 so per-drop values can be looked up with cv2.LUT


def drop_labels(h: int, w: int, rng: np.random.Generator,
                severity: float) -> tuple[np.ndarray, dict]:
    """Label image (uint8 HxW, 0 = no drop, i = drop i) and per-drop geometry arrays."""
    short = min(h, w)
    aspect_area = (h * w) / (short * short) / (4.0 / 3.0)
    n_max = min(_MAX_DROPS, int(np.ceil(110 * aspect_area)))
    n = min(n_max, int(round(lerp(10, 110, severity) * aspect_area)))
    u = rng.random(n_max)[:n]
    r = short * (0.008 + 0.075 * u ** 2.2) * lerp(0.8, 1.15, severity)
    cx = rng.uniform(0, 1, n_max)[:n] * w
    cy = rng.uniform(0, 1, n_max)[:n] * h
    # Drops sag under gravity: a bit taller than wide, slightly tilted.
    elong = rng.uniform(0.95, 1.35, n_max)[:n]
    tilt = np.deg2rad(rng.normal(0.0, 12.0, n_max)[:n])
    amp = rng.uniform(0.0, 0.09, (n_max, len(_HARMONICS)))[:n] / np.sqrt(_HARMONICS - 1)
    phase = rng.uniform(0, 2 * np.pi, (n_max, len(_HARMONICS)))[:n]

    phi = np.linspace(0, 2 * np.pi, _BOUNDARY_POINTS, endpoint=False)
    angles = _HARMONICS[None, :, None] * phi[None, None, :] + phase[:, :, None]  # (n, K, P)
    wobble = 1.0 + np.einsum('nk,nkp->np', amp, np.cos(angles))
    rx = (r / np.sqrt(elong))[:, None] * wobble * np.cos(phi)[None]
    ry = (r * np.sqrt(elong))[:, None] * wobble * np.sin(phi)[None]
    ct, st = np.cos(tilt)[:, None], np.sin(tilt)[:, None]
    px = cx[:, None] + ct * rx - st * ry
    py = cy[:, None] + st * rx + ct * ry
    polys = np.round(np.stack([px, py], -1) * 16.0).astype(np.int32)  # (n, P, 2)

    labels = np.zeros((h, w), np.uint8)
    for i in np.argsort(-r, kind='stable'):  # large first, so small drops stay visible on top
        cv2.fillPoly(labels, [polys[i]], int(i + 1), cv2.LINE_8, shift=4)
    return labels, {'cx': cx, 'cy': cy, 'r': r, 'count': n, 'n_max': n_max}


def apply(lin: np.ndarray, rng: np.random.Generator, severity: float,
          focus: tuple[float, float] | None = None) -> tuple[np.ndarray, dict]:
    """Lens raindrops on a float32 linear-light RGB image; returns (image, params).

    ``focus``: the range the defocus (0 = crisp drops, 1 = soft blobs) is drawn from uniformly;
    None (default) draws it as ``u ** 1.5``, crisp more often than soft."""
    h, w = lin.shape[:2]
    short = min(h, w)
    labels, geo = drop_labels(h, w, rng, severity)
    n, n_max = geo['count'], geo['n_max']
    zoom = rng.uniform(1.8, 4.0, n_max)[:n]
    shift = rng.normal(0.0, 0.8, (n_max, 2))[:n]
    shift[:, 1] -= 0.8  # a drop on a tilted window sees a bit more of what is above it
    rim_strength = rng.uniform(0.35, 0.65, n_max)[:n]
    gain = rng.uniform(0.95, 1.15, n_max)[:n]
    highlight = rng.uniform(0.15, 0.5, n_max)[:n]
    # Focus: 0 = drops on a windscreen well in front of the lens (fairly crisp), 1 = drops on the
    # lens itself (very blurry blobs).
    u = float(rng.uniform(0.0, 1.0))
    defocus = u ** 1.5 if focus is None else lerp(*focus, u)
    content_sigma = short * lerp(0.006, 0.012, severity) * (1.0 + 1.5 * defocus)
    edge_sigma = max(0.6, short * lerp(0.002, 0.005, severity) * (1.0 + 4.0 * defocus))
    params = {'count': n, 'radius_px_mean': round(float(geo['r'].mean()), 2) if n else 0.0,
              'radius_px_max': round(float(geo['r'].max()), 2) if n else 0.0,
              'defocus': round(defocus, 3), 'content_blur_px': round(content_sigma, 2),
              'edge_blur_px': round(edge_sigma, 2)}
    inside = labels > 0
    coverage = float(np.count_nonzero(inside)) / (h * w)
    params['coverage'] = round(coverage, 4)
    if coverage == 0.0:
        return lin, params

    # The drop content is blurry, so it is rendered at reduced resolution ``f``; only the
    # drop outlines (alpha) stay at full resolution.
    f = 0.5 if short >= 2 * _MIN_WORK_SIDE else 1.0
    sw, sh = (max(1, round(w * f)), max(1, round(h * f))) if f < 1.0 else (w, h)
    fx, fy = sw / w, sh / h
    if f < 1.0:
        small = cv2.resize(lin, (sw, sh), interpolation=cv2.INTER_AREA)
        small_labels = cv2.resize(labels, (sw, sh), interpolation=cv2.INTER_NEAREST)
    else:
        small, small_labels = lin, labels
    small_inside = small_labels > 0

    def per_pixel(values, outside=0.0):  # per-drop values -> map through the small label image
        table = np.full(256, outside, np.float32)
        table[1:n + 1] = values
        return cv2.LUT(small_labels, table)

    rs = geo['r'] * fx
    cx, cy, r = per_pixel(geo['cx'] * fx), per_pixel(geo['cy'] * fy), per_pixel(rs, 1.0)
    xs = np.arange(sw, dtype=np.float32)[None, :]
    ys = np.arange(sh, dtype=np.float32)[:, None]
    dx, dy = xs - cx, ys - cy
    inv_r = 1.0 / r
    rho2 = np.minimum((dx * dx + dy * dy) * (inv_r * inv_r), 1.5)
    # Point reflection through the centre, demagnified, stronger towards the rim (fisheye);
    # outside the drops the map is the identity, so the soft edge blends into the background.
    k = per_pixel(zoom) * (1.0 + 0.45 * rho2)
    map_x = cx - dx * k + per_pixel(shift[:, 0]) * r
    map_y = cy - dy * k + per_pixel(shift[:, 1]) * r
    outside = ~small_inside
    np.copyto(map_x, np.broadcast_to(xs, (sh, sw)), where=outside)
    np.copyto(map_y, np.broadcast_to(ys, (sh, sw)), where=outside)
    background = blur(small, content_sigma * fx)
    refracted = cv2.remap(background, map_x, map_y, cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)

    # Darker rim: distance to the drop's own border (neighbouring drops count as border).
    core = small_inside.astype(np.uint8)
    core[:, 1:][small_labels[:, 1:] != small_labels[:, :-1]] = 0
    core[1:, :][small_labels[1:, :] != small_labels[:-1, :]] = 0
    dist = np.minimum(cv2.distanceTransform(core, cv2.DIST_L2, 3), float(max(sw, sh)))
    rim_scale = per_pixel(1.0 / (0.22 * rs + 0.5))
    rim = 1.0 - per_pixel(rim_strength * (1.0 - 0.5 * defocus)) * cv2.exp(-dist * rim_scale)
    # Specular highlight of the sky / a light source: a small soft spot up-left of the centre.
    ambient = float(luminance(small).mean())
    spots = np.zeros((sh, sw), np.float32)
    for i in range(n):
        ri = float(rs[i])
        c = (int(round((geo['cx'][i] * fx - 0.35 * ri) * 16)),
             int(round((geo['cy'][i] * fy - 0.4 * ri) * 16)))
        axes = (max(8, int(round(0.2 * ri * 16))), max(8, int(round(0.14 * ri * 16))))
        cv2.ellipse(spots, c, axes, 0.0, 0.0, 360.0, float(highlight[i]), -1, cv2.LINE_8, shift=4)
    spots = blur(spots, (0.6 + 0.03 * float(geo['r'].mean()) + edge_sigma) * fx)
    spots *= np.float32((0.4 + ambient) * (1.0 - 0.5 * defocus))
    drop = scale_add(refracted, per_pixel(gain, 1.0) * rim, spots)
    if f < 1.0:
        drop = cv2.resize(drop, (w, h), interpolation=cv2.INTER_LINEAR)

    # The drop is far out of focus: soft alpha edge. out = lin * (1 - alpha) + drop * alpha
    alpha = blur(inside.astype(np.float32), edge_sigma)
    return mix(lin, drop, 1.0 - alpha), params


# RainDrop (Qian et al., CVPR 2018) photographs drops on a glass pane in front of the lens; the
# camera focuses on the scene or on the glass, so its drops range from soft blobs to crisp lenses
# with dark rims, each showing a blurred, flipped view of the scene. The two ends, as styles:
FOCUSED = (0.0, 0.15)
DEFOCUSED = (0.6, 1.0)


def apply_focused(lin, rng, severity):
    return apply(lin, rng, severity, FOCUSED)


def apply_defocused(lin, rng, severity):
    return apply(lin, rng, severity, DEFOCUSED)


#: '<style>' -> apply, selected as 'raindrop:<style>' (see ``compose``).
STYLES = {'focused': apply_focused, 'defocused': apply_defocused}
