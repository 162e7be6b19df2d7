"""SeriesStore: the live view the embedded alert evaluator reads."""

from __future__ import annotations

from pathlib import Path

from collectors import SeriesStore, Validity, load_run
from tests.collectors.rundirs import new_writer


def _store() -> SeriesStore:
    store = SeriesStore(retention_s=10.0)
    for t in range(20):
        store.add(float(t), "edge", "pitchey_db_up", {"region": "eu-west"}, 1.0 if t < 15 else 0)
        store.add(float(t), "edge", "pitchey_db_up", {"region": "us-east"}, 1.0)
        store.add(float(t), "us-east", "pitchey_db_up", {"region": "us-east"}, 1.0)
    return store


def test_query_matches_label_subsets_and_time_range() -> None:
    store = _store()
    [eu] = store.query("pitchey_db_up", {"region": "eu-west"}, start=12, end=16)
    assert eu.times == (12.0, 13.0, 14.0, 15.0, 16.0) and eu.values == (1, 1, 1, 0, 0)
    assert len(store.query("pitchey_db_up")) == 3
    assert [s.target for s in store.query("pitchey_db_up", {"region": "us-east"})] == [
        "edge", "us-east"]
    assert store.query("pitchey_db_up", target="us-east")[0].labels == {"region": "us-east"}
    assert store.query("nope") == []


def test_retention_drops_old_points() -> None:
    store = _store()
    [eu] = store.query("pitchey_db_up", {"region": "eu-west"})
    assert eu.times[0] == 9.0 and eu.times[-1] == 19.0


def test_instant_applies_staleness() -> None:
    store = _store()
    assert {s.labels["region"]: s.value for s in store.instant("pitchey_db_up", target="edge")} \
        == {"eu-west": 0.0, "us-east": 1.0}
    [sample] = store.instant("pitchey_db_up", {"region": "eu-west"}, at=14.5)
    assert (sample.t, sample.value) == (14.0, 1.0)
    assert store.instant("pitchey_db_up", at=40.0, lookback_s=5) == []
    assert store.newest_time() == 19.0


def test_out_of_order_points_are_dropped_and_version_moves() -> None:
    store = SeriesStore()
    store.add(2.0, "edge", "up", {}, 1.0)
    version = store.version
    store.add(1.0, "edge", "up", {}, 0.0)
    assert store.query("up")[0].values == (1.0,) and store.version == version + 1


def test_from_a_finished_runs_service_table(tmp_path: Path) -> None:
    writer = new_writer(tmp_path)
    writer.add_service_samples([
        {"t": float(t), "target": "edge", "metric": "pitchey_cache_hits_total",
         "labels": {"cache": "pitches"}, "value": float(t * 2)} for t in range(5)
    ])
    run = load_run(writer.finish(Validity.ok()))
    store = SeriesStore.from_frame(run.service)
    [series] = store.query("pitchey_cache_hits_total", {"cache": "pitches"})
    assert series.values == (0.0, 2.0, 4.0, 6.0, 8.0) and store.targets() == ["edge"]
