"""Outside an explicit ENVIRONMENT=local a process refuses unsafe secrets, naming each and why, never its value."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from ops.cli import main as reviews
from services.api.app import create_app
from shared.celery_app import create_celery
from shared.settings import API_SECRETS, BEAT_SECRETS, STAGE_SECRETS, Settings, UnsafeSecrets, get_settings
from shared.stages import Stage
from shared.tasks import require_stage_secrets, worker_stage

ROOT = Path(__file__).resolve().parents[2]
SECRETS = [name for name, field in Settings.model_fields.items() if isinstance(field.default, SecretStr)]
# Safe outside local: every secret long and unguessable, the S3 key ids no placeholder.
SAFE = {
    **{name: f"{name}-Zq7wK2pX9vN4mR8tY3bC6hJ1" for name in SECRETS},
    **{name: f"AKID{name.upper()}" for name in Settings.model_fields if name.endswith("access_key_id")},
}
SAFE_ENV = {name.upper(): value for name, value in SAFE.items()}


@pytest.fixture
def production(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "production")


def refusal(**settings) -> str:
    with pytest.raises(UnsafeSecrets) as refused:
        Settings(**settings)
    return str(refused.value)


def test_unset_environment_means_production_rules(monkeypatch):
    monkeypatch.delenv("ENVIRONMENT")
    get_settings.cache_clear()
    try:
        with pytest.raises(UnsafeSecrets, match="PSEUDONYM_KEY: the published local- placeholder"):
            get_settings()
    finally:
        get_settings.cache_clear()
    assert Settings(**SAFE).environment == "production"


def test_only_an_explicit_local_environment_accepts_the_placeholders(production):
    assert Settings(environment="local").api_token.get_secret_value() == "local-api-token"
    message = refusal()
    for name in ("API_TOKEN", "PSEUDONYM_KEY", "METADATA_PASSWORD", "MONGO_PASSWORD", "EXTRACT_S3_ACCESS_KEY_ID"):
        assert f"{name}: the published local- placeholder" in message


def test_every_unsafe_secret_is_named_at_once_with_its_reason_and_never_its_value(production, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "x" * 31)
    monkeypatch.setenv("METADATA_PASSWORD", "ChangeMe")
    monkeypatch.setenv("PUBLISH_S3_SECRET_ACCESS_KEY", "minioadmin")
    monkeypatch.setenv("FLOWER_PASSWORD", "fifteen-chars-x")
    unsafe = {"api_token", "metadata_password", "publish_s3_secret_access_key", "flower_password", "pseudonym_key"}
    message = refusal(**{name: value for name, value in SAFE.items() if name not in unsafe})
    lines = message.splitlines()[1:-1]
    assert lines == [
        "  METADATA_PASSWORD: a well-known weak value",
        "  PUBLISH_S3_SECRET_ACCESS_KEY: a well-known weak value",
        "  PSEUDONYM_KEY: the published local- placeholder",
        "  API_TOKEN: shorter than 32 characters",
        "  FLOWER_PASSWORD: shorter than 16 characters",
    ]
    for value in ("x" * 31, "ChangeMe", "minioadmin", "fifteen-chars-x", "local-pseudonym-key"):
        assert value not in message


def test_an_empty_secret_is_one_this_process_is_not_given_unless_it_uses_it(production):
    # docker-compose.yml keeps a secret from a service by setting it empty: the API holds no MongoDB password,
    # nor the run history owner's (it has a role of its own).
    withheld = Settings(
        **{
            **SAFE,
            "mongo_password": "",
            "pseudonym_key": "",
            "publish_s3_secret_access_key": "",
            "metadata_password": "",
            "worker_metadata_password": "",
        }
    )
    withheld.require_secrets(API_SECRETS)
    without_token = Settings(**{**SAFE, "api_token": "", "api_metadata_password": ""})
    with pytest.raises(UnsafeSecrets) as refused:
        without_token.require_secrets(API_SECRETS)
    assert str(refused.value).splitlines()[1:-1] == [
        "  API_METADATA_PASSWORD: empty, and this process uses it",
        "  API_TOKEN: empty, and this process uses it",
    ]
    Settings(**{**SAFE, "api_token": ""}, environment="local").require_secrets(API_SECRETS)


def given_only(used) -> dict[str, str]:
    """SAFE with every secret but ``used`` set empty: what docker-compose.yml gives a service."""
    return {**SAFE, **{name: "" for name in SECRETS if name not in used}}


def test_each_worker_starts_with_its_stages_secrets_alone_and_refuses_without_one(production):
    for stage, used in STAGE_SECRETS.items():
        require_stage_secrets(Settings(**given_only(used)), [stage.queue])
        for name in used:
            with pytest.raises(UnsafeSecrets, match=f"{name.upper()}: empty, and this process uses it"):
                require_stage_secrets(Settings(**given_only(set(used) - {name})), [stage.queue])


def test_a_worker_serves_one_stage_whose_s3_identity_it_holds():
    assert worker_stage(["classify"]) is Stage.CLASSIFY
    with pytest.raises(ValueError, match="a worker serves one stage's queue"):
        worker_stage(["extract", "publish"])  # it would need two identities


def test_beat_starts_with_the_brokers_password_alone(production):
    app = create_celery(Settings(**given_only(BEAT_SECRETS)))
    assert set(app.conf.beat_schedule) == {
        "daily-run",
        "sweep-stalled-runs",
        "reclaim-lost-batches",
        "expire-run-zones",
    }
    assert SAFE["redis_password"] in app.conf.broker_url


def test_the_smtp_password_is_checked_only_with_an_smtp_user(production):
    assert Settings(**{**SAFE, "alert_smtp_password": "local-smtp-password"}).alert_smtp_user == ""
    assert "ALERT_SMTP_PASSWORD: empty, and this process uses it" in refusal(
        **{**SAFE, "alert_smtp_user": "alerts", "alert_smtp_password": ""}
    )
    assert "ALERT_SMTP_PASSWORD: the published local- placeholder" in refusal(
        **{**SAFE, "alert_smtp_user": "alerts", "alert_smtp_password": "local-smtp-password"}
    )


def test_the_app_factory_refuses_an_api_without_its_token(production):
    with pytest.raises(UnsafeSecrets, match="API_TOKEN: empty"):
        create_app(Settings(**{**SAFE, "api_token": ""}))


def test_the_cli_exits_with_the_message_alone(monkeypatch):
    monkeypatch.delenv("ENVIRONMENT")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit, match="API_TOKEN: the published local- placeholder"):
            reviews(["stack", "status"])
    finally:
        get_settings.cache_clear()


def test_the_api_process_exits_at_once_naming_the_setting_and_never_binds_its_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **SAFE_ENV, "ENVIRONMENT": "production", "API_PORT": str(port), "PYTHONPATH": str(ROOT)}
    del env["API_TOKEN"]  # its placeholder default
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "services.api"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert time.monotonic() - started < 30
    assert result.returncode != 0
    assert result.stderr.splitlines()[1:-1] == ["  API_TOKEN: the published local- placeholder"]
    assert "Traceback" not in result.stderr and "Uvicorn running" not in result.stderr + result.stdout


@pytest.mark.parametrize("environment", ["local", "production"])
def test_a_secret_another_program_would_misread_is_refused_in_every_environment(environment):
    misread = {"redis_password": "redis-pass with-a-space-Zq7wK2", "flower_password": "flower,pass-Zq7wK2pX9vN4"}
    message = refusal(**{**SAFE, **misread}, environment=environment)
    assert "REDIS_PASSWORD: holds whitespace" in message and "FLOWER_PASSWORD: holds whitespace" in message
    assert not any(value in message for value in misread.values())


def test_the_redis_url_carries_the_password_quoted():
    settings = Settings(**{**SAFE, "redis_password": "p@ss/:w%Zq7wK2pX9vN4"})
    assert settings.redis_url == f"redis://:p%40ss%2F%3Aw%25Zq7wK2pX9vN4@{settings.redis_host}:{settings.redis_port}/0"
    assert Settings(**{**SAFE, "redis_password": ""}).redis_url.startswith(f"redis://{settings.redis_host}:")
