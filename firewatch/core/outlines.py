"""District outlines for the console's map, drawn from the units themselves (issue 12).

The registry has no district boundaries (no GIS source is loaded, and the console must work
offline, without a tile server), so a district is drawn as the convex hull of its units'
coordinates, widened by a margin so that units on the edge sit inside it. It is a picture of
where a district's supervised units are, not its legal boundary: the map says so.

Pure: coordinates in, polygons out (scipy's Qhull for the hull).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import ConvexHull, QhullError

#: Degrees added around a district's units (about 500 m at these latitudes).
MARGIN_DEG = 0.005


def outline(points: Sequence[tuple[float, float]], margin: float = MARGIN_DEG) -> list[list[float]]:
    """A closed polygon ``[[lon, lat], ...]`` (first point repeated last) around ``points``
    (``(lon, lat)``), every point at least ``margin`` inside it; ``[]`` for no points. One
    point or points on a line get a box around them (a hull needs an area)."""
    if not points:
        return []
    pts = np.asarray(points, dtype=float)
    corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=float) * margin
    # The hull of every point widened into a small square: a margin on every side, and a
    # hull with an area even for one point or a line of them.
    cloud = (pts[:, None, :] + corners[None, :, :]).reshape(-1, 2)
    try:
        hull = ConvexHull(cloud)
    except QhullError:  # pragma: no cover - the squares always span an area
        lo, hi = cloud.min(axis=0), cloud.max(axis=0)
        ring = [[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]
    else:
        ring = [[float(x), float(y)] for x, y in cloud[hull.vertices]]
    closed = [*ring, ring[0]]
    return [[round(float(x), 6), round(float(y), 6)] for x, y in closed]
