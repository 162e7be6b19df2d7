"""/openapi.json describes every registered route, validly, and nothing else."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from pitchey.openapi import OPERATIONS, undocumented_routes
from pitchey.validation import BUDGET_RANGES, GENRES, TEXT_LIMITS
from tests.pitchey.domain.conftest import Api

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


async def test_every_route_is_in_the_served_document(api: Api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    validate(document)
    registered = {
        (route.method.lower(), _PARAM.sub(r"{\1}", route.resource.canonical))
        for route in api.app.router.routes()
        if route.method not in ("HEAD", "*") and route.resource is not None
    }
    described = {
        (method, path) for path, item in document["paths"].items() for method in item
    }
    assert registered == described
    assert undocumented_routes(api.app) == []
    names = {route.name for route in api.app.router.routes()}
    assert set(OPERATIONS) <= names, "documented operations that no longer exist"
    for path in ("/api/pitches", "/api/pitches/{id}", "/api/auth/investor/login", "/metrics",
                 "/api/health", "/api/dashboard/production/metrics", "/openapi.json"):
        assert path in document["paths"], path


async def test_the_document_states_seed_002_validation(api: Api) -> None:
    document = await (await api.client.get("/openapi.json")).json()
    schema = document["components"]["schemas"]["PitchInput"]
    assert set(schema["required"]) == {"title", "logline", "synopsis", "genre", "budget_range"}
    for name in ("title", "logline", "synopsis"):
        low, high = TEXT_LIMITS[name]
        assert schema["properties"][name]["minLength"] == low
        assert schema["properties"][name]["maxLength"] == high
    assert schema["properties"]["genre"]["enum"] == list(GENRES)
    assert schema["properties"]["budget_range"]["enum"] == list(BUDGET_RANGES)
    create = document["paths"]["/api/pitches"]["post"]
    assert {"201", "401", "403", "422"} <= set(create["responses"])
