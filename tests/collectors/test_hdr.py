"""collectors.hdr.Histogram against the reference HdrHistogram implementation (hdrh)."""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from collectors.hdr import Histogram, HistogramDecodeError

PERCENTS = (0.0, 1.0, 25.0, 50.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0)


def _reference(values_us: np.ndarray) -> HdrHistogram:
    hist = HdrHistogram(1, 3_600_000_000, 3)
    for value in values_us:
        hist.record_value(int(value))
    return hist


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_figures_equal_hdrhistogram(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = np.maximum(1, rng.lognormal(np.log(20_000), 1.5, 3_000)).astype(np.int64)
    reference = _reference(values)
    ours = Histogram.from_values_us(values)
    for percent in PERCENTS:
        assert ours.percentile(percent) * 1000 == reference.get_value_at_percentile(percent)
    assert ours.max_ms * 1000 == reference.get_max_value()
    assert ours.min_ms * 1000 == reference.get_min_value()
    assert ours.mean_ms * 1000 == pytest.approx(reference.get_mean_value(), rel=1e-12)
    assert ours.total == reference.get_total_count() == values.size


def test_decode_of_hdrh_encoding_and_back() -> None:
    rng = np.random.default_rng(7)
    reference = _reference(rng.integers(1, 5_000_000, 500))
    ours = Histogram.decode(reference.encode())
    assert ours == Histogram.from_hdr(reference)
    again = HdrHistogram.decode(ours.encode())
    assert again.get_total_count() == reference.get_total_count()
    for percent in PERCENTS:
        assert again.get_value_at_percentile(percent) == reference.get_value_at_percentile(percent)


def test_merge_is_lossless() -> None:
    rng = np.random.default_rng(11)
    parts = [rng.integers(100, 2_000_000, size) for size in (10, 300, 1, 4_000)]
    merged = Histogram.merge(Histogram.decode(Histogram.from_values_us(p).encode()) for p in parts)
    assert merged == Histogram.from_values_us(np.concatenate(parts))
    assert (Histogram.from_values_us(parts[0]) + Histogram.from_values_us(parts[1])).total == 310


def test_quantile_is_percentile_over_hundred() -> None:
    hist = Histogram.from_values_ms(np.arange(1, 1001, dtype=float))
    assert hist.quantile(0.999) == hist.percentile(99.9)
    assert hist.quantiles([0.5, 0.95]) == {0.5: hist.percentile(50), 0.95: hist.percentile(95)}
    assert hist.percentile(50) == pytest.approx(500, rel=1e-3)


def test_fraction_within_threshold() -> None:
    values = np.array([10.0] * 90 + [150.0] * 10)
    hist = Histogram.from_values_ms(values)
    assert hist.fraction_at_or_below(100) == pytest.approx(0.9)
    assert hist.count_at_or_below(5) == 0
    assert Histogram().fraction_at_or_below(100) == 1.0


def test_empty_histogram() -> None:
    empty = Histogram()
    assert empty.total == 0 and empty.percentile(99) == 0.0 and empty.max_ms == 0.0
    assert Histogram.decode(empty.encode()) == empty
    assert HdrHistogram.decode(empty.encode()).get_total_count() == 0


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not base64 at all!", "not base64"),
        ("QUJD", "too short"),
        (Histogram.from_values_us([5, 6]).encode()[:-8], "truncated"),
    ],
)
def test_decode_errors_say_why(text: str, reason: str) -> None:
    with pytest.raises(HistogramDecodeError, match=reason):
        Histogram.decode(text)


def test_other_layout_is_refused() -> None:
    other = HdrHistogram(1, 60_000_000, 2)
    other.record_value(1000)
    with pytest.raises(HistogramDecodeError, match="layout"):
        Histogram.decode(other.encode())
    smaller = HdrHistogram(1, 60_000_000, 3)  # same buckets, shorter range: compatible
    smaller.record_value(1000)
    assert Histogram.decode(smaller.encode()).total == 1


def test_batch_decoding_equals_one_by_one() -> None:
    from collectors.hdrbatch import BatchDecodeError, decode_batch

    rng = np.random.default_rng(5)
    hists = [Histogram.from_values_ms(rng.lognormal(np.log(30), 1.0, int(rng.integers(0, 300))))
             for _ in range(120)]
    odd = np.zeros(3000, dtype=np.int64)
    odd[::2], odd[5], odd[7], odd[9] = 1, 0, 200, 70_000  # single zeros, multi-byte counts
    hists += [Histogram(odd), Histogram(np.array([0, 2**60, 3], dtype=np.int64)), Histogram()]
    hists[3] = Histogram(hists[3].counts + np.where(hists[3].counts > 0, 2**40 + 7, 0))
    batch = decode_batch([h.encode() for h in hists])
    for position, hist in enumerate(hists):
        selected = np.zeros(len(hists), dtype=bool)
        selected[position] = True
        assert batch.merged(selected) == hist
    assert batch.merged() == Histogram.merge(hists)
    groups = np.arange(len(hists)) % 4 - 1  # group -1 is left out
    merged = batch.merged_by_group(groups, 3)
    for group in range(3):
        assert merged[group] == Histogram.merge(
            h for h, g in zip(hists, groups, strict=True) if g == group)
    texts = [h.encode() for h in hists[:5]]
    texts[2] = texts[2][:-6]
    with pytest.raises(BatchDecodeError) as caught:
        decode_batch(texts)
    assert caught.value.position == 2
