"""Errors a client can act on: every one is rendered as a JSON body, never a traceback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

__all__ = ["ApiError", "StorageUnavailable", "json_error", "field_errors"]


class ApiError(Exception):
    """Raised by handlers; the request wrapper (`pitchey.instrumentation`) renders it as
    `{"error": {...}}` with `status`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return json_error(self.status, self.code, self.message, fields=self.fields,
                          headers=self.headers)


class StorageUnavailable(Exception):
    """The database cannot be reached or written; the request answers 503, nothing half-done."""


def field_errors(errors: Mapping[str, str]) -> ApiError:
    """422 naming each invalid field and why."""
    return ApiError(422, "validation_failed", "request body failed validation", fields=errors)


def json_error(
    status: int,
    code: str,
    message: str,
    *,
    fields: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"error": {"status": status, "code": code, "message": message}}
    if fields:
        body["error"]["fields"] = dict(fields)
    return web.json_response(body, status=status, headers=headers)
