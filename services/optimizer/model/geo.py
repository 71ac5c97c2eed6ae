"""Great-circle distance and a bucketed grid so that "nearest edge" and "edges within r km" do not
scan the whole fleet (the field compared every pair)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEG_LAT = 111.2


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass
class GeoGrid:
    """Points bucketed in cells of ``cell_deg`` degrees; searches widen ring by ring."""

    cell_deg: float = 0.05  # about 5.5 km of latitude
    cells: dict[tuple[int, int], list[tuple[int, float, float]]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, items: Iterable[tuple[int, float | None, float | None]], cell_deg: float | None = None
    ) -> GeoGrid:
        located = [(k, lat, lon) for k, lat, lon in items if lat is not None and lon is not None]
        if not located:
            return cls(cell_deg=0.05 if cell_deg is None else cell_deg)
        keys, lats, lons = zip(*located, strict=True)
        ids = np.array(keys, np.int64)
        return cls.from_arrays(
            ids, np.array(lats, np.float64), np.array(lons, np.float64), cell_deg
        )

    @classmethod
    def from_arrays(
        cls,
        keys: npt.NDArray[np.int64],
        lats: npt.NDArray[np.float64],
        lons: npt.NDArray[np.float64],
        cell_deg: float | None = None,
    ) -> GeoGrid:
        """The grid of these points (NaN: not located), bucketed with array operations: the
        same cells, and in each the points in their given order, as :meth:`build` gives."""
        located = ~(np.isnan(lats) | np.isnan(lons))
        keys, lats, lons = keys[located], lats[located], lons[located]
        n = len(keys)
        if cell_deg is None:
            # About six points per cell on average, whatever the fleet's density.
            if n > 1:
                lat_span = float(lats.max()) - float(lats.min())
                area = max(1e-6, lat_span * (float(lons.max()) - float(lons.min())))
                cell_deg = min(0.5, max(0.001, math.sqrt(area * 6 / n)))
            else:
                cell_deg = 0.05
        grid = cls(cell_deg=cell_deg)
        if not n:
            return grid
        ci = np.floor(lats / cell_deg).astype(np.int64)
        cj = np.floor(lons / cell_deg).astype(np.int64)
        order = np.lexsort((cj, ci))  # stable: a cell's points keep their given order
        ci, cj = ci[order], cj[order]
        points = list(
            zip(keys[order].tolist(), lats[order].tolist(), lons[order].tolist(), strict=True)
        )
        starts = np.flatnonzero(np.r_[True, (ci[1:] != ci[:-1]) | (cj[1:] != cj[:-1])]).tolist()
        ends = [*starts[1:], n]
        cells = grid.cells
        for start, end, i, j in zip(
            starts, ends, ci[starts].tolist(), cj[starts].tolist(), strict=True
        ):
            cells[(i, j)] = points[start:end]
        return grid

    def _cell(self, lat: float, lon: float) -> tuple[int, int]:
        return (math.floor(lat / self.cell_deg), math.floor(lon / self.cell_deg))

    def _ring(self, center: tuple[int, int], r: int) -> Iterator[list[tuple[int, float, float]]]:
        ci, cj = center
        if r == 0:
            if (bucket := self.cells.get(center)) is not None:
                yield bucket
            return
        for i in range(ci - r, ci + r + 1):
            for j in (cj - r, cj + r):
                if (bucket := self.cells.get((i, j))) is not None:
                    yield bucket
        for j in range(cj - r + 1, cj + r):
            for i in (ci - r, ci + r):
                if (bucket := self.cells.get((i, j))) is not None:
                    yield bucket

    def _km_per_cell(self, lat: float) -> float:
        """The smallest extent of a cell in km near this latitude (longitude shrinks with
        cos(lat))."""
        return (
            self.cell_deg
            * KM_PER_DEG_LAT
            * max(0.05, math.cos(math.radians(min(89.0, abs(lat) + self.cell_deg))))
        )

    def within(self, lat: float, lon: float, radius_km: float) -> list[tuple[int, float]]:
        """(key, distance) of every point within radius_km, nearest first."""
        rings = math.ceil(radius_km / self._km_per_cell(lat)) + 1
        center = self._cell(lat, lon)
        found = []
        for r in range(rings + 1):
            for bucket in self._ring(center, r):
                for key, plat, plon in bucket:
                    d = haversine_km(lat, lon, plat, plon)
                    if d <= radius_km:
                        found.append((key, d))
        found.sort(key=lambda kd: kd[1])
        return found

    def nearest(
        self, lat: float, lon: float, accept: Callable[[int], bool], max_km: float
    ) -> tuple[int, float] | None:
        """The nearest accepted point within max_km. Stops once a ring cannot hold anything
        nearer."""
        km_cell = self._km_per_cell(lat)
        max_rings = math.ceil(max_km / km_cell) + 1
        center = self._cell(lat, lon)
        best: tuple[int, float] | None = None
        for r in range(max_rings + 1):
            # Every point in ring r is at least (r - 1) cells away.
            if best is not None and (r - 1) * km_cell > best[1]:
                break
            for bucket in self._ring(center, r):
                for key, plat, plon in bucket:
                    d = haversine_km(lat, lon, plat, plon)
                    if (
                        d <= max_km
                        and (best is None or d < best[1] or (d == best[1] and key < best[0]))
                        and accept(key)
                    ):
                        best = (key, d)
        return best
