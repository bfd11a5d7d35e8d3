"""The eight thing classes. Each draws standing at (x, yb) with m pixels per metre, facing `d` (+1/-1), under
the instance id `iid`."""

from __future__ import annotations

import numpy as np

from panoptic_st.data.toy.scene import BICYCLE, BUS, CAR, MOTORCYCLE, PERSON, RIDER, TRAIN, TRUCK, Canvas, px


def draw_person(cv: Canvas, x: float, yb: float, m: float, iid: int, rng: np.random.Generator) -> None:
    """A walking person of random height, stride and arm swing."""
    h = rng.uniform(1.6, 1.9) * m
    stride, swing = rng.uniform(0.0, 0.14) * h, rng.uniform(-0.08, 0.08) * h
    cv.line((x - 0.05 * h, yb - 0.48 * h), (x - stride, yb), 0.1 * h, PERSON, iid, 0.55)
    cv.line((x + 0.05 * h, yb - 0.48 * h), (x + stride, yb), 0.1 * h, PERSON, iid, 0.55)
    cv.poly([(x - 0.13 * h, yb - 0.84 * h), (x + 0.13 * h, yb - 0.84 * h),
             (x + 0.1 * h, yb - 0.46 * h), (x - 0.1 * h, yb - 0.46 * h)], PERSON, iid)
    cv.line((x - 0.12 * h, yb - 0.82 * h), (x - 0.15 * h + swing, yb - 0.5 * h), 0.06 * h, PERSON, iid)
    cv.line((x + 0.12 * h, yb - 0.82 * h), (x + 0.15 * h - swing, yb - 0.5 * h), 0.06 * h, PERSON, iid)
    cv.ellipse((x, yb - 0.92 * h), (0.075 * h, 0.075 * h), PERSON, iid, 1.3)


def draw_bicycle(cv: Canvas, x: float, yb: float, m: float, iid: int, d: int) -> tuple[float, float]:
    """Draw a side-view bicycle; returns the seat point for a rider."""
    r, half, w = 0.34 * m, 0.52 * m, max(1.0, 0.07 * m)
    rear, front = (x - d * half, yb - r), (x + d * half, yb - r)
    seat, head = (x - d * 0.2 * m, yb - 2.4 * r), (x + d * 0.42 * m, yb - 2.6 * r)
    crank = (x - d * 0.05 * m, yb - r)
    for c in (rear, front):
        cv.ellipse(c, (r, r), BICYCLE, iid, 0.6, px(0.08 * m))
    for a, b in ((rear, seat), (seat, crank), (crank, rear), (seat, (head[0], seat[1])), (crank, head),
                 (head, front)):
        cv.line(a, b, w, BICYCLE, iid)
    return seat


def draw_motorcycle(cv: Canvas, x: float, yb: float, m: float, iid: int, d: int) -> tuple[float, float]:
    """Draw a side-view motorcycle; returns the seat point for a rider."""
    r, half = 0.32 * m, 0.72 * m
    cv.ellipse((x, yb - 1.9 * r), (1.05 * half, 0.55 * r), MOTORCYCLE, iid)
    cv.poly([(x - d * 0.3 * half, yb - 2.4 * r), (x + d * 0.55 * half, yb - 2.6 * r),
             (x + d * 0.7 * half, yb - 1.6 * r), (x - d * 0.2 * half, yb - 1.4 * r)], MOTORCYCLE, iid, 1.2)
    cv.line((x + d * 0.75 * half, yb - 3.2 * r), (x + d * half, yb - r), 0.08 * m, MOTORCYCLE, iid, 0.6)
    for c in ((x - d * half, yb - r), (x + d * half, yb - r)):
        cv.ellipse(c, (r, r), MOTORCYCLE, iid, 0.3)
    return x - d * 0.35 * half, yb - 2.5 * r


def draw_rider(cv: Canvas, seat: tuple[float, float], yb: float, m: float, iid: int, d: int) -> None:
    """A rider sitting on `seat` of a bicycle or motorcycle."""
    sx, sy = seat
    shoulder = (sx + d * 0.25 * m, sy - 0.6 * m)
    cv.line(seat, (sx + d * 0.2 * m, yb - 0.3 * m), 0.17 * m, RIDER, iid, 0.55)
    cv.poly([(sx - d * 0.1 * m, sy), (sx + d * 0.12 * m, sy + 0.05 * m),
             (shoulder[0] + d * 0.12 * m, shoulder[1]), (shoulder[0] - d * 0.15 * m, shoulder[1] - 0.05 * m)],
            RIDER, iid)
    cv.line(shoulder, (sx + d * 0.75 * m, sy - 0.25 * m), 0.1 * m, RIDER, iid)
    cv.ellipse((shoulder[0] + d * 0.05 * m, shoulder[1] - 0.2 * m), (0.14 * m, 0.14 * m), RIDER, iid, 1.3)


def _wheels(cv: Canvas, xs, yb: float, r: float, cls: int, iid: int) -> None:
    """Dark wheels of radius r standing on row yb at columns xs."""
    for wx in xs:
        cv.ellipse((wx, yb - r), (r, r), cls, iid, 0.25)


def draw_car(cv: Canvas, x: float, yb: float, m: float, iid: int, d: int, side: bool) -> None:
    """A car seen from the side or from behind."""
    if side:
        half, r = 2.15 * m, 0.33 * m
        cv.poly([(x - 0.55 * half, yb - 1.0 * m), (x - 0.35 * half, yb - 1.5 * m),
                 (x + 0.3 * half, yb - 1.5 * m), (x + 0.6 * half, yb - 1.0 * m)], CAR, iid)
        cv.poly([(x - 0.45 * half, yb - 1.05 * m), (x - 0.3 * half, yb - 1.4 * m),
                 (x + 0.25 * half, yb - 1.4 * m), (x + 0.48 * half, yb - 1.05 * m)], CAR, iid, 0.45)
        cv.rect(x - half, yb - 1.05 * m, x + half, yb - 0.2 * m, CAR, iid)
        cv.rect(x + d * 0.93 * half, yb - 0.85 * m, x + d * half, yb - 0.7 * m, CAR, iid, 1.6)
        _wheels(cv, (x - 0.62 * half, x + 0.62 * half), yb, r, CAR, iid)
        return
    half = 0.9 * m
    cv.rect(x - 0.85 * half, yb - 0.35 * m, x - 0.55 * half, yb, CAR, iid, 0.25)
    cv.rect(x + 0.55 * half, yb - 0.35 * m, x + 0.85 * half, yb, CAR, iid, 0.25)
    cv.poly([(x - 0.85 * half, yb - 1.05 * m), (x - 0.7 * half, yb - 1.5 * m),
             (x + 0.7 * half, yb - 1.5 * m), (x + 0.85 * half, yb - 1.05 * m)], CAR, iid)
    cv.poly([(x - 0.75 * half, yb - 1.1 * m), (x - 0.62 * half, yb - 1.42 * m),
             (x + 0.62 * half, yb - 1.42 * m), (x + 0.75 * half, yb - 1.1 * m)], CAR, iid, 0.45)
    cv.rect(x - half, yb - 1.08 * m, x + half, yb - 0.25 * m, CAR, iid)
    for s in (-1, 1):
        cv.rect(x + s * 0.95 * half, yb - 0.9 * m, x + s * 0.7 * half, yb - 0.75 * m, CAR, iid, 1.7)


def draw_truck(cv: Canvas, x: float, yb: float, m: float, iid: int, d: int, side: bool) -> None:
    """A truck seen from the side or from behind."""
    if side:
        half, r = 3.5 * m, 0.5 * m
        front = x + d * half
        cv.rect(x - d * half, yb - 3.5 * m, x + d * 0.45 * half, yb - 0.8 * m, TRUCK, iid, 0.92)
        cv.rect(x + d * 0.5 * half, yb - 2.9 * m, front, yb - 0.6 * m, TRUCK, iid)
        cv.rect(x + d * 0.6 * half, yb - 2.7 * m, front - d * 0.05 * half, yb - 1.8 * m, TRUCK, iid, 0.45)
        cv.rect(x - d * half, yb - 1.0 * m, front, yb - 0.5 * m, TRUCK, iid, 0.5)
        _wheels(cv, (x - d * 0.75 * half, x - d * 0.45 * half, x + d * 0.7 * half), yb, r, TRUCK, iid)
        return
    half = 1.25 * m
    cv.rect(x - 0.9 * half, yb - 0.6 * m, x - 0.5 * half, yb, TRUCK, iid, 0.25)
    cv.rect(x + 0.5 * half, yb - 0.6 * m, x + 0.9 * half, yb, TRUCK, iid, 0.25)
    cv.rect(x - half, yb - 3.5 * m, x + half, yb - 0.6 * m, TRUCK, iid, 0.92)
    cv.rect(x - half, yb - 0.9 * m, x + half, yb - 0.6 * m, TRUCK, iid, 0.4)
    cv.line((x, yb - 3.4 * m), (x, yb - 1.0 * m), 0.06 * m, TRUCK, iid, 0.6)


def draw_bus(cv: Canvas, x: float, yb: float, m: float, iid: int, d: int, side: bool) -> None:
    """A bus seen from the side or from behind."""
    if side:
        half, r = 5.5 * m, 0.5 * m
        cv.rect(x - half, yb - 3.1 * m, x + half, yb - 0.35 * m, BUS, iid)
        cv.rect(x - 0.95 * half, yb - 2.8 * m, x + 0.97 * half, yb - 1.8 * m, BUS, iid, 0.45)
        for k in range(-4, 5):
            cv.line((x + k * 0.2 * half, yb - 2.8 * m), (x + k * 0.2 * half, yb - 1.8 * m), 0.12 * m, BUS, iid)
        cv.rect(x + d * 0.55 * half, yb - 2.6 * m, x + d * 0.7 * half, yb - 0.5 * m, BUS, iid, 0.5)
        _wheels(cv, (x - 0.65 * half, x + 0.65 * half), yb, r, BUS, iid)
        return
    half = 1.28 * m
    cv.rect(x - 0.9 * half, yb - 0.5 * m, x - 0.55 * half, yb, BUS, iid, 0.25)
    cv.rect(x + 0.55 * half, yb - 0.5 * m, x + 0.9 * half, yb, BUS, iid, 0.25)
    cv.rect(x - half, yb - 3.1 * m, x + half, yb - 0.35 * m, BUS, iid)
    cv.rect(x - 0.85 * half, yb - 2.9 * m, x + 0.85 * half, yb - 1.6 * m, BUS, iid, 0.45)
    cv.rect(x - 0.6 * half, yb - 3.05 * m, x + 0.6 * half, yb - 2.95 * m, BUS, iid, 1.5)


def draw_train(cv: Canvas, x: float, yb: float, m: float, iid: int, d: int, side: bool,
               rng: np.random.Generator) -> None:
    """A train of random length seen from the side, or from the front."""
    if side:
        half = rng.uniform(9, 15) * m
        cv.line((x, yb - 3.6 * m), (x + 0.8 * m, yb - 4.4 * m), 0.08 * m, TRAIN, iid, 0.5)
        cv.line((x + 0.8 * m, yb - 4.4 * m), (x + 1.8 * m, yb - 4.4 * m), 0.08 * m, TRAIN, iid, 0.5)
        cv.rect(x - half, yb - 3.6 * m, x + half, yb - 0.5 * m, TRAIN, iid)
        for end in (-1, 1):
            cv.ellipse((x + end * half, yb - 2.05 * m), (0.8 * m, 1.55 * m), TRAIN, iid)
        cv.rect(x - half, yb - 1.0 * m, x + half, yb - 0.5 * m, TRAIN, iid, 0.6)
        pitch = 1.8 * m
        for k in range(int(-half // pitch), int(half // pitch)):
            wx = x + k * pitch + 0.3 * m
            cv.rect(wx, yb - 3.0 * m, wx + 1.2 * m, yb - 2.0 * m, TRAIN, iid, 0.45)
        for wx in np.arange(x - 0.8 * half, x + 0.81 * half, 0.4 * half):
            cv.rect(wx - 0.5 * m, yb - 0.5 * m, wx + 0.5 * m, yb, TRAIN, iid, 0.25)
        return
    half = 1.32 * m
    cv.rect(x - half, yb - 3.3 * m, x + half, yb - 0.3 * m, TRAIN, iid)
    cv.ellipse((x, yb - 3.3 * m), (half, 0.4 * m), TRAIN, iid)
    cv.rect(x - 0.85 * half, yb - 3.2 * m, x + 0.85 * half, yb - 1.9 * m, TRAIN, iid, 0.4)
    cv.rect(x - 0.9 * half, yb - 0.9 * m, x + 0.9 * half, yb - 0.3 * m, TRAIN, iid, 0.6)
    cv.rect(x - 0.4 * half, yb - 0.3 * m, x + 0.4 * half, yb, TRAIN, iid, 0.25)
