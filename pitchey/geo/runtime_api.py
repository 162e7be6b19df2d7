"""A client for HAProxy's runtime API (the `stats socket` of the generated configuration).

One command per connection, as `socat` sends them: `show stat` (CSV, one row per frontend,
backend and server), `show info`, and `set server BACKEND/SERVER state ready|drain|maint`,
which is how an operator takes a region out of rotation.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import dataclass

__all__ = ["RuntimeApi", "RuntimeApiError", "ServerStat", "SERVER_STATES", "parse_stat",
           "parse_info"]

SERVER_STATES = ("ready", "drain", "maint")
_TOKEN = re.compile(r"[A-Za-z0-9_.:-]+")
_READ_LIMIT = 4 * 1024 * 1024


class RuntimeApiError(RuntimeError):
    """HAProxy refused a command or its socket cannot be reached."""


@dataclass(frozen=True)
class ServerStat:
    """One server row of `show stat` (the columns the edge reports)."""

    backend: str
    server: str
    status: str  # UP, DOWN, "UP 1/3" (going down), "DOWN 1/2" (going up), MAINT, DRAIN, NOLB
    check_status: str
    weight: int
    backup: bool
    in_flight: int
    queued: int
    total: int
    connect_errors: int
    response_errors: int
    retries: int
    redispatches: int
    check_failures: int
    downs: int
    last_change_s: int
    responses: dict[str, int]


def _int(row: dict[str, str], key: str) -> int:
    value = row.get(key) or ""
    return int(value) if value.lstrip("-").isdigit() else 0


def parse_stat(text: str) -> list[ServerStat]:
    """The server rows of `show stat` output (frontends and backend totals left out)."""
    lines = text.lstrip("# ").splitlines()
    rows = csv.DictReader(io.StringIO("\n".join(line for line in lines if line.strip())))
    servers = []
    for row in rows:
        if row.get("type") != "2":  # 0 frontend, 1 backend, 2 server, 3 listener
            continue
        servers.append(ServerStat(
            backend=row["pxname"], server=row["svname"], status=row.get("status", ""),
            check_status=row.get("check_status", ""), weight=_int(row, "weight"),
            backup=row.get("bck") == "1", in_flight=_int(row, "scur"),
            queued=_int(row, "qcur"), total=_int(row, "stot"),
            connect_errors=_int(row, "econ"), response_errors=_int(row, "eresp"),
            retries=_int(row, "wretr"), redispatches=_int(row, "wredis"),
            check_failures=_int(row, "chkfail"), downs=_int(row, "chkdown"),
            last_change_s=_int(row, "lastchg"),
            responses={code: _int(row, f"hrsp_{code}")
                       for code in ("1xx", "2xx", "3xx", "4xx", "5xx", "other")},
        ))
    return servers


def parse_info(text: str) -> dict[str, str]:
    """`show info`: "Name: value" lines."""
    info = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            info[name.strip()] = value.strip()
    return info


class RuntimeApi:
    def __init__(self, socket_path: str, *, timeout_s: float = 5.0) -> None:
        self.socket_path = socket_path
        self._timeout_s = timeout_s

    async def command(self, line: str) -> str:
        if "\n" in line or ";" in line:
            raise RuntimeApiError("one command at a time")
        try:
            async with asyncio.timeout(self._timeout_s):
                reader, writer = await asyncio.open_unix_connection(self.socket_path,
                                                                    limit=_READ_LIMIT)
                try:
                    writer.write(line.encode() + b"\n")
                    await writer.drain()
                    data = await reader.read(-1)
                finally:
                    writer.close()
        except (OSError, TimeoutError) as exc:
            raise RuntimeApiError(f"HAProxy's runtime API at {self.socket_path}: "
                                  f"{exc.strerror if isinstance(exc, OSError) else 'timeout'}"
                                  ) from None
        return data.decode("utf-8", "replace")

    async def servers(self) -> list[ServerStat]:
        return parse_stat(await self.command("show stat"))

    async def info(self) -> dict[str, str]:
        return parse_info(await self.command("show info"))

    async def set_state(self, backend: str, server: str, state: str) -> None:
        if state not in SERVER_STATES:
            raise RuntimeApiError(f"state must be one of {', '.join(SERVER_STATES)}")
        if not (_TOKEN.fullmatch(backend) and _TOKEN.fullmatch(server)):
            raise RuntimeApiError("backend and server must be plain names")
        answer = (await self.command(f"set server {backend}/{server} state {state}")).strip()
        if answer:  # silence means done; anything else is HAProxy's refusal
            raise RuntimeApiError(answer)
