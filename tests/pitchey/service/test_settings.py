from __future__ import annotations

import pytest

from pitchey.settings import Settings, SettingsError, redact_url


def test_defaults_follow_the_seed_documents() -> None:
    settings = Settings.from_environ({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8001)
    assert settings.rate_limit_per_minute == 100
    assert settings.session_ttl_s == 24 * 3600
    assert settings.backend == "sqlite"


def test_environment_overrides_and_backend_choice() -> None:
    settings = Settings.from_environ(
        {"DATABASE_URL": "postgresql://u:pw@db/x", "PITCHEY_RATE_LIMIT_PER_MINUTE": "0",
         "REDIS_URL": "redis://127.0.0.1:6379/0", "OTEL_TRACES_SAMPLER": "always_on"}
    )
    assert settings.backend == "postgresql"
    assert settings.rate_limit_per_minute == 0
    assert settings.otel_traces_sampler == "always_on"


@pytest.mark.parametrize(
    ("name", "value"),
    [("PITCHEY_PORT", "eighty"), ("PITCHEY_RATE_LIMIT_PER_MINUTE", "-1"),
     ("OTEL_TRACES_SAMPLER", "sometimes"), ("PITCHEY_COOKIE_SECURE", "maybe")],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_environ({name: value})


def test_redacted_hides_every_secret() -> None:
    settings = Settings.from_environ({"DATABASE_URL": "postgresql://app:s3cret@db:5432/pitchey",
                                      "REDIS_URL": "redis://:hunter2@cache:6379/0"})
    shown = str(settings.redacted())
    assert "s3cret" not in shown and "hunter2" not in shown
    assert redact_url("postgresql://app:s3cret@db/x") == "postgresql://app:***@db/x"


def test_config_hash_changes_with_settings() -> None:
    assert Settings().config_hash() != Settings(port=9000).config_hash()
    assert Settings().config_hash() == Settings().config_hash()
