"""HDR latency histograms as numpy count arrays: decode, merge, encode, percentiles.

The run directory stores histograms in HdrHistogram's standard compressed wire format (what
`hdrh.histogram.HdrHistogram.encode()` produces), values in microseconds, layout
HdrHistogram(1, 3_600_000_000, 3). Decoding straight into a numpy array (the `pyhdrh` C codec
shipped with `hdrhistogram`, without building a Python HdrHistogram object) and merging by
array addition is what makes percentiles over thousands of interval histograms cheap. The
percentile, max, min and mean definitions are HdrHistogram's own, so a figure computed here
equals the one `HdrHistogram.get_value_at_percentile` gives for the same data.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyhdrh  # C codec of the hdrhistogram package

from collectors._format import HDR_HIGHEST_US, HDR_LOWEST_US, HDR_SIGNIFICANT_FIGURES

__all__ = ["Histogram", "HistogramDecodeError", "COUNTS_LEN"]

Counts = npt.NDArray[np.int64]

# Layout of HdrHistogram(1, 3_600_000_000, 3) (see HdrHistogram.__init__).
_UNIT_MAGNITUDE = 0  # floor(log2(lowest=1))
_HALF_MAGNITUDE = 10  # ceil(log2(2 * 10**3)) - 1
_HALF_COUNT = 1 << _HALF_MAGNITUDE
_SUB_BUCKET_MASK = ((2 * _HALF_COUNT) - 1) << _UNIT_MAGNITUDE


def _bucket_count(highest: int) -> int:
    smallest_untrackable = (2 * _HALF_COUNT) << _UNIT_MAGNITUDE
    count = 1
    while smallest_untrackable <= highest:
        smallest_untrackable <<= 1
        count += 1
    return count


COUNTS_LEN = (_bucket_count(HDR_HIGHEST_US) + 1) * _HALF_COUNT


def _index_tables() -> tuple[Counts, Counts, Counts]:
    index = np.arange(COUNTS_LEN, dtype=np.int64)
    bucket = (index >> _HALF_MAGNITUDE) - 1
    sub = (index & (_HALF_COUNT - 1)) + _HALF_COUNT
    first = bucket < 0
    sub[first] -= _HALF_COUNT
    bucket[first] = 0
    lowest = sub << (bucket + _UNIT_MAGNITUDE)
    width = np.left_shift(1, _UNIT_MAGNITUDE + bucket)
    return lowest, lowest + width - 1, lowest + (width >> 1)


# Per counts index: lowest, highest and median equivalent value (µs), as HdrHistogram defines them.
_LOWEST, _HIGHEST, _MEDIAN = _index_tables()
_MEDIAN_FLOAT = _MEDIAN.astype(np.float64)

_EXT_HEADER = struct.Struct(">II")
_PAYLOAD_HEADER = struct.Struct(">IIIIQQd")
_ENCODING_COOKIE = 0x1C849303 | 0x10
_COMPRESSION_COOKIE = 0x1C849304 | 0x10


class HistogramDecodeError(ValueError):
    """The text is not an HdrHistogram in the run directory's layout."""


def _counts_index(values_us: npt.NDArray[np.int64]) -> Counts:
    bit_length = np.frexp((values_us | _SUB_BUCKET_MASK).astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - _UNIT_MAGNITUDE - (_HALF_MAGNITUDE + 1)
    sub = values_us >> (bucket + _UNIT_MAGNITUDE)
    result: Counts = ((bucket + 1) << _HALF_MAGNITUDE) + (sub - _HALF_COUNT)
    return result


class Histogram:
    """An immutable latency histogram; values in, percentiles out in milliseconds."""

    __slots__ = ("_counts", "_cumulative")

    def __init__(self, counts: Counts | None = None) -> None:
        if counts is None:
            counts = np.zeros(0, dtype=np.int64)
        nonzero = np.flatnonzero(counts)
        self._counts: Counts = counts[: nonzero[-1] + 1] if nonzero.size else counts[:0]
        self._cumulative: Counts | None = None

    @classmethod
    def _wrap(cls, trimmed: Counts) -> Histogram:
        """Adopt counts already trimmed after their last non-zero entry (no scan)."""
        hist = cls.__new__(cls)
        hist._counts = trimmed
        hist._cumulative = None
        return hist

    # construction ----------------------------------------------------------------------------
    @classmethod
    def from_values_us(cls, values_us: Iterable[int] | npt.ArrayLike) -> Histogram:
        """Record integer microsecond values (clipped into 1 µs .. 1 h)."""
        values = np.clip(np.asarray(values_us, dtype=np.int64), HDR_LOWEST_US, HDR_HIGHEST_US)
        if values.size == 0:
            return cls()
        counts = np.bincount(_counts_index(values), minlength=1).astype(np.int64)
        return cls(counts)

    @classmethod
    def from_values_ms(cls, values_ms: Iterable[float] | npt.ArrayLike) -> Histogram:
        """Record millisecond values (rounded to whole microseconds)."""
        values = np.asarray(values_ms, dtype=np.float64)
        return cls.from_values_us(np.rint(values * 1000.0).astype(np.int64))

    @classmethod
    def decode(cls, encoded: str | bytes) -> Histogram:
        """Decode `HdrHistogram.encode()` output; raises HistogramDecodeError with the reason."""
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise HistogramDecodeError(f"not base64 ({exc})") from None
        if len(raw) < _EXT_HEADER.size:
            raise HistogramDecodeError("too short to be an HdrHistogram")
        cookie, length = _EXT_HEADER.unpack_from(raw)
        if cookie & ~0xF0 != _COMPRESSION_COOKIE & ~0xF0:
            raise HistogramDecodeError(f"not a compressed HdrHistogram (cookie {cookie:#x})")
        if length != len(raw) - _EXT_HEADER.size:
            raise HistogramDecodeError("truncated HdrHistogram (length mismatch)")
        try:
            data = zlib.decompress(raw[_EXT_HEADER.size:])
        except zlib.error as exc:
            raise HistogramDecodeError(f"corrupt compressed payload ({exc})") from None
        return cls._wrap(_decode_payload(data))

    @classmethod
    def from_hdr(cls, hist: Any) -> Histogram:
        """Copy the counts of an `hdrh.histogram.HdrHistogram` (must use the format's layout)."""
        _check_layout(hist.lowest_trackable_value, hist.significant_figures,
                      hist.highest_trackable_value)
        counts = np.ctypeslib.as_array(hist.counts).astype(np.int64, copy=True)
        return cls(counts)

    @classmethod
    def coerce(cls, hist: Histogram | str | bytes | Any) -> Histogram:
        """Accept a Histogram, an encoded histogram (str/bytes) or an HdrHistogram object."""
        if isinstance(hist, Histogram):
            return hist
        if isinstance(hist, str | bytes):
            return cls.decode(hist)
        if hasattr(hist, "counts") and hasattr(hist, "significant_figures"):
            return cls.from_hdr(hist)
        raise TypeError(f"expected a Histogram, HdrHistogram or encoded text, got {type(hist)}")

    @classmethod
    def merge(cls, histograms: Iterable[Histogram]) -> Histogram:
        """Lossless merge: counts are added bucket by bucket."""
        parts = [h._counts for h in histograms if h._counts.size]
        if not parts:
            return cls()
        total = np.zeros(max(p.size for p in parts), dtype=np.int64)
        for part in parts:
            total[: part.size] += part
        return cls(total)

    def __add__(self, other: Histogram) -> Histogram:
        return Histogram.merge((self, other))

    # figures ---------------------------------------------------------------------------------
    @property
    def counts(self) -> Counts:
        """Counts per HdrHistogram bucket index (read-only view, trailing zeros trimmed)."""
        view = self._counts.view()
        view.flags.writeable = False
        return view

    @property
    def total(self) -> int:
        return int(self._cumulative_counts()[-1]) if self._counts.size else 0

    def __len__(self) -> int:
        return self.total

    def percentile(self, percent: float) -> float:
        """Value at `percent` (0..100) in ms; 0.0 when empty. HdrHistogram's definition."""
        total = self.total
        if total == 0:
            return 0.0
        target = max(int((min(percent, 100.0) * total / 100) + 0.5), 1)
        index = int(np.searchsorted(self._cumulative_counts(), target, side="left"))
        value = _HIGHEST[index] if percent else _LOWEST[index]
        return float(value) / 1000.0

    def quantile(self, q: float) -> float:
        """Value at quantile `q` (0..1) in ms, e.g. quantile(0.95) is p95."""
        return self.percentile(round(q * 100.0, 9))

    def quantiles(self, qs: Sequence[float]) -> dict[float, float]:
        return {q: self.quantile(q) for q in qs}

    @property
    def max_ms(self) -> float:
        if not self._counts.size:
            return 0.0
        return float(_HIGHEST[self._counts.size - 1]) / 1000.0

    @property
    def min_ms(self) -> float:
        nonzero = np.flatnonzero(self._counts)
        return float(_LOWEST[nonzero[0]]) / 1000.0 if nonzero.size else 0.0

    @property
    def mean_ms(self) -> float:
        total = self.total
        if total == 0:
            return 0.0
        weighted = float(np.dot(self._counts.astype(np.float64),
                                _MEDIAN_FLOAT[: self._counts.size]))
        return weighted / total / 1000.0

    def count_at_or_below(self, ms: float) -> int:
        """Requests whose bucket starts at or below `ms` (within HDR's 0.1% resolution)."""
        if not self._counts.size:
            return 0
        limit = int(np.searchsorted(_LOWEST[: self._counts.size], ms * 1000.0, side="right"))
        return int(self._cumulative_counts()[limit - 1]) if limit else 0

    def fraction_at_or_below(self, ms: float) -> float:
        """Share of requests answered within `ms` (1.0 for an empty histogram)."""
        total = self.total
        return self.count_at_or_below(ms) / total if total else 1.0

    def buckets_ms(self) -> tuple[npt.NDArray[np.float64], Counts]:
        """(lowest value in ms, count) of every non-empty bucket, ascending."""
        nonzero = np.flatnonzero(self._counts)
        return _LOWEST[nonzero] / 1000.0, self._counts[nonzero]

    # encoding --------------------------------------------------------------------------------
    def encode(self) -> str:
        """HdrHistogram's compressed base64 text; `HdrHistogram.decode()` reads it back."""
        counts = np.ascontiguousarray(self._counts, dtype=np.uint64)
        limit = counts.size
        buffer = np.zeros(max(limit * 9, 1), dtype=np.uint8)
        length = pyhdrh.encode(counts.ctypes.data, limit, 8, buffer.ctypes.data, buffer.size)
        header = _PAYLOAD_HEADER.pack(
            _ENCODING_COOKIE, length, 0, HDR_SIGNIFICANT_FIGURES, HDR_LOWEST_US, HDR_HIGHEST_US,
            1.0,
        )
        compressed = zlib.compress(header + buffer[:length].tobytes())
        wire = _EXT_HEADER.pack(_COMPRESSION_COOKIE, len(compressed)) + compressed
        return base64.b64encode(wire).decode("ascii")

    def to_hdr(self) -> Any:
        """A new `hdrh.histogram.HdrHistogram` holding the same counts."""
        from hdrh.histogram import HdrHistogram

        return HdrHistogram.decode(self.encode())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Histogram) and np.array_equal(self._counts, other._counts)

    def __hash__(self) -> int:
        return hash(self._counts.tobytes())

    def __repr__(self) -> str:
        return f"Histogram(total={self.total}, p50={self.quantile(0.5)}ms, max={self.max_ms}ms)"

    def _cumulative_counts(self) -> Counts:
        if self._cumulative is None:
            self._cumulative = np.cumsum(self._counts)
        return self._cumulative


def _check_layout(lowest: int, significant_figures: int, highest: int) -> None:
    if (lowest, significant_figures) != (HDR_LOWEST_US, HDR_SIGNIFICANT_FIGURES) or not (
        2 * lowest <= highest <= HDR_HIGHEST_US
    ):
        raise HistogramDecodeError(
            f"histogram layout ({lowest}, {highest}, {significant_figures}) is not the format's "
            f"HdrHistogram({HDR_LOWEST_US}, {HDR_HIGHEST_US}, {HDR_SIGNIFICANT_FIGURES})"
        )


def _decode_payload(data: bytes) -> Counts:
    if len(data) < _PAYLOAD_HEADER.size:
        raise HistogramDecodeError("payload shorter than its header")
    cookie, length, _offset, figures, lowest, highest, _ratio = _PAYLOAD_HEADER.unpack_from(data)
    if cookie & ~0xF0 != _ENCODING_COOKIE & ~0xF0:
        raise HistogramDecodeError(f"bad payload cookie {cookie:#x}")
    if length != len(data) - _PAYLOAD_HEADER.size:
        raise HistogramDecodeError("payload length mismatch")
    _check_layout(lowest, figures, highest)
    counts = np.zeros(COUNTS_LEN, dtype=np.int64)
    try:
        found = pyhdrh.decode(data, _PAYLOAD_HEADER.size, counts.ctypes.data, COUNTS_LEN, 8)
    except (ValueError, IndexError, OverflowError) as exc:
        raise HistogramDecodeError(f"corrupt counts ({exc})") from None
    if not found["total"]:
        return counts[:0]
    # copy, so a cached histogram does not pin the full-length decode buffer
    return counts[: int(found["max_nonzero_index"]) + 1].copy()
