"""Periodic H&E-like texture swatches for the synthetic slides.

A swatch is a square RGB image that tiles seamlessly (every object and every noise field wraps around its
edges), so a slide of any size can sample it at ``(y % period, x % period)`` tile by tile without seams.
Colours are mixed in optical density (Beer-Lambert: ``OD = -ln(I / 255)``), so overlapping stains darken
the way they do on glass.

Example:
    >>> from scripts.demo.tissue_classes import COMPONENTS
    >>> swatch = render_swatch(COMPONENTS["lymphoma"], period=512, mpp=0.5, seed=0)
    >>> swatch.shape, swatch.dtype
    ((512, 512, 3), dtype('uint8'))
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft
import scipy.ndimage

from scripts.demo.tissue_classes import RGB, TissueComponent

__all__ = ["PATTERN_RENDERERS", "downsample_swatch", "periodic_noise", "render_swatch"]


# ----------------------------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------------------------
def periodic_noise(
    rng: np.random.Generator,
    period: int,
    sigma: float,
    sigma_across: float | None = None,
    angle: float = 0.0,
) -> np.ndarray:
    """Gaussian-filtered white noise that wraps around its edges.

    Args:
        rng: random generator.
        period: side of the square field in pixels.
        sigma: filter width in pixels (along ``angle`` when ``sigma_across`` is given).
        sigma_across: filter width across ``angle``; anisotropic (streaky) noise when set.
        angle: streak direction in radians.

    Returns:
        field: [period, period] float32, zero mean, unit standard deviation.
    """
    white = rng.standard_normal((period, period), dtype=np.float32)
    spectrum = scipy.fft.rfft2(white, workers=-1)
    fy = np.fft.fftfreq(period).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(period).astype(np.float32)[None, :]
    if sigma_across is None:
        transfer = np.exp(np.float32(-2.0 * np.pi**2) * sigma**2 * (fx**2 + fy**2))
    else:
        along = fx * np.cos(angle) + fy * np.sin(angle)
        across = -fx * np.sin(angle) + fy * np.cos(angle)
        transfer = np.exp(np.float32(-2.0 * np.pi**2) * (sigma**2 * along**2 + sigma_across**2 * across**2))
    field = scipy.fft.irfft2(spectrum * transfer, s=(period, period), workers=-1).astype(np.float32)
    field -= field.mean()
    std = float(field.std())
    return field / std if std > 0 else field


def _splat(period: int, ys: np.ndarray, xs: np.ndarray, stamp: np.ndarray, weights=None) -> np.ndarray:
    """Add ``stamp`` centred at each (y, x), wrapping around the edges. Returns [period, period] float32."""
    if len(ys) == 0:
        return np.zeros((period, period), np.float32)
    h, w = stamp.shape
    rows = (np.round(ys).astype(np.int64)[:, None] + (np.arange(h) - h // 2)[None, :]) % period
    cols = (np.round(xs).astype(np.int64)[:, None] + (np.arange(w) - w // 2)[None, :]) % period
    index = rows[:, :, None] * period + cols[:, None, :]
    values = np.broadcast_to(stamp, index.shape)
    if weights is not None:
        values = values * np.asarray(weights, np.float32)[:, None, None]
    out = np.bincount(index.ravel(), values.ravel(), minlength=period * period)
    return out.reshape(period, period).astype(np.float32)


def _ellipse(a: float, b: float, theta: float = 0.0, inner: float = 0.0, half: int | None = None) -> np.ndarray:
    """Anti-aliased filled ellipse (semi-axes a, b px, rotated by theta), minus an inner one shrunk by `inner`.

    The stamp is [2 * half + 1, 2 * half + 1]; ``half`` defaults to just enough for the ellipse.
    """
    r = int(np.ceil(max(a, b))) + 2 if half is None else half
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    c, s = np.cos(theta), np.sin(theta)
    u, v = x * c + y * s, -x * s + y * c

    def filled(aa: float, bb: float) -> np.ndarray:
        d = np.sqrt((u / aa) ** 2 + (v / bb) ** 2)
        return np.clip((1.0 - d) * min(aa, bb) + 0.5, 0.0, 1.0)

    out = filled(a, b)
    if inner > 0 and a - inner > 0.5 and b - inner > 0.5:
        out = out - filled(a - inner, b - inner)
    return out.astype(np.float32)


def _disc(radius: float, half: int | None = None) -> np.ndarray:
    return _ellipse(radius, radius, half=half)


def _poisson_points(rng: np.random.Generator, period: int, per_mm2: float, mpp: float):
    area_mm2 = (period * mpp / 1000.0) ** 2
    n = rng.poisson(per_mm2 * area_mm2)
    return rng.uniform(0, period, n), rng.uniform(0, period, n)


def _jittered_grid(rng: np.random.Generator, period: int, spacing: float, jitter: float = 0.35):
    """Seeds on a jittered square grid; returns (ys, xs, n_per_side, cell side)."""
    n = max(2, int(round(period / spacing)))
    cell = period / n
    gy, gx = np.mgrid[0:n, 0:n].astype(np.float32)
    ys = (gy + 0.5 + rng.uniform(-jitter, jitter, gy.shape)) * cell
    xs = (gx + 0.5 + rng.uniform(-jitter, jitter, gx.shape)) * cell
    return ys % period, xs % period, n, cell


def _dart_throw(rng, period: int, r_min: float, r_max: float, coverage: float, overlap: float = 0.9):
    """Non-overlapping-ish circles (periodic) until `coverage` of the area is filled or tries run out."""
    target = coverage * period * period
    ys, xs, rs, filled = [], [], [], 0.0
    for _ in range(4000):
        if filled >= target:
            break
        r = rng.uniform(r_min, r_max)
        y, x = rng.uniform(0, period, 2)
        if rs:
            dy = np.abs(np.asarray(ys) - y)
            dx = np.abs(np.asarray(xs) - x)
            dy, dx = np.minimum(dy, period - dy), np.minimum(dx, period - dx)
            if np.any(np.hypot(dy, dx) < (np.asarray(rs) + r) * overlap):
                continue
        ys.append(y)
        xs.append(x)
        rs.append(r)
        filled += np.pi * r * r
    return np.asarray(ys), np.asarray(xs), np.asarray(rs)


def _od(rgb: RGB) -> np.ndarray:
    return -np.log(np.clip(np.asarray(rgb, np.float32), 1.0, 255.0) / 255.0)


def _overlay(od: np.ndarray, coverage: np.ndarray, rgb: RGB, strength: np.ndarray | float = 1.0) -> np.ndarray:
    """Lay an element of colour ``rgb`` with ``coverage`` [P, P] in [0, 1] over ``od`` [P, P, 3]."""
    cov = np.clip(coverage, 0.0, 1.0)[..., None]
    element = _od(rgb)[None, None, :] * (strength[..., None] if isinstance(strength, np.ndarray) else strength)
    return cov * element + (1.0 - cov) * od


def _to_rgb(od: np.ndarray) -> np.ndarray:
    return np.clip(255.0 * np.exp(-od), 0, 255).astype(np.uint8)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _wavy_fibres(rng, period: int, width_px: float, length_px: float, coverage: float) -> np.ndarray:
    """Collagen strands: streaky noise sampled through a slow periodic warp. [P, P] in [0, 1]."""
    streaks = periodic_noise(rng, period, length_px, width_px, rng.uniform(0, np.pi))
    amplitude = period / 14.0
    warp_y = amplitude * periodic_noise(rng, period, period / 8)
    warp_x = amplitude * periodic_noise(rng, period, period / 8)
    yy, xx = np.mgrid[0:period, 0:period].astype(np.float32)
    field = scipy.ndimage.map_coordinates(streaks, [yy + warp_y, xx + warp_x], order=1, mode="grid-wrap")
    threshold = np.quantile(field, 1.0 - coverage)
    return _sigmoid((field - threshold) * 4.0).astype(np.float32)


def _spindles(rng, period: int, per_mm2: float, length_px: float, width_px: float, mpp: float) -> np.ndarray:
    ys, xs = _poisson_points(rng, period, per_mm2, mpp)
    out = np.zeros((period, period), np.float32)
    groups = rng.integers(0, 6, len(ys))
    for g in range(6):
        stamp = _ellipse(length_px / 2, width_px / 2, g * np.pi / 6)
        out += _splat(period, ys[groups == g], xs[groups == g], stamp)
    return np.clip(out, 0, 1)


def _chromatin(rng, period: int) -> np.ndarray:
    return np.clip(1.0 + 0.18 * periodic_noise(rng, period, 1.0), 0.6, 1.4)


# ----------------------------------------------------------------------------------------------------------
# pattern renderers: (component, period, mpp, rng) -> [P, P, 3] uint8
# ----------------------------------------------------------------------------------------------------------
def _render_glass(comp: TissueComponent, period: int, mpp: float, rng) -> np.ndarray:
    grain = comp.params.get("grain", 2.0) * periodic_noise(rng, period, 0.7)
    rgb = np.asarray(comp.palette["glass"], np.float32)[None, None, :] + grain[..., None]
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _render_fibrous(comp: TissueComponent, period: int, mpp: float, rng) -> np.ndarray:
    p, pal = comp.params, comp.palette
    fibres = _wavy_fibres(rng, period, p["fibre_width_um"] / mpp, p["fibre_length_um"] / mpp, p["fibre_coverage"])
    spindles = _spindles(
        rng, period, p["spindle_per_mm2"], p["spindle_length_um"] / mpp, p["spindle_width_um"] / mpp, mpp
    )
    ly, lx = _poisson_points(rng, period, p["lymphocyte_per_mm2"], mpp)
    lymph = np.clip(_splat(period, ly, lx, _disc(p["lymphocyte_radius_um"] / mpp)), 0, 1)
    od = np.broadcast_to(_od(pal["space"]), (period, period, 3))
    od = _overlay(od, fibres * (0.8 + 0.2 * _chromatin(rng, period)), pal["matrix"])
    od = _overlay(od, spindles, pal["nucleus"], _chromatin(rng, period))
    od = _overlay(od, lymph, pal["lymphocyte"], _chromatin(rng, period))
    return _to_rgb(od)


def _render_fibroadipose(comp: TissueComponent, period: int, mpp: float, rng) -> np.ndarray:
    p, pal = comp.params, comp.palette
    ay, ax, ar = _dart_throw(
        rng, period, p["adipocyte_radius_min_um"] / mpp, p["adipocyte_radius_max_um"] / mpp, p["adipocyte_coverage"]
    )
    fat = np.zeros((period, period), np.float32)
    membrane = np.zeros((period, period), np.float32)
    for y, x, r in zip(ay, ax, ar):
        aspect = rng.uniform(0.85, 1.15)
        theta = rng.uniform(0, np.pi)
        fat += _splat(period, np.array([y]), np.array([x]), _ellipse(r, r * aspect, theta))
        membrane += _splat(period, np.array([y]), np.array([x]), _ellipse(r, r * aspect, theta, inner=1.6))
    fat, membrane = np.clip(fat, 0, 1), np.clip(membrane, 0, 1)
    fibres = _wavy_fibres(rng, period, p["fibre_width_um"] / mpp, p["fibre_length_um"] / mpp, p["fibre_coverage"])
    spindles = _spindles(
        rng, period, p["spindle_per_mm2"], p["spindle_length_um"] / mpp, p["spindle_width_um"] / mpp, mpp
    )
    od = np.broadcast_to(_od(pal["space"]), (period, period, 3))
    od = _overlay(od, fibres * (1.0 - fat), pal["matrix"])
    od = _overlay(od, membrane, pal["membrane"])
    od = _overlay(od, spindles * (1.0 - fat + membrane), pal["nucleus"], _chromatin(rng, period))
    return _to_rgb(od)


def _render_glandular(comp: TissueComponent, period: int, mpp: float, rng) -> np.ndarray:
    p, pal = comp.params, comp.palette
    gy, gx, gr = _dart_throw(
        rng, period, p["gland_radius_min_um"] / mpp, p["gland_radius_max_um"] / mpp, p["gland_coverage"], 0.85
    )
    thickness = p["epithelium_thickness_um"] / mpp
    spacing = p["nucleus_spacing_um"] / mpp
    gland = np.zeros((period, period), np.float32)
    epithelium = np.zeros((period, period), np.float32)
    nuc_y, nuc_x, nuc_theta = [], [], []
    for y, x, r in zip(gy, gx, gr):
        aspect = rng.uniform(0.65, 1.0)
        theta = rng.uniform(0, np.pi)
        a, b = r, r * aspect
        gland += _splat(period, np.array([y]), np.array([x]), _ellipse(a, b, theta))
        wobble = min(thickness * rng.uniform(0.9, 1.4), 0.8 * b)
        epithelium += _splat(period, np.array([y]), np.array([x]), _ellipse(a, b, theta, inner=wobble))
        # nuclei along the basal side of the ring, long axis pointing to the lumen
        n = max(6, int(2 * np.pi * np.sqrt((a * a + b * b) / 2) / spacing))
        phi = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 2 * np.pi)
        depth = 0.35 * wobble + rng.uniform(-0.12, 0.12, n) * wobble
        lx, ly = (a - depth) * np.cos(phi), (b - depth) * np.sin(phi)
        c, s = np.cos(theta), np.sin(theta)
        nuc_x.append(x + lx * c - ly * s)
        nuc_y.append(y + lx * s + ly * c)
        nuc_theta.append(np.arctan2(ly * a * a, lx * b * b) + theta)
    gland, epithelium = np.clip(gland, 0, 1), np.clip(epithelium, 0, 1)
    nuclei = np.zeros((period, period), np.float32)
    if nuc_y:
        ys, xs, th = np.concatenate(nuc_y), np.concatenate(nuc_x), np.concatenate(nuc_theta) % np.pi
        groups = np.floor(th / (np.pi / 8)).astype(int) % 8
        for g in range(8):
            stamp = _ellipse(p["nucleus_length_um"] / mpp / 2, p["nucleus_width_um"] / mpp / 2, (g + 0.5) * np.pi / 8)
            nuclei += _splat(period, ys[groups == g] % period, xs[groups == g] % period, stamp)
    nuclei = np.clip(nuclei, 0, 1) * epithelium.clip(0.3, 1)
    fibres = _wavy_fibres(rng, period, p["fibre_width_um"] / mpp, 12.0 / mpp, 0.8)
    od = np.broadcast_to(_od(pal["lumen"]), (period, period, 3))
    od = _overlay(od, fibres * (1.0 - gland), pal["matrix"])
    od = _overlay(od, epithelium * (0.85 + 0.15 * _chromatin(rng, period)), pal["epithelium"])
    od = _overlay(od, nuclei, pal["nucleus"], _chromatin(rng, period))
    return _to_rgb(od)


def _worley_edges(ys: np.ndarray, xs: np.ndarray, n: int, cell: float, period: int) -> np.ndarray:
    """Distance (px) between the nearest and second-nearest seed of a jittered grid: ~0 on cell borders.

    ``ys, xs``: [n, n] seed positions, one per grid cell of side ``cell``; distances wrap around ``period``.
    """
    shift = np.zeros(n + 2, np.float32)
    shift[0], shift[-1] = -period, period
    pad_y = np.pad(ys.astype(np.float32), 1, mode="wrap") + shift[:, None]
    pad_x = np.pad(xs.astype(np.float32), 1, mode="wrap") + shift[None, :]
    coords = np.arange(period, dtype=np.float32)
    cells = np.minimum((coords // cell).astype(np.int64), n - 1)
    best = np.full((period, period), np.inf, np.float32)
    second = np.full((period, period), np.inf, np.float32)
    for oy in (0, 1, 2):
        for ox in (0, 1, 2):
            grid = np.ix_(cells + oy, cells + ox)
            d2 = (pad_y[grid] - coords[:, None]) ** 2 + (pad_x[grid] - coords[None, :]) ** 2
            np.minimum(second, np.maximum(best, d2), out=second)
            np.minimum(best, d2, out=best)
    return np.sqrt(second) - np.sqrt(best)


def _render_squamous(comp: TissueComponent, period: int, mpp: float, rng) -> np.ndarray:
    p, pal = comp.params, comp.palette
    ys, xs, n, cell = _jittered_grid(rng, period, p["cell_size_um"] / mpp, 0.3)
    border = np.exp(-_worley_edges(ys, xs, n, cell, period) / 1.2)
    r_nuc = p["nucleus_radius_um"] / mpp
    half = int(np.ceil(r_nuc)) + 2
    vesicular = _disc(r_nuc) - 0.45 * _disc(r_nuc * 0.6, half) + 0.7 * _disc(max(1.0, r_nuc * 0.22), half)
    nuclei = np.clip(_splat(period, ys.ravel(), xs.ravel(), vesicular, rng.uniform(0.8, 1.1, ys.size)), 0, 1)
    py, px = _poisson_points(rng, period, p["pearl_per_mm2"], mpp)
    pearls = np.zeros((period, period), np.float32)
    lamellae = np.zeros((period, period), np.float32)
    for y, x in zip(py, px):
        r = rng.uniform(p["pearl_radius_min_um"], p["pearl_radius_max_um"]) / mpp
        disc = _ellipse(r, r * rng.uniform(0.75, 1.0), rng.uniform(0, np.pi))
        h = disc.shape[0] // 2
        yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
        rings = 0.6 + 0.4 * np.cos(np.hypot(yy, xx) * 2 * np.pi / max(3.0, r / 4.0))
        pearls += _splat(period, np.array([y]), np.array([x]), disc)
        lamellae += _splat(period, np.array([y]), np.array([x]), (disc * rings).astype(np.float32))
    pearls, lamellae = np.clip(pearls, 0, 1), np.clip(lamellae, 0, 1)
    bands = periodic_noise(rng, period, 20.0 / mpp)
    stroma = _sigmoid((bands - np.quantile(bands, 1.0 - p["stroma_band_fraction"])) * 6.0)
    nest = 1.0 - stroma
    fibres = _wavy_fibres(rng, period, 1.6 / mpp, 20.0 / mpp, 0.75)
    od = np.broadcast_to(_od(pal["space"]), (period, period, 3))
    od = _overlay(od, stroma * fibres, pal["matrix"])
    od = _overlay(od, nest * (0.9 + 0.1 * _chromatin(rng, period)), pal["cytoplasm"])
    od = _overlay(od, nest * border * (1.0 - pearls) * 0.8, pal["border"])
    od = _overlay(od, nest * lamellae, pal["keratin"])
    od = _overlay(od, nest * nuclei * (1.0 - pearls), pal["nucleus"], _chromatin(rng, period))
    return _to_rgb(od)


def _render_lymphoid(comp: TissueComponent, period: int, mpp: float, rng) -> np.ndarray:
    p, pal = comp.params, comp.palette
    ys, xs, _, _ = _jittered_grid(rng, period, p["cell_spacing_um"] / mpp, 0.38)
    ys, xs = ys.ravel(), xs.ravel()
    large = rng.random(ys.size) < p["large_cell_fraction"]
    small = np.zeros((period, period), np.float32)
    r = p["nucleus_radius_um"] / mpp
    groups = rng.integers(0, 3, ys.size)
    for g, scale in enumerate((0.85, 1.0, 1.12)):
        keep = (~large) & (groups == g)
        small += _splat(period, ys[keep], xs[keep], _disc(r * scale))
    rl = p["large_nucleus_radius_um"] / mpp
    big_stamp = _disc(rl) + 0.6 * _disc(max(1.0, rl * 0.25), int(np.ceil(rl)) + 2)
    big = _splat(period, ys[large], xs[large], big_stamp)
    od = np.broadcast_to(_od(pal["cytoplasm"]), (period, period, 3))
    od = _overlay(od, np.clip(big, 0, 1), pal["large_nucleus"], _chromatin(rng, period))
    od = _overlay(od, np.clip(small, 0, 1), pal["nucleus"], _chromatin(rng, period))
    return _to_rgb(od)


def _render_necrotic(comp: TissueComponent, period: int, mpp: float, rng) -> np.ndarray:
    p, pal = comp.params, comp.palette
    granular = periodic_noise(rng, period, p["granularity_um"] / mpp)
    ys, xs, n, cell = _jittered_grid(rng, period, p["ghost_cell_um"] / mpp, 0.4)
    ghosts = np.exp(-_worley_edges(ys, xs, n, cell, period) / 1.5) * 0.35
    # karyorrhectic debris: clustered dots
    cy, cx = _poisson_points(rng, period, p["debris_per_mm2"] / 8.0, mpp)
    spread = p["debris_cluster_um"] / mpp
    dy = np.repeat(cy, 8) + rng.normal(0, spread, cy.size * 8)
    dx = np.repeat(cx, 8) + rng.normal(0, spread, cx.size * 8)
    debris = np.clip(_splat(period, dy % period, dx % period, _disc(max(0.8, p["debris_radius_um"] / mpp))), 0, 1)
    od = np.broadcast_to(_od((248, 238, 244)), (period, period, 3))
    od = _overlay(od, np.clip(0.75 + 0.2 * granular, 0, 1), pal["matrix"])
    od = _overlay(od, ghosts, pal["ghost"])
    od = _overlay(od, debris, pal["debris"])
    return _to_rgb(od)


PATTERN_RENDERERS: dict[str, Callable[[TissueComponent, int, float, np.random.Generator], np.ndarray]] = {
    "glass": _render_glass,
    "fibrous": _render_fibrous,
    "fibroadipose": _render_fibroadipose,
    "glandular": _render_glandular,
    "squamous": _render_squamous,
    "lymphoid": _render_lymphoid,
    "necrotic": _render_necrotic,
}


def render_swatch(component: TissueComponent, period: int, mpp: float, seed: int) -> np.ndarray:
    """Draw one component's texture as a seamlessly tiling square.

    Args:
        component: the tissue component (pattern, palette, parameters).
        period: side of the swatch in pixels.
        mpp: micrometres per pixel of the swatch (sizes in the parameters are in micrometres).
        seed: random seed; the same arguments give the same pixels.

    Returns:
        swatch: [period, period, 3] uint8 RGB.
    """
    if component.pattern not in PATTERN_RENDERERS:
        raise KeyError(
            f"tissue component {component.name!r}: unknown pattern {component.pattern!r} "
            f"(known: {sorted(PATTERN_RENDERERS)})"
        )
    rng = np.random.default_rng(seed)
    return PATTERN_RENDERERS[component.pattern](component, period, mpp, rng)


def downsample_swatch(swatch: np.ndarray, factor: int) -> np.ndarray:
    """Area-average a periodic swatch by an integer factor (keeps it periodic). [P, P, C] -> [P/f, P/f, C]."""
    if factor <= 1:
        return swatch
    period = swatch.shape[0]
    if factor >= period:
        return swatch.reshape(-1, swatch.shape[-1]).mean(0).round().astype(swatch.dtype)[None, None, :]
    if period % factor:
        raise ValueError(f"swatch period {period} is not a multiple of the downsample factor {factor}")
    side = period // factor
    blocks = swatch.reshape(side, factor, side, factor, -1).astype(np.float32)
    return blocks.mean(axis=(1, 3)).round().astype(swatch.dtype)
