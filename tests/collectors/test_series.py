"""SeriesStore: the one live series store, fed by the scraper and read by the alert evaluator."""

from __future__ import annotations

import threading
from pathlib import Path

from collectors import SeriesStore, Validity, load_run
from collectors.series import STALE_NAN, Series
from testing.rundirs import new_writer


def _store(retention_s: float = float("inf")) -> SeriesStore:
    store = SeriesStore(retention_s=retention_s)
    for t in range(20):
        store.add(float(t), "edge", "pitchey_db_up", {"region": "eu-west"}, 1.0 if t < 15 else 0)
        store.add(float(t), "edge", "pitchey_db_up", {"region": "us-east"}, 1.0)
        store.add(float(t), "us-east", "pitchey_db_up", {"region": "us-east"}, 1.0)
    return store


def test_series_are_named_like_prometheus_names_scraped_series() -> None:
    store = _store()
    [eu] = store.find("pitchey_db_up", {"region": "eu-west"})
    assert eu.label_map == {"__name__": "pitchey_db_up", "region": "eu-west",
                            "instance": "edge", "job": "pitchey"}
    assert (eu.metric, eu.target) == ("pitchey_db_up", "edge")
    assert [s.target for s in store.find("pitchey_db_up", {"region": "us-east"})] == [
        "edge", "us-east"]
    assert len(store.select("pitchey_db_up", 0, 20_000)) == 3
    assert store.find("nope") == [] and store.select("nope", 0, 1) == []
    assert store.metrics() == ["pitchey_db_up"] and store.targets() == ["edge", "us-east"]
    # a sample that brings its own instance/job keeps them
    store.add(0.0, "edge", "up", {"instance": "10.0.0.1:8001", "job": "other"}, 1.0)
    assert store.find("up")[0].label_map["instance"] == "10.0.0.1:8001"


def test_points_are_in_milliseconds_and_ranges_are_closed() -> None:
    [eu] = _store().find("pitchey_db_up", {"region": "eu-west"})
    assert eu.points(12_000, 16_000) == [
        (12_000, 1.0), (13_000, 1.0), (14_000, 1.0), (15_000, 0.0), (16_000, 0.0)]
    assert eu.latest() == (19_000, 0.0)
    assert _store().time_range_ms() == (0, 19_000)
    assert SeriesStore().time_range_ms() is None


def test_retention_drops_points_older_than_the_newest_by_more_than_it() -> None:
    [eu] = _store(retention_s=10.0).find("pitchey_db_up", {"region": "eu-west"})
    assert eu.times[0] == 9_000 and eu.times[-1] == 19_000


def test_out_of_order_points_are_dropped_version_moves_and_subscribers_wake() -> None:
    store = SeriesStore()
    woken: list[int] = []
    store.subscribe(lambda: woken.append(store.version))
    store.add(2.0, "edge", "up", {}, 1.0)
    store.add(1.0, "edge", "up", {}, 0.0)
    assert store.find("up")[0].values == [1.0]
    assert woken == [1, 2]


def test_counter_resets_and_staleness_are_kept_for_the_evaluator() -> None:
    series = Series.of({"__name__": "c"}, [(0, 3.0), (1000, 5.0), (2000, 1.0), (3000, 4.0),
                                           (4000, STALE_NAN)])
    times, values, resets, n = series.snapshot()
    assert n == 5 and resets == [0.0, 0.0, 5.0, 5.0, 5.0] and series.stale_points == 1


def test_concurrent_writers_lose_nothing() -> None:
    store = SeriesStore()

    def feed(target: str) -> None:
        for t in range(500):
            store.add(float(t), target, "c", {}, float(t))

    threads = [threading.Thread(target=feed, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [len(s.times) for s in store.find("c")] == [500] * 4
    assert store.version == 4 * 500


def test_from_a_finished_run_is_the_store_the_scraper_filled(tmp_path: Path) -> None:
    samples = [{"t": float(t), "target": "edge", "metric": "pitchey_cache_hits_total",
                "labels": {"cache": "pitches"}, "value": float(t * 2 % 7)} for t in range(9)]
    live = SeriesStore()
    live.add_many(samples)
    writer = new_writer(tmp_path)
    writer.add_service_samples(samples)
    replayed = SeriesStore.from_frame(load_run(writer.finish(Validity.ok())).service)
    [was], [now] = live.find("pitchey_cache_hits_total"), replayed.find("pitchey_cache_hits_total")
    assert now.labels == was.labels and now.snapshot() == was.snapshot()
    assert now.times == [t * 1000 for t in range(9)] and replayed.targets() == ["edge"]
