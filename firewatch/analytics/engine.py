"""The detector engine: every detector family behind one ``process(batch)``.

One engine holds the state of every series it has seen. It is fed batches in commit
order (live, from the feed) or in time order (offline replay); each batch returns the
anomaly changes it caused — new episodes, escalations, refreshes and closings — as
:class:`~firewatch.core.anomalies.Anomaly` revisions to upsert. ``batch.now`` is the
injected clock: silence (dropout) and 24-hour windows are judged against it.

Families (each in its own module): fire water (:mod:`.water`), charging sheds
(:mod:`.shed`), alarm panels (:mod:`.panel`), connectivity and data quality
(:mod:`.link`) and, when a trained model is loaded, IsolationForest on window features
(:mod:`.models`). :meth:`DetectorEngine.state` / :meth:`restore` checkpoint all of it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from firewatch.analytics import checkpoint
from firewatch.analytics.frames import Batch
from firewatch.analytics.learned_models import ModelScorer, TrainedModel
from firewatch.analytics.link import LinkDetectors
from firewatch.analytics.panel import PanelDetectors
from firewatch.analytics.profiles import DeviceProfile
from firewatch.analytics.shed import ShedDetectors
from firewatch.analytics.water import WaterDetectors
from firewatch.core.anomalies import Anomaly, AnomalyKey
from firewatch.core.domain import DeviceKind
from firewatch.core.settings import Settings


@dataclass
class EngineStats:
    """Counters since start (or restore)."""

    batches: int = 0
    rows: int = 0
    points: int = 0
    changes: int = 0
    seconds: float = 0.0
    by_detector: dict[str, int] = field(default_factory=dict)


class DetectorEngine:
    """All detectors, their state and their checkpoint (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        profiles: Mapping[str, DeviceProfile],
        models: Mapping[DeviceKind, TrainedModel] | None = None,
    ) -> None:
        self.profiles: Mapping[str, DeviceProfile] = profiles
        unit_of = self._unit_of
        self.water = WaterDetectors(profiles, unit_of)
        self.shed = ShedDetectors(profiles, unit_of)
        self.panel = PanelDetectors(
            profiles, unit_of, false_alarm_max_s=settings.analytics_false_alarm_max_s
        )
        self.link = LinkDetectors(
            profiles,
            unit_of,
            topic_root=settings.topic_root,
            dropout_factor=settings.analytics_dropout_factor,
            min_silence_s=settings.analytics_dropout_min_s,
            skew_limit_s=settings.analytics_skew_limit_s,
            refused_skew_s=settings.max_clock_skew_future_s,
        )
        self.models = ModelScorer(profiles, models or {})
        self.stats = EngineStats()

    def _unit_of(self, device_id: str) -> str:
        p = self.profiles.get(device_id)
        return p.unit_id if p is not None else ""

    def set_profiles(self, profiles: Mapping[str, DeviceProfile]) -> None:
        """A new registry snapshot (devices added, thresholds edited)."""
        self.profiles = profiles
        for fam in (self.water, self.shed, self.panel, self.link):
            fam.set_profiles(profiles)
        self.models.profiles = profiles

    def set_models(self, models: Mapping[DeviceKind, TrainedModel]) -> None:
        self.models.set_models(models)

    def process(self, batch: Batch) -> list[Anomaly]:
        """Run every detector over ``batch``; the anomaly changes, newest revision last."""
        started = time.perf_counter()
        f = batch.telemetry
        out: list[Anomaly] = []
        out += self.link.process(batch)
        if batch.events:  # alarms first: the rest of the batch must not delay them
            out += self.panel.process(batch.events)
        if len(f):
            out += self.water.process(f)
            out += self.shed.process(f)
            out += self.models.update(f)
        out += self.tick(batch.now)
        st = self.stats
        st.batches += 1
        st.rows += len(batch)
        st.points += batch.points()
        st.changes += len(out)
        for a in out:
            st.by_detector[a.detector] = st.by_detector.get(a.detector, 0) + 1
        st.seconds += time.perf_counter() - started
        return out

    def tick(self, now: float) -> list[Anomaly]:
        """Time-driven checks (dropout, expiring 24-hour counts) as of server time ``now``."""
        return self.link.tick(now) + self.panel.tick(now)

    def open_anomalies(self) -> list[Anomaly]:
        """Every episode currently open (for diagnostics and tests)."""
        found: dict[AnomalyKey, Anomaly] = {}
        groups = [
            self.water.pressure,
            self.water.level,
            self.water.room,
            self.shed.temp,
            self.shed.current,
            self.shed.ambient,
        ]
        for g in groups:
            for tr in g.detectors.values():
                for a in tr.open.values():
                    found[a.key] = a
        for tr in (self.water.jockey.tracker, self.shed.smoke.tracker, self.link.skew):
            for a in tr.open.values():
                found[a.key] = a
        for store in (self.panel.open, self.panel.unit_open):
            for a in store.values():
                found[a.key] = a
        for s in (self.link.offline, self.link.dropout, self.link.malformed_open):
            for a in s.values():
                found[a.key] = a
        return sorted(found.values(), key=lambda a: (a.started_at, a.device_id))

    # -- checkpoint ---------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "water": self.water.state(),
            "shed": self.shed.state(),
            "panel": self.panel.state(),
            "link": self.link.state(),
            "models": self.models.state(),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        self.water.restore(state["water"])
        self.shed.restore(state["shed"])
        self.panel.restore(state["panel"])
        self.link.restore(state["link"])
        self.models.restore(state["models"])

    def snapshot(self) -> bytes:
        """The whole state as bytes (:mod:`.checkpoint`: npz + JSON, no pickle)."""
        return checkpoint.pack(self.state())

    def load(self, data: bytes) -> None:
        """Restore from :meth:`snapshot` bytes; raises ``CheckpointError`` if unreadable."""
        self.restore(checkpoint.unpack(data))
