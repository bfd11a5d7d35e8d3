"""Dense layouts of one thing class for the instance domain gap: rows of parked cars, groups of pedestrians and
riders side by side, whose members touch and partly occlude each other.

Every planner returns (depth t, kind, column x, facing) items like the sparse layout; the scene draws all items
far-to-near, so a nearer member covers the farther ones and instance ids keep only the visible parts.
"""

from __future__ import annotations

import numpy as np

from panoptic_st.data.toy.street import CAM_HEIGHT_M, Street

PlanItem = tuple[float, str, float, int]
"""(depth t, kind, column x at that depth, facing +1/-1) of one object to draw."""
FOCAL_WIDTHS = 1.0
"""Focal length in image widths, assumed to turn distances along the street into depths t."""
CAR_LENGTH_M = 4.5
SIDE_CAR_LENGTH_M = 4.3
"""Length of the side-view car drawing (`draw_car` with side=True)."""
KERB_ROW_OFFSET_M = 2.2
"""Least sideways distance of a kerb row from the camera (a row straight ahead would hide behind its first car)."""
NEAR_STEP = 0.015
"""Relative depth step between neighbours of one group, so that every pair has a defined occlusion order."""


def _facing(rng: np.random.Generator) -> int:
    """+1 or -1, evenly."""
    return 1 if rng.random() < 0.5 else -1


def _depth_after(st: Street, t: float, metres: float) -> float:
    """Depth t of the ground point `metres` farther along the street than depth t."""
    metres_per_unit_t = CAM_HEIGHT_M * FOCAL_WIDTHS * st.w / (st.h - st.yh)
    return 1.0 / (1.0 / t + metres / metres_per_unit_t)


def kerb_car_row(st: Street, rng: np.random.Generator) -> list[PlanItem]:
    """3-6 cars parked nose to tail along one kerb, seen from behind: each farther car shows beside and above
    the nearer one it is partly hidden by."""
    side = int(rng.integers(2))
    outward = -1.0 if side == 0 else 1.0
    lane = st.road[side] - outward * rng.uniform(0.6, 1.1) * st.ppm(1.0)
    lane = st.xv + outward * max(abs(lane - st.xv), KERB_ROW_OFFSET_M * st.ppm(1.0))
    t, row = rng.uniform(0.4, 0.8), []
    for _ in range(rng.integers(3, 7)):
        row.append((t, "car", st.x(lane, t), 1))
        t = _depth_after(st, t, CAR_LENGTH_M + rng.uniform(0.2, 1.5))
    return row


def cross_car_row(st: Street, rng: np.random.Generator) -> list[PlanItem]:
    """3-6 cars seen from the side, parked nose to tail and overlapping by up to a quarter of their length; each
    next one a little farther, so the row's first car is drawn over the second, and so on."""
    t = rng.uniform(0.25, 0.65)
    d = _facing(rng)
    x = rng.uniform(0.1, 0.9) * st.w
    step = d * SIDE_CAR_LENGTH_M * st.ppm(t)
    row = []
    for _ in range(rng.integers(3, 7)):
        row.append((t, "car_side", x, d))
        x += step * rng.uniform(0.75, 1.0)
        t *= 1.0 - NEAR_STEP
    return row


def pedestrian_group(st: Street, rng: np.random.Generator) -> list[PlanItem]:
    """2-5 pedestrians standing shoulder to shoulder on one sidewalk, in a random front-to-back order."""
    side = int(rng.integers(2))
    t = rng.uniform(0.3, 0.95)
    edge = sorted((st.x(st.road[side], t), st.x(st.curb_out[side], t)))
    x = rng.uniform(*edge)
    n = int(rng.integers(2, 6))
    depths = t * (1.0 - NEAR_STEP * rng.permutation(n))
    xs = x + np.cumsum(rng.uniform(0.25, 0.45, n)) * st.ppm(t)
    return [(float(depths[k]), "person", float(xs[k]), _facing(rng)) for k in range(n)]


def riders_side_by_side(st: Street, rng: np.random.Generator) -> list[PlanItem]:
    """2-3 cyclists riding abreast across the road: one direction, each a little behind the one nearer."""
    t = rng.uniform(0.3, 0.9)
    x = st.x(rng.uniform(*st.road), t)
    d = _facing(rng)
    n = int(rng.integers(2, 4))
    xs = x - d * np.cumsum(rng.uniform(0.2, 0.6, n)) * st.ppm(t)
    return [(t * (1.0 - 4 * NEAR_STEP * k), "rider_bicycle", float(xs[k]), d) for k in range(n)]


def plan_crowds(st: Street, rng: np.random.Generator) -> list[PlanItem]:
    """The dense groups of one scene: one or two car rows, usually pedestrian groups, sometimes riders."""
    plan = kerb_car_row(st, rng) if rng.random() < 0.6 else cross_car_row(st, rng)
    if rng.random() < 0.5:
        plan += kerb_car_row(st, rng)
    for _ in range(rng.integers(1, 3) if rng.random() < 0.8 else 0):
        plan += pedestrian_group(st, rng)
    if rng.random() < 0.4:
        plan += riders_side_by_side(st, rng)
    return plan
