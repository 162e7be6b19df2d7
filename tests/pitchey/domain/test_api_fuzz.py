"""A property-based fuzz of the whole API from its own /openapi.json (schemathesis).

Every documented operation gets a bounded number of generated requests, valid ones and ones
that break the document's rules, once without a session and once signed in as the demo
creator (cookie), against the real app on a seeded SQLite database. A response fails when it
is a 5xx, has a status or a content type the document does not list for the operation, has
a body that does not match the documented schema, misses a documented header, or accepts
(2xx) a request the document says is invalid.

Deterministic: Hypothesis is derandomized (its seed comes from the test function) and keeps
no example database, so CI sees the same requests every run. The server runs on its own
event loop in a thread because schemathesis' client (requests) is synchronous.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from tests.pitchey.domain.conftest import DEMO, PASSWORD, fast_settings, start_api

# Per operation, per generation mode, per session: ~30 operations x 2 x 2 runs in all, about
# 20 s on a 2-core machine. Fewer than ~30 missed `?status=` being accepted on /api/pitches.
EXAMPLES = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@dataclass
class Served:
    base_url: str
    document: dict[str, Any]
    # session cookies of the demo creator, minted before any fuzzing: the fuzz's own failed
    # sign-ins soon throttle logins from this address, and logout/refresh end a session
    cookies: list[str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The real app on a seeded SQLite database, served from a thread's own event loop."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    loop = asyncio.new_event_loop()
    api, cache = loop.run_until_complete(start_api(fast_settings(tmp), "sqlite-memory"))
    thread = threading.Thread(target=loop.run_forever, name="fuzz-server", daemon=True)
    thread.start()
    base_url = str(api.client.make_url("")).rstrip("/")
    try:
        document = requests.get(f"{base_url}/openapi.json", timeout=10).json()
        operations = sum(len(item) for item in document["paths"].values())
        cookies = [_sign_in(base_url) for _ in range(len(MODES) * operations)]
        yield Served(base_url, document, cookies)
    finally:
        async def close() -> None:
            await api.client.close()
            await cache.close()

        asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def _sign_in(base_url: str) -> str:
    response = requests.post(
        f"{base_url}/api/auth/creator/login",
        json={"email": DEMO["creator"], "password": PASSWORD}, timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.cookies["pitchey_session"])


def _fuzz_operation(
    operation: Any, mode: GenerationMode, base_url: str, session: requests.Session
) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the case is reported as is
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, session=session, checks=CHECKS, timeout=10)

    run()


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "creator-cookie"])
def test_the_api_keeps_to_its_document(served: Served, signed_in: bool) -> None:
    # an explicit config: no schemathesis.toml found on disk can change what runs
    schema = schemathesis.openapi.from_dict(served.document, config=SchemathesisConfig())
    # anonymous runs send generated cookies and bearer tokens (the auth parsing is fuzzed too);
    # signed-in runs keep the creator's cookie instead of generated credentials
    schema.config.generation.update(with_security_parameters=not signed_in)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        documented = served.document["paths"][operation.path][operation.method.lower()]
        breakable = "parameters" in documented or "requestBody" in documented
        # an operation without inputs has no invalid request to generate
        for mode in MODES if breakable else MODES[:1]:
            # a session of its own per run: logout and refresh end the previous one
            session = requests.Session()
            if signed_in:
                session.cookies.set("pitchey_session", served.cookies.pop())
            try:
                _fuzz_operation(operation, mode, served.base_url, session)
            except Exception as exc:  # collect every operation's failure, then report all
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
            finally:
                session.close()
    assert operations >= 25, "the document lost its operations"
    assert not failures, "\n\n".join(failures)
