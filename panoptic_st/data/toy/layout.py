"""Where the upright objects of a scene stand, and the scene drawn from that plan far-to-near."""

from __future__ import annotations

import numpy as np

from panoptic_st.data.toy.crowds import PlanItem, plan_crowds
from panoptic_st.data.toy.scene import (
    BICYCLE,
    BUS,
    CAR,
    MOTORCYCLE,
    PERSON,
    RIDER,
    TRAIN,
    TRUCK,
    Canvas,
    Scene,
)
from panoptic_st.data.toy.street import Street, draw_ground, draw_side, draw_skyline, random_street
from panoptic_st.data.toy.stuff import draw_pole, draw_static, draw_tree, surface_detail
from panoptic_st.data.toy.things import (
    draw_bicycle,
    draw_bus,
    draw_car,
    draw_motorcycle,
    draw_person,
    draw_rider,
    draw_train,
    draw_truck,
)

MIN_INSTANCE_PX = 10
"""Things whose visible part is smaller lose their instance id (Cityscapes writes them as a group region); an area
at detail scale 1, so it grows with the square of `detail_scale`."""


def _plan_objects(st: Street, rng: np.random.Generator) -> list[PlanItem]:
    """Sample (depth t, kind, column, facing) for every upright object of the sparse layout."""
    plan: list[PlanItem] = []

    def on(span: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
        t = rng.uniform(lo, hi)
        return t, rng.uniform(*sorted((st.x(span[0], t), st.x(span[1], t))))

    def sidewalk(lo: float, hi: float) -> tuple[float, float]:
        s = rng.integers(2)
        return on((st.road[0], st.curb_out[0]) if s == 0 else (st.road[1], st.curb_out[1]), lo, hi)

    def add(kind: str, where: tuple[float, float]) -> None:
        plan.append((where[0], kind, where[1], 1 if rng.random() < 0.5 else -1))

    for _ in range(rng.poisson(2.2)):
        add("car_side" if rng.random() < 0.35 else "car", on(st.road, 0.1, 0.95))
    for _ in range(rng.poisson(1.8) if rng.random() < 0.8 else 0):
        add("person", sidewalk(0.12, 1.0) if rng.random() < 0.85 else on(st.road, 0.12, 1.0))
    for _ in range(rng.integers(1, 3) if rng.random() < 0.25 else 0):
        add("rider_bicycle" if rng.random() < 0.6 else "rider_motorcycle", on(st.road, 0.12, 0.9))
    for _ in range(rng.integers(1, 4) if rng.random() < 0.25 else 0):
        add("bicycle", sidewalk(0.12, 0.9))
    for _ in range(rng.integers(1, 3) if rng.random() < 0.2 else 0):
        add("motorcycle", sidewalk(0.12, 0.9) if rng.random() < 0.5 else on(st.road, 0.12, 0.9))
    for kind, p, hi in (("truck", 0.22, 0.7), ("bus", 0.22, 0.7), ("train", 0.18, 0.38)):
        if rng.random() < p:
            add(kind if rng.random() < 0.5 else kind + "_side", on(st.road, 0.09, hi))
    if rng.random() < 0.12:
        t, x = sidewalk(0.1, 0.22)
        for _ in range(rng.integers(3, 7)):
            plan.append((t + rng.uniform(-0.01, 0.01), "group_person" if rng.random() < 0.75 else "group_bicycle",
                         x + rng.uniform(-2.0, 2.0) * st.ppm(t), 1 if rng.random() < 0.5 else -1))
    for _ in range(rng.integers(1, 3) if rng.random() < 0.3 else 0):
        add("static", sidewalk(0.15, 0.9))
    for _ in range(rng.poisson(2.5)):
        s = rng.integers(2)
        line = st.road[s] + (st.curb_out[s] - st.road[s]) * (0.15 if rng.random() < 0.6 else 0.85)
        t = rng.uniform(0.1, 1.0)
        plan.append((t, "pole", st.x(line, t), 1 if s == 0 else -1))
    for _ in range(rng.poisson(1.5) if rng.random() < 0.6 else 0):
        s = rng.integers(2)
        line = (st.curb_out[s] + st.facade[s]) / 2 if st.facade[s] != st.curb_out[s] else st.curb_out[s]
        t = rng.uniform(0.1, 0.9)
        plan.append((t, "tree", st.x(line, t), 1))
    return plan


def _draw_object(cv: Canvas, st: Street, kind: str, t: float, x: float, d: int,
                 rng: np.random.Generator) -> None:
    """Draw one planned object; things register their instance ids in draw order."""
    yb, m = st.y(t), st.ppm(t)
    base = kind.removesuffix("_side")
    side = kind.endswith("_side")
    if kind in ("person", "group_person"):
        draw_person(cv, x, yb, m, cv.thing(PERSON, kind.startswith("group")), rng)
    elif kind in ("bicycle", "group_bicycle"):
        draw_bicycle(cv, x, yb, m, cv.thing(BICYCLE, kind.startswith("group")), d)
    elif kind == "motorcycle":
        draw_motorcycle(cv, x, yb, m, cv.thing(MOTORCYCLE), d)
    elif kind.startswith("rider_"):
        vehicle = draw_bicycle if kind == "rider_bicycle" else draw_motorcycle
        seat = vehicle(cv, x, yb, m, cv.thing(BICYCLE if kind == "rider_bicycle" else MOTORCYCLE), d)
        draw_rider(cv, seat, yb, m, cv.thing(RIDER), d)
    elif base == "car":
        draw_car(cv, x, yb, m, cv.thing(CAR), d, side)
    elif base == "truck":
        draw_truck(cv, x, yb, m, cv.thing(TRUCK), d, side)
    elif base == "bus":
        draw_bus(cv, x, yb, m, cv.thing(BUS), d, side)
    elif base == "train":
        draw_train(cv, x, yb, m, cv.thing(TRAIN), d, side, rng)
    elif kind == "pole":
        draw_pole(cv, x, yb, m, rng, d)
    elif kind == "tree":
        draw_tree(cv, x, yb, m, rng)
    else:
        draw_static(cv, x, yb, m)


def _keep_visible(cv: Canvas) -> Scene:
    """Drop instance ids of things whose visible part is below MIN_INSTANCE_PX; renumber the rest 1..k."""
    area = np.bincount(cv.inst.ravel(), minlength=len(cv.things) + 1)
    keep = area[1:] >= MIN_INSTANCE_PX * cv.scale ** 2
    remap = np.zeros(len(cv.things) + 1, np.int32)
    remap[1:][keep] = np.arange(1, int(keep.sum()) + 1)
    things = [th for th, k in zip(cv.things, keep) if k]
    return Scene(cv.sem, remap[cv.inst], cv.shade, things, cv.scale)


def _far_to_near(plan: list[PlanItem]) -> list[PlanItem]:
    """The plan in drawing order: by depth, objects of one depth in planning order."""
    order = sorted((t, i) for i, (t, *_) in enumerate(plan))
    return [plan[i] for _, i in order]


def draw_scene(rng: np.random.Generator, height: int, width: int, scale: float = 1.0,
               crowded: bool = False) -> Scene:
    """Draw one random street scene (the layout shared by all domains) at detail scale `scale`; `crowded` adds
    the dense groups of `plan_crowds` (the instance domain gap's target layouts)."""
    cv = Canvas(height, width, scale)
    st = random_street(rng, height, width)
    draw_ground(cv, st)
    draw_skyline(cv, st, rng)
    for side in (0, 1):
        draw_side(cv, st, side, rng)
    plan = _plan_objects(st, rng)
    if crowded:
        plan += plan_crowds(st, rng)
    for t, kind, x, d in _far_to_near(plan):
        _draw_object(cv, st, kind, t, x, d, rng)
    surface_detail(cv, rng)
    return _keep_visible(cv)
