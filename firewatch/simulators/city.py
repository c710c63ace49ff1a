"""A deterministic simulated city: units spread over Xuchang's districts and streets, each
with a mix of alarm panels, water points / tanks / pump rooms and e-bike charging sheds.

The result is a :class:`~firewatch.storage.seed.CitySeed`, the same shape as a seed file,
so ``firewatch db seed`` and ``firewatch simulate --register`` load it the same way.
"""

from __future__ import annotations

import random
from pathlib import Path

from firewatch.core.domain import MIN_STATIC_PRESSURE_KPA, DeviceKind
from firewatch.simulators.model import SimDevice
from firewatch.simulators.scenario import ConnectionSpec, MixSpec, Scenario
from firewatch.storage.seed import (
    CitySeed,
    DeviceSeed,
    DistrictSeed,
    StreetSeed,
    UnitSeed,
    read_seed,
)

#: Xuchang's six county-level divisions (docs/domain.md#xuchang), with short codes for ids.
DISTRICTS: list[tuple[str, str, str]] = [
    ("weidu", "WD", "魏都区"),
    ("jianan", "JA", "建安区"),
    ("yuzhou", "YZ", "禹州市"),
    ("changge", "CG", "长葛市"),
    ("yanling", "YL", "鄢陵县"),
    ("xiangcheng", "XC", "襄城县"),
]

#: (category, supervision, building classes to draw from, weight)
CATEGORIES: list[tuple[str, str, tuple[str, ...], float]] = [
    ("commercial_complex", "high_risk", ("class1_highrise", "class1_highrise_over_100m"), 1.0),
    ("hospital", "key", ("class1_highrise", "multistorey"), 1.0),
    ("nursing_home", "high_risk", ("multistorey",), 0.8),
    ("school", "key", ("multistorey",), 1.2),
    ("hotel", "key", ("class2_highrise", "class1_highrise"), 1.0),
    ("market", "high_risk", ("multistorey",), 0.8),
    ("entertainment_venue", "high_risk", ("multistorey", "class2_highrise"), 0.6),
    ("residential_highrise", "key", ("class2_highrise",), 2.0),
    ("flammables_store", "high_risk", ("multistorey",), 0.4),
    ("office", "general", ("class2_highrise", "class1_highrise"), 1.0),
]
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"


def _person(rng: random.Random) -> dict[str, str]:
    name = rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(["", *_GIVEN])
    return {"name": name, "phone": f"1{rng.randint(3, 9)}{rng.randint(0, 999_999_999):09d}"}


def _unit_devices(unit_id: str, bclass: str, mix: MixSpec, rng: random.Random) -> list[DeviceSeed]:
    base = unit_id.replace("U-", "D-", 1)
    min_kpa = MIN_STATIC_PRESSURE_KPA.get(bclass, 100.0)
    devices: list[DeviceSeed] = []
    for p in range(1, mix.panels + 1):
        devices.append(
            DeviceSeed(
                id=f"{base}-P{p}",
                kind=DeviceKind.PANEL,
                vendor=rng.choice(["gst", "tanda"]),
                metadata={
                    "loops": mix.loops,
                    "detectors_per_loop": mix.detectors_per_loop,
                    "zones_per_loop": mix.zones_per_loop,
                },
            )
        )
    design = rng.choice([800, 1000, 1200, 1600])

    def water(dev_id: str, role: str) -> DeviceSeed:
        static = round(rng.uniform(max(2.5 * min_kpa, 250), 0.45 * design), -1)
        meta: dict[str, object] = {
            "role": role,
            "design_kpa": design,
            "min_kpa": min_kpa,
            "static_kpa": static,
        }
        if role == "tank":
            meta["tank_capacity_m"] = rng.choice([3.0, 4.0, 5.0, 6.0])
        return DeviceSeed(id=dev_id, kind=DeviceKind.WATER, vendor="acme", metadata=meta)

    for w in range(1, mix.water_points + 1):
        devices.append(water(f"{base}-W{w}", "pressure"))
    if rng.random() < mix.tank_fraction:
        devices.append(water(f"{base}-T1", "tank"))
    if rng.random() < mix.pump_room_fraction:
        devices.append(water(f"{base}-R1", "pump_room"))
    if rng.random() < mix.shed_fraction:
        devices.append(
            DeviceSeed(
                id=f"{base}-E1",
                kind=DeviceKind.EBIKE_SHED,
                vendor="volt",
                metadata={
                    "ports": mix.ports_per_shed,
                    "port_rating_a": mix.port_rating_a,
                    "allowed_hours": [6, 23],
                },
            )
        )
    return devices


def generate_city(units: int, streets_per_district: int, mix: MixSpec, seed: int) -> CitySeed:
    """``units`` units spread over the six districts; same arguments, same city."""
    rng = random.Random(f"city:{seed}")
    districts = [
        DistrictSeed(
            id=did,
            name=name,
            streets=[
                StreetSeed(id=f"{did}-s{s}", name=f"{name}第{s}街道")
                for s in range(1, streets_per_district + 1)
            ],
        )
        for did, _code, name in DISTRICTS
    ]
    weights = [c[3] for c in CATEGORIES]
    unit_seeds: list[UnitSeed] = []
    for i in range(units):
        did, code, dname = DISTRICTS[i % len(DISTRICTS)]
        street = f"{did}-s{rng.randint(1, streets_per_district)}"
        category, supervision, classes, _w = rng.choices(CATEGORIES, weights)[0]
        bclass = rng.choice(classes)
        unit_id = f"U-{code}-{i + 1:05d}"
        unit_seeds.append(
            UnitSeed(
                id=unit_id,
                name=f"{dname}{category}#{i + 1}",
                street=street,
                supervision=supervision,
                category=category,
                building_class=bclass,
                address=f"{dname}{street}号{rng.randint(1, 300)}",
                contacts={"responsible": _person(rng), "maintenance": _person(rng)},
                devices=_unit_devices(unit_id, bclass, mix, rng),
            )
        )
    return CitySeed(id="xuchang", name="许昌市", districts=districts, units=unit_seeds)


def city_for(scenario: Scenario, units: int | None = None) -> CitySeed:
    """The scenario's city: its seed file, or a generated one (``units`` overrides)."""
    spec = scenario.city
    if spec.seed_file and units is None:
        return read_seed(None if spec.seed_file == "builtin:xuchang" else Path(spec.seed_file))
    return generate_city(
        units or spec.units, spec.streets_per_district, scenario.mix, scenario.seed
    )


def units_for_devices(scenario: Scenario, devices: int) -> int:
    """The smallest unit count whose generated city has at least ``devices`` devices."""
    mix = scenario.mix
    per_unit = max(
        mix.panels
        + mix.water_points
        + mix.tank_fraction
        + mix.pump_room_fraction
        + mix.shed_fraction,
        0.5,
    )
    units = max(1, int(devices / per_unit))
    while sum(len(u.devices) for u in city_for(scenario, units).units) < devices:
        units += max(1, units // 50)
    return units


def sim_devices(city: CitySeed, connections: ConnectionSpec) -> list[SimDevice]:
    """Flatten the city into devices; the first ``max_own_connections`` devices of the
    ``own_connection_kinds`` get their own MQTT connection (and last will)."""
    out: list[SimDevice] = []
    own = 0
    for unit in city.units:
        for d in unit.devices:
            mine = (
                d.kind in connections.own_connection_kinds and own < connections.max_own_connections
            )
            own += mine
            out.append(SimDevice(d.id, unit.id, d.kind, dict(d.metadata), own_connection=mine))
    return out
