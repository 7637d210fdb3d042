"""Straightforward reference computations shared by the metrics tests (written from SPEC.md, not from the code)."""

from __future__ import annotations


def area_under(xs, ys, limit):
    """Trapezoid area for x in [xs[0], limit], y interpolated linearly at limit; (xs, ys) sorted by x."""
    area = 0.0
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x0 >= limit:
            break
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            y_at = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y_at) / 2
            break
    return area
