"""Street geometry in perspective (horizon, vanishing point, ground lines) and the stuff along it: ground,
skyline and the facade rows of both street sides."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from panoptic_st.data.toy.scene import BUILDING, FENCE, ROAD, SIDEWALK, TERRAIN, VEGETATION, WALL, Canvas

CAM_HEIGHT_M = 1.6


@dataclass
class Street:
    """Perspective geometry: horizon, vanishing point and the ground lines through it (x at the bottom row)."""

    h: int
    w: int
    yh: float
    xv: float
    road: tuple[float, float]
    curb_out: tuple[float, float]
    facade: tuple[float, float]

    def y(self, t: float) -> float:
        """Image row of ground depth t (0 at the horizon, 1 at the bottom row)."""
        return self.yh + t * (self.h - self.yh)

    def x(self, xb: float, t: float) -> float:
        """Column at depth t of the ground line that meets the bottom row at xb."""
        return self.xv + t * (xb - self.xv)

    def ppm(self, t: float) -> float:
        """Pixels per metre at depth t (camera 1.6 m above the ground)."""
        return t * (self.h - self.yh) / CAM_HEIGHT_M


def random_street(rng: np.random.Generator, h: int, w: int) -> Street:
    """Random horizon, vanishing point, road, sidewalk and (sometimes) grass-strip widths."""
    yh = h * rng.uniform(0.33, 0.55)
    xv = w * rng.uniform(0.3, 0.7)
    cx, half = xv + w * rng.uniform(-0.15, 0.15), w * rng.uniform(0.25, 0.55)
    walk = w * rng.uniform(0.1, 0.3, 2)
    grass = w * rng.uniform(0.1, 0.4, 2) * (rng.random(2) < 0.35)
    road = (cx - half, cx + half)
    curb_out = (road[0] - walk[0], road[1] + walk[1])
    facade = (curb_out[0] - grass[0], curb_out[1] + grass[1])
    return Street(h, w, yh, xv, road, curb_out, facade)


def draw_ground(cv: Canvas, st: Street) -> None:
    """Sky, outer ground, sidewalks, road and its dashed centre line."""
    yh, xv, h = round(st.yh), round(st.xv), st.h
    cv.sem[yh:, :xv] = TERRAIN if st.facade[0] < st.curb_out[0] else SIDEWALK
    cv.sem[yh:, xv:] = TERRAIN if st.facade[1] > st.curb_out[1] else SIDEWALK
    cv.poly([(st.xv, st.yh), (st.curb_out[0], h), (st.curb_out[1], h)], SIDEWALK)
    cv.poly([(st.xv - 0.5, st.yh), (st.road[0], h), (st.road[1], h), (st.xv + 0.5, st.yh)], ROAD)
    centre = (st.road[0] + st.road[1]) / 2
    t = 0.08
    while t < 1.2:
        t2 = t * 1.25
        cv.shade_line((st.x(centre, t), st.y(t)), (st.x(centre, t2), st.y(t2)), 0.15 * st.ppm(t2), 1.9)
        t = t2 * 1.3


def draw_skyline(cv: Canvas, st: Street, rng: np.random.Generator) -> None:
    """Distant buildings and trees around the vanishing point."""
    if rng.random() < 0.2:
        return
    x = st.xv - st.w * rng.uniform(0.2, 0.4)
    end = st.xv + st.w * rng.uniform(0.2, 0.4)
    while x < end:
        bw = rng.uniform(3, 14) * cv.scale
        top = st.yh - st.h * rng.uniform(0.02, 0.18)
        if rng.random() < 0.25:
            cv.ellipse((x + bw / 2, st.yh), (bw / 2, st.yh - top), VEGETATION)
        else:
            cv.rect(x, top, x + bw, st.yh + 1, BUILDING)
        x += bw


def _facade_segment(cv: Canvas, st: Street, xb: float, ta: float, tb: float, cls: int, k: float) -> None:
    """Vertical plane along the ground line `xb` between depths ta and tb, k times the camera height tall."""
    d = st.h - st.yh
    cv.poly([(st.x(xb, ta), st.y(ta)), (st.x(xb, ta), st.yh - k * ta * d),
             (st.x(xb, tb), st.yh - k * tb * d), (st.x(xb, tb), st.y(tb))], cls)


def draw_side(cv: Canvas, st: Street, side: int, rng: np.random.Generator) -> None:
    """Facade row of one street side (buildings, hedges, walls, gaps) and maybe a fence in front."""
    xb = st.facade[side]
    edge = 0.0 if side == 0 else st.w - 1.0
    t = (edge - st.xv) / (xb - st.xv) + 0.05
    while t > 0.03:
        t2 = t * rng.uniform(0.45, 0.8)
        kind = rng.choice(4, p=[0.66, 0.14, 0.1, 0.1])  # building, hedge, wall, gap
        if kind == 0:
            _facade_segment(cv, st, xb, t, t2, BUILDING, rng.uniform(0.8, 3.5))
        elif kind == 1:
            _facade_segment(cv, st, xb, t, t2, VEGETATION, rng.uniform(0.4, 1.2))
            for _ in range(2):
                tc = rng.uniform(t2, t)
                r = rng.uniform(1.2, 2.5) * st.ppm(tc)
                cv.ellipse((st.x(xb, tc), st.yh - 0.9 * tc * (st.h - st.yh)), (r, 0.8 * r), VEGETATION)
        elif kind == 2:
            if rng.random() < 0.6:
                _facade_segment(cv, st, xb, t, t2, BUILDING, rng.uniform(1.0, 3.0))
            _facade_segment(cv, st, xb, t, t2, WALL, rng.uniform(0.6, 1.1))
        t = t2
    if rng.random() < 0.35:
        ta = rng.uniform(0.3, 1.3)
        line = st.curb_out[side] if st.facade[side] == st.curb_out[side] else (st.curb_out[side] + xb) / 2
        _facade_segment(cv, st, line, ta, ta * rng.uniform(0.15, 0.5), FENCE, rng.uniform(0.6, 0.9))
