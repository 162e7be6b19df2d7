"""A decoded copy of histograms/intervals.jsonl, so time-window queries need no decoding.

`finish()` decodes every interval histogram anyway (to merge the whole-run ones), and writes
the result beside the JSON lines as two Parquet files:

- `histograms/intervals.index.parquet`: one row per interval histogram, in file order
  (t, interval_s, key_id); the keys (region, endpoint, user_class, kind) in the schema
  metadata `keys` as JSON, the byte size of intervals.jsonl it was made from in `source_size`;
- `histograms/intervals.buckets.parquet`: the non-zero buckets (hist = row number, bucket =
  HdrHistogram counts index, count).

intervals.jsonl stays the source of truth: a reader uses the copy only when `source_size`
matches, and falls back to decoding the JSON lines when the copy is missing or unreadable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from collectors.hdrbatch import SparseBatch

__all__ = ["INDEX_NAME", "BUCKETS_NAME", "IntervalIndex", "read_index", "write_index"]

INDEX_NAME = "intervals.index.parquet"
BUCKETS_NAME = "intervals.buckets.parquet"
HistogramKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class IntervalIndex:
    """Interval histograms' times and keys, one entry per histogram in file order."""

    t: npt.NDArray[np.float64]
    interval_s: npt.NDArray[np.float64]
    key_id: npt.NDArray[np.int64]
    keys: list[HistogramKey]


def write_index(intervals_path: Path, index: IntervalIndex, batch: SparseBatch) -> None:
    metadata = {b"keys": json.dumps(index.keys).encode(),
                b"source_size": str(intervals_path.stat().st_size).encode()}
    rows = pa.table({"t": index.t, "interval_s": index.interval_s,
                     "key_id": index.key_id.astype(np.int32)}).replace_schema_metadata(metadata)
    buckets = pa.table({"hist": batch.hist.astype(np.int32),
                        "bucket": batch.index.astype(np.int32), "count": batch.count})
    for table, name in ((buckets, BUCKETS_NAME), (rows, INDEX_NAME)):
        final = intervals_path.with_name(name)
        tmp = final.with_name(f".{name}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, final)


def read_index(intervals_path: Path) -> tuple[IntervalIndex, SparseBatch] | None:
    """The decoded copy, or None when it is missing, stale or unreadable."""
    index_path = intervals_path.with_name(INDEX_NAME)
    buckets_path = intervals_path.with_name(BUCKETS_NAME)
    if not (index_path.exists() and buckets_path.exists() and intervals_path.exists()):
        return None
    try:
        rows = pq.read_table(index_path)
        metadata = rows.schema.metadata or {}
        if int(metadata[b"source_size"]) != intervals_path.stat().st_size:
            return None
        keys = [tuple(key) for key in json.loads(metadata[b"keys"])]
        buckets = pq.read_table(buckets_path)
        index = IntervalIndex(
            t=rows.column("t").to_numpy().astype(np.float64),
            interval_s=rows.column("interval_s").to_numpy().astype(np.float64),
            key_id=rows.column("key_id").to_numpy().astype(np.int64),
            keys=[(str(k[0]), str(k[1]), str(k[2]), str(k[3])) for k in keys],
        )
        batch = SparseBatch(
            rows.num_rows,
            buckets.column("hist").to_numpy().astype(np.int64),
            buckets.column("bucket").to_numpy().astype(np.int64),
            buckets.column("count").to_numpy().astype(np.int64),
        )
    except (OSError, pa.ArrowException, KeyError, ValueError, TypeError, IndexError):
        return None
    if index.key_id.size and int(index.key_id.max()) >= len(index.keys):
        return None
    return index, batch
