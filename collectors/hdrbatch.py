"""Decoding many HDR histograms at once into one sparse (histogram, bucket, count) table.

An hour-long run holds tens of thousands of interval histograms; decoding them one by one
into dense 23,552-bucket arrays costs far more than the data is worth. Here each text is
only base64-decoded and inflated (C code), and the ZigZag-LEB128 varints of all payloads are
decoded together with numpy (HdrHistogram's V2 encoding: a positive value is the count of the
current bucket, a negative one skips that many empty buckets). A histogram that does not fit
the fast path (a count needing more than 56 bits) is decoded by the reference codec instead.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from collectors.hdr import COUNTS_LEN, Histogram, HistogramDecodeError, _check_layout

__all__ = ["BatchDecodeError", "SparseBatch", "check_encoded", "decode_batch"]

_EXT = struct.Struct(">II")
_PAYLOAD = struct.Struct(">IIIIQQd")
_COMPRESSION_BASE = 0x1C849304
_ENCODING_BASE = 0x1C849303
Int64s = npt.NDArray[np.int64]


class BatchDecodeError(HistogramDecodeError):
    """One text of a batch is bad; `position` is its index in the batch."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason


@dataclass(frozen=True)
class SparseBatch:
    """Non-zero buckets of a batch: entry i is `count[i]` in bucket `index[i]` of histogram
    `hist[i]` (entries are grouped by histogram, in batch order)."""

    size: int  # number of histograms in the batch
    hist: Int64s
    index: Int64s
    count: Int64s

    def merged(self, selected: npt.NDArray[np.bool_] | None = None) -> Histogram:
        """One histogram of the selected histograms (a boolean mask over the batch)."""
        if selected is None:
            return _bincount(self.index, self.count)
        keep = selected[self.hist]
        return _bincount(self.index[keep], self.count[keep])

    def merged_by_group(self, group_of_hist: Int64s, groups: int) -> list[Histogram]:
        """One histogram per group id (0 .. groups-1; -1 leaves a histogram out)."""
        group = group_of_hist[self.hist]
        keep = group >= 0
        group, index, count = group[keep], self.index[keep], self.count[keep]
        order = np.argsort(group, kind="stable")
        group, index, count = group[order], index[order], count[order]
        bounds = np.searchsorted(group, np.arange(groups + 1))
        return [_bincount(index[lo:hi], count[lo:hi])
                for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]


def _bincount(index: Int64s, count: Int64s) -> Histogram:
    if not index.size:
        return Histogram()
    if int(count.sum()) < 2**53:  # float64 weights are exact below 2**53
        return Histogram(np.rint(np.bincount(index, weights=count)).astype(np.int64))
    merged = np.zeros(int(index.max()) + 1, dtype=np.int64)
    np.add.at(merged, index, count)
    return Histogram(merged)


def decode_batch(texts: Sequence[str | bytes]) -> SparseBatch:
    """Decode every text; a bad one raises BatchDecodeError naming its position."""
    payloads = [_payload(position, text) for position, text in enumerate(texts)]
    lengths = np.fromiter((len(p) for p in payloads), np.int64, len(payloads))
    ends = np.cumsum(lengths)
    data = np.frombuffer(b"".join(payloads), dtype=np.uint8)
    filled = np.flatnonzero(lengths > 0)
    torn = filled[(data[ends[filled] - 1] & 0x80) != 0]
    if torn.size:
        raise BatchDecodeError(int(torn[0]), "corrupt counts (a varint runs past the end)")
    if not data.size:
        empty = np.zeros(0, dtype=np.int64)
        return SparseBatch(len(texts), empty, empty, empty)
    terminal = (data & 0x80) == 0
    last = np.flatnonzero(terminal)
    starts = np.empty_like(last)
    starts[0] = 0
    starts[1:] = last[:-1] + 1
    widths = last - starts + 1
    per_hist = np.diff(np.searchsorted(last, ends), prepend=0)  # varints in each payload
    hist_of_value = np.repeat(np.arange(len(texts), dtype=np.int64), per_hist)
    slow = np.unique(hist_of_value[widths > 8])  # > 56 bits: let the reference codec do it
    values = _varints(data, starts, widths)
    batch = _expand(len(texts), hist_of_value, values)
    if slow.size:
        batch = _replace_slow(batch, texts, slow)
    if batch.index.size and int(batch.index.max()) >= COUNTS_LEN:
        position = int(batch.hist[np.argmax(batch.index)])
        raise BatchDecodeError(position, "corrupt counts (bucket beyond the histogram's range)")
    return batch


def check_encoded(text: str | bytes) -> None:
    """Check the wire format (base64, headers, compression, layout) without decoding counts;
    raises BatchDecodeError with the reason."""
    _payload(0, text)


def _payload(position: int, text: str | bytes) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BatchDecodeError(position, f"not base64 ({exc})") from None
    if len(raw) < _EXT.size:
        raise BatchDecodeError(position, "too short to be an HdrHistogram")
    cookie, length = _EXT.unpack_from(raw)
    if cookie & ~0xF0 != _COMPRESSION_BASE:
        raise BatchDecodeError(position, f"not a compressed HdrHistogram (cookie {cookie:#x})")
    if length != len(raw) - _EXT.size:
        raise BatchDecodeError(position, "truncated HdrHistogram (length mismatch)")
    try:
        data = zlib.decompress(raw[_EXT.size:])
    except zlib.error as exc:
        raise BatchDecodeError(position, f"corrupt compressed payload ({exc})") from None
    if len(data) < _PAYLOAD.size:
        raise BatchDecodeError(position, "payload shorter than its header")
    cookie, payload_len, offset, figures, lowest, highest, _ = _PAYLOAD.unpack_from(data)
    if cookie & ~0xF0 != _ENCODING_BASE:
        raise BatchDecodeError(position, f"bad payload cookie {cookie:#x}")
    if payload_len != len(data) - _PAYLOAD.size:
        raise BatchDecodeError(position, "payload length mismatch")
    if offset != 0:
        raise BatchDecodeError(position, "normalizing index offsets are not supported")
    try:
        _check_layout(lowest, figures, highest)
    except HistogramDecodeError as exc:
        raise BatchDecodeError(position, str(exc)) from None
    return data[_PAYLOAD.size:]


def _varints(data: npt.NDArray[np.uint8], starts: Int64s, widths: Int64s) -> Int64s:
    """ZigZag LEB128 values of at most 8 bytes each (wider ones come out wrong; replaced).

    Almost every value is one byte (a count below 64), so those are read directly and only
    the few wider ones are assembled, 7 bits per byte.
    """
    raw = data[starts].astype(np.int64) & 0x7F
    wide = np.flatnonzero(widths > 1)
    for byte in range(1, 8):
        wide = wide[widths[wide] > byte]
        if not wide.size:
            break
        raw[wide] |= (data[starts[wide] + byte].astype(np.int64) & 0x7F) << (7 * byte)
    decoded: Int64s = (raw >> 1) ^ -(raw & 1)
    return decoded


def _expand(size: int, hist_of_value: Int64s, values: Int64s) -> SparseBatch:
    step = np.where(values < 0, -values, 1)
    position = np.cumsum(step)
    position -= step
    first = np.searchsorted(hist_of_value, np.arange(size))
    has_values = first < hist_of_value.size
    base = np.zeros(size, dtype=np.int64)
    base[has_values] = position[first[has_values]]
    index = position - base[hist_of_value]
    keep = values > 0
    return SparseBatch(size, hist_of_value[keep], index[keep], values[keep])


def _replace_slow(batch: SparseBatch, texts: Sequence[str | bytes], slow: Int64s) -> SparseBatch:
    keep = ~np.isin(batch.hist, slow)
    hists, indexes, counts = [batch.hist[keep]], [batch.index[keep]], [batch.count[keep]]
    for position in slow:
        counts_of = Histogram.decode(texts[int(position)]).counts
        nonzero = np.flatnonzero(counts_of)
        hists.append(np.full(nonzero.size, position, dtype=np.int64))
        indexes.append(nonzero.astype(np.int64))
        counts.append(counts_of[nonzero].astype(np.int64))
    hist = np.concatenate(hists)
    order = np.argsort(hist, kind="stable")
    return SparseBatch(batch.size, hist[order], np.concatenate(indexes)[order],
                       np.concatenate(counts)[order])
