"""Service settings: one frozen dataclass read once from an injectable environment mapping."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pitchey.redact import MASK, looks_secret, redact

__all__ = ["Settings", "SettingsError", "redact_url"]

_SECRET_WORDS = ("secret", "password", "token", "key")


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use; the message names it."""


def _int(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be >= {minimum}")
    return value


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use true or false)")


def redact_url(url: str | None) -> str | None:
    """Hide every credential of a URL (see `pitchey.redact.redact`)."""
    return redact(url)


def _positive_float(environ: Mapping[str, str], name: str, default: float) -> float:
    value = _float(environ, name, default)
    if not value > 0:
        raise SettingsError(f"{name}={environ.get(name)!r} must be a number of seconds > 0")
    return value


# RFC 6750's b64token: what an Authorization: Bearer header can carry as it is
_TOKEN_SYNTAX = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_MIN_TOKEN_CHARS = 16


def _admin_token(environ: Mapping[str, str]) -> str | None:
    raw = environ.get("PITCHEY_ADMIN_TOKEN")
    if not raw:
        return None
    # the value itself is never echoed: the message may end up in a log
    if len(raw) < _MIN_TOKEN_CHARS or not _TOKEN_SYNTAX.fullmatch(raw):
        raise SettingsError(
            f"PITCHEY_ADMIN_TOKEN must be at least {_MIN_TOKEN_CHARS} characters of "
            "A-Z a-z 0-9 - . _ ~ + / (optionally ending in =); the value given is not "
            "(not shown)"
        )
    return raw


def _port(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name)
    if raw is None or raw == "":
        return None
    value = _int(environ, name, 0)
    if value > 65535:
        raise SettingsError(f"{name}={raw!r} is not a TCP port (0-65535)")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, with the defaults docs/targets.md
    traces to the Pitchey architecture documents."""

    host: str = "127.0.0.1"
    port: int = 8001
    region: str = "local"
    # storage: a SQLite file unless DATABASE_URL names PostgreSQL
    database_url: str | None = None
    sqlite_path: str = "pitchey.db"
    db_pool_size: int = 10
    # cache: in-process unless REDIS_URL is set
    redis_url: str | None = None
    # public pitches 10 min, dashboards 5 min, sessions 24 h ("Pitchey Platform Deployment
    # Architecture", § Performance Optimization Architecture › Caching Strategy)
    cache_ttl_pitches_s: int = 600
    cache_ttl_dashboard_s: int = 300
    session_ttl_s: int = 24 * 3600
    # absolute: refresh slides the expiry above, never past this long after the sign-in
    session_max_lifetime_s: int = 7 * 24 * 3600
    session_cache_ttl_s: int = 300
    # 100 requests/min per client IP ("Pitchey Platform Deployment Architecture", § Security
    # Architecture › Defense in Depth Strategy); 0 disables
    rate_limit_per_minute: int = 100
    # behind a proxy: the client IP is the right-most X-Forwarded-For entry (the proxy's own)
    trust_forwarded_for: bool = False
    frontend_origin: str = "http://localhost:5173"
    cookie_secure: bool = False
    max_body_bytes: int = 64 * 1024
    # argon2id cost (OWASP minimum profile by default; tests lower it)
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    # tracing, from the standard OTEL_* variables
    otel_service_name: str = "pitchey"
    otel_traces_sampler: str = "parentbased_traceidratio"
    otel_traces_sampler_arg: float = 0.01
    otel_exporter_otlp_endpoint: str | None = None
    otel_spans_file: str | None = None
    # OTEL_EXPORTER_OTLP_HEADERS (read by the exporter itself; kept here to show it redacted)
    otel_exporter_otlp_headers: str | None = None
    # /config and /status: loopback peers without a proxy header, or this bearer token
    admin_token: str | None = None
    # /metrics also on a port of its own (same registry), as Prometheus exporters do
    metrics_port: int | None = None
    # slow clients: the request head must arrive within header_timeout_s of the connection
    # (or of its first byte on a kept-alive connection); idle kept-alive connections close
    # after keepalive_timeout_s (longer than an idle pool of the proxy in front keeps them)
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 75.0
    # fault injection for tests and benchmarks (never on in production)
    version: str = "0.1.0"
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        settings = cls(
            host=env.get("PITCHEY_HOST", cls.host),
            port=_int(env, "PITCHEY_PORT", cls.port),
            region=env.get("PITCHEY_REGION", cls.region),
            database_url=env.get("DATABASE_URL") or None,
            sqlite_path=env.get("PITCHEY_SQLITE_PATH", cls.sqlite_path),
            db_pool_size=_int(env, "PITCHEY_DB_POOL_SIZE", cls.db_pool_size, minimum=1),
            redis_url=env.get("REDIS_URL") or None,
            cache_ttl_pitches_s=_int(env, "PITCHEY_CACHE_TTL_PITCHES", cls.cache_ttl_pitches_s),
            cache_ttl_dashboard_s=_int(
                env, "PITCHEY_CACHE_TTL_DASHBOARD", cls.cache_ttl_dashboard_s
            ),
            session_ttl_s=_int(env, "PITCHEY_SESSION_TTL", cls.session_ttl_s, minimum=1),
            session_max_lifetime_s=_int(
                env, "PITCHEY_SESSION_MAX_LIFETIME", cls.session_max_lifetime_s, minimum=1
            ),
            rate_limit_per_minute=_int(
                env, "PITCHEY_RATE_LIMIT_PER_MINUTE", cls.rate_limit_per_minute
            ),
            trust_forwarded_for=_bool(env, "PITCHEY_TRUST_FORWARDED_FOR", False),
            frontend_origin=env.get("PITCHEY_FRONTEND_ORIGIN", cls.frontend_origin),
            cookie_secure=_bool(env, "PITCHEY_COOKIE_SECURE", False),
            max_body_bytes=_int(env, "PITCHEY_MAX_BODY_BYTES", cls.max_body_bytes, minimum=1),
            argon2_time_cost=_int(env, "PITCHEY_ARGON2_TIME_COST", cls.argon2_time_cost, 1),
            argon2_memory_kib=_int(env, "PITCHEY_ARGON2_MEMORY_KIB", cls.argon2_memory_kib, 8),
            otel_service_name=env.get("OTEL_SERVICE_NAME", cls.otel_service_name),
            otel_traces_sampler=env.get("OTEL_TRACES_SAMPLER", cls.otel_traces_sampler),
            otel_traces_sampler_arg=_float(
                env, "OTEL_TRACES_SAMPLER_ARG", cls.otel_traces_sampler_arg
            ),
            otel_exporter_otlp_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None,
            otel_spans_file=env.get("PITCHEY_SPANS_FILE") or None,
            otel_exporter_otlp_headers=env.get("OTEL_EXPORTER_OTLP_HEADERS") or None,
            admin_token=_admin_token(env),
            metrics_port=_port(env, "PITCHEY_METRICS_PORT"),
            header_timeout_s=_positive_float(env, "PITCHEY_HEADER_TIMEOUT", cls.header_timeout_s),
            keepalive_timeout_s=_positive_float(
                env, "PITCHEY_KEEPALIVE_TIMEOUT", cls.keepalive_timeout_s
            ),
        )
        if settings.otel_traces_sampler not in _SAMPLERS:
            raise SettingsError(
                f"OTEL_TRACES_SAMPLER={settings.otel_traces_sampler!r} is not one of "
                + ", ".join(sorted(_SAMPLERS))
            )
        return replace(settings, **overrides) if overrides else settings

    @property
    def backend(self) -> str:
        """'postgresql' or 'sqlite': which storage the service runs on."""
        if self.database_url and self.database_url.startswith(("postgres://", "postgresql://")):
            return "postgresql"
        return "sqlite"

    def redacted(self) -> dict[str, Any]:
        """The effective settings with every secret hidden, as /config shows them."""
        known = self.secret_values()
        shown: dict[str, Any] = {}
        for name, value in asdict(self).items():
            if any(word in name for word in _SECRET_WORDS) and value:
                shown[name] = MASK
            elif name == "otel_exporter_otlp_headers":
                shown[name] = redact(value, every_value=True)
            elif name == "extra":
                shown[name] = {key: MASK if looks_secret(key) else redact(item, known=known)
                               for key, item in value.items()}
            elif isinstance(value, str):
                shown[name] = redact(value, known=known)
            else:
                shown[name] = value
        shown["backend"] = self.backend
        return shown

    def secret_values(self) -> tuple[str, ...]:
        """Every credential this configuration holds, to hide wherever it shows up (probe
        errors, log lines) even where no redaction rule recognises it."""
        from urllib.parse import parse_qsl, unquote, urlsplit

        found: list[str] = []
        for url in (self.database_url, self.redis_url, self.otel_exporter_otlp_endpoint):
            if url:
                try:
                    password = urlsplit(url).password
                except ValueError:
                    password = None
                if password:
                    found.append(unquote(password))
                found.extend(value for name, value in parse_qsl(urlsplit(url).query)
                             if value and looks_secret(name))
        if self.otel_exporter_otlp_headers:
            for item in self.otel_exporter_otlp_headers.split(","):
                value = item.partition("=")[2].strip()
                if value:
                    found.append(value)
        if self.admin_token:
            found.append(self.admin_token)
        return tuple(found)

    def config_hash(self) -> str:
        """A short stable digest of the effective settings as /config shows them: a digest
        over the secrets too would let anyone who reads /status test guesses of a weak
        database password offline."""
        blob = json.dumps(self.redacted(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


_SAMPLERS = {
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
}
