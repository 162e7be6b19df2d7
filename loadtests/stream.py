"""The Locust master's live output: JSON lines that `pitchey run` reads as they are written.

The master (a gevent process) never touches the run directory; it appends one JSON object
per line to a stream file, and the orchestrator (a plain process that also scrapes the
service) turns the lines into `collectors.rundir.RunWriter` calls and progress output. Each
line has a "k" (kind):

    hist      t, interval_s, region, endpoint, user_class, kind, requests, failures, hist,
              p50_ms, p95_ms, p99_ms, max_ms         one second of one cell (merged)
    load      t, users, rps, failures_per_s           one second of the whole load
    gen       t, worker, region, cpu_percent, lag_ms  load-generator health
    progress  t, elapsed_s, planned_s, users, rps, requests, failures, p95_by_region
    event     t, type, ...                            stage changes, aborts, notes
    whole     region, endpoint, user_class, kind, requests, failures, hist
    final     validity {valid, reasons}, generator {...}, open_model {...}, requests, ...
    end       t, reason

A control file beside the stream (`<stream>.stop`) asks the master to end the run early and
cleanly (Ctrl-C, abort-on-fail).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

__all__ = ["StreamReader", "StreamWriter", "stop_file", "request_stop", "stop_requested"]


def stop_file(stream: Path | str) -> Path:
    return Path(f"{stream}.stop")


def request_stop(stream: Path | str, reason: str) -> None:
    stop_file(stream).write_text(reason + "\n", encoding="utf-8")


def stop_requested(stream: Path | str) -> str | None:
    """The reason written by `request_stop`, or None."""
    try:
        return stop_file(stream).read_text(encoding="utf-8").strip() or "stop requested"
    except OSError:
        return None


class StreamWriter:
    """Appends lines and flushes after each batch, so a reader sees whole seconds."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._handle: IO[str] | None = self.path.open("a", encoding="utf-8")

    def write(self, kind: str, **fields: Any) -> None:
        self.write_many([{"k": kind, **fields}])

    def write_many(self, items: list[dict[str, Any]]) -> None:
        if self._handle is None or not items:
            return
        self._handle.write("".join(json.dumps(i, separators=(",", ":")) + "\n" for i in items))
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None


class StreamReader:
    """Reads complete lines appended since the previous call (a partial last line waits)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""
        self.bad_lines = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        items = []
        for line in lines:
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(item, dict):
                items.append(item)
        return items
