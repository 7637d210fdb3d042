"""Piecewise-linear curves: partial areas and interpolation (pure numpy)."""

from __future__ import annotations

import math

import numpy as np


def value_at(x: np.ndarray, y: np.ndarray, x0: float) -> float:
    """Linear interpolation of the polyline ``(x, y)`` at ``x0``.

    ``x`` must be non-decreasing. Where the polyline has a vertical segment at ``x0`` the value at
    its end (the last point with ``x == x0``) is returned.
    """
    i = int(np.searchsorted(x, x0, side="right")) - 1
    if i < 0:
        raise ValueError(f"{x0} lies before the curve's start {x[0]}")
    if i == x.size - 1:
        return float(y[i])
    return float(y[i] + (y[i + 1] - y[i]) * (x0 - x[i]) / (x[i + 1] - x[i]))


def partial_area(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid-rule area under the polyline ``(x, y)`` for ``x`` in ``[x[0], limit]``.

    The curve is cut at ``limit`` with ``y`` interpolated linearly, as in MVTec's evaluation code.

    Parameters
    ----------
    x, y : numpy.ndarray
        Points of the curve, ``x`` non-decreasing.
    limit : float
        Upper integration bound, ``x[0] <= limit``.

    Returns
    -------
    float
        The area (not normalised by ``limit``).
    """
    i = int(np.searchsorted(x, limit, side="right")) - 1
    area = float(np.sum((x[1 : i + 1] - x[:i]) * (y[1 : i + 1] + y[:i])) / 2.0)
    if i < x.size - 1 and x[i] < limit:
        y_limit = value_at(x, y, limit)
        area += (limit - x[i]) * (y[i] + y_limit) / 2.0
    return float(area)  # the numpy scalars of x and y would make it a numpy float


def normalised_area(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """:func:`partial_area` divided by ``limit``: the mean of ``y`` over ``[x[0], limit]``.

    The area is taken with ``x`` and ``limit`` scaled by the power of two that brings ``limit`` into
    ``[0.5, 1)``. Such a scaling is exact, so the result is that of ``partial_area(x, y, limit) / limit``
    bit for bit, except where that area would underflow: for a subnormal ``limit`` (5e-324, say) the
    area ``limit * y / 2`` rounds to a multiple of 5e-324, and the quotient to 0 or 1 instead of ``y``.
    Points beyond ``limit`` may scale to inf: the area never reaches them, and interpolating towards one
    gives the value at its left end, which is the limit's value to far below float rounding.
    """
    exponent = -math.frexp(limit)[1]
    with np.errstate(over="ignore"):
        scaled = np.ldexp(np.asarray(x, dtype=np.float64), exponent)
    scaled_limit = math.ldexp(limit, exponent)
    return partial_area(scaled, y, scaled_limit) / scaled_limit


def resample(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Values of the polyline at each point of ``grid`` (see :func:`value_at`)."""
    return np.array([value_at(x, y, g) for g in grid])
