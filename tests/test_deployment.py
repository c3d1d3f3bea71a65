"""The production compose file and .env.example agree with the settings, and hold no secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from ops.stack.s3_server import GRANTED
from shared.redis_acl import ADMIN_RULES, API_RULES, BROKER_RULES
from shared.settings import API_SECRETS, BEAT_SECRETS, FLOWER_SECRETS, OPERATOR_SECRETS, STAGE_SECRETS, Settings
from shared.stages import Stage

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
FIELDS = {name.upper() for name in Settings.model_fields}
PROJECT = {name for name, service in SERVICES.items() if service.get("image") == "review-intelligence:latest"}
WORKERS = {
    "extractor": "extract",
    "archiver": "archive",
    "transformer": "transform",
    "classifier": "classify",
    "publisher": "publish",
}
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN|KEY")


def test_every_service_is_there_with_the_production_images():
    assert set(SERVICES) >= {"redis", "postgres", "mongo", "minio", "beat", "flower", "api", *WORKERS}
    assert SERVICES["postgres"]["image"] == "postgres:15"
    assert SERVICES["mongo"]["image"] == "mongo:6"
    assert SERVICES["classifier"]["deploy"]["replicas"] >= 2


@pytest.mark.parametrize("service", sorted(PROJECT))
def test_project_services_only_use_settings_variables(service):
    unknown = set(SERVICES[service].get("environment", {})) - FIELDS
    assert unknown == set(), f"{service} sets variables that are not settings: {unknown}"


def test_each_worker_consumes_exactly_its_own_queue():
    queues = {}
    for service in WORKERS:
        command = SERVICES[service]["command"]
        queues[service] = command[command.index("-Q") + 1]
        assert Stage(queues[service]).worker_module in command
    assert queues == WORKERS
    assert set(queues.values()) == {stage.queue for stage in Stage}


def test_no_secret_literal_in_the_compose_file():
    for name, service in SERVICES.items():
        for variable, value in (service.get("environment") or {}).items():
            if SECRET.search(variable) and value not in ("", None):
                assert str(value).startswith("${"), f"{name}.{variable} holds a literal secret"


def test_the_api_holds_no_mongodb_or_pipeline_secret():
    env = SERVICES["api"]["environment"]
    for variable in (
        "MONGO_PASSWORD",
        *(f"{identity.upper()}_S3_SECRET_ACCESS_KEY" for identity in GRANTED if identity != "api"),
        "PSEUDONYM_KEY",
        "SOURCE_READER_PASSWORD",
        "POSTGRES_SUPERUSER_PASSWORD",
    ):
        assert env[variable] == "", variable
    assert env["API_S3_SECRET_ACCESS_KEY"].startswith("${")


def test_the_api_runs_several_workers_sharing_one_cache_volume():
    api = SERVICES["api"]
    env = api["environment"]
    assert api["command"] == ["python", "-m", "services.api"]  # as the local stack starts it
    assert int(re.fullmatch(r"\$\{API_WORKERS:-(\d+)\}", env["API_WORKERS"]).group(1)) >= 2
    assert f"api-cache:{env['API_CACHE_DIR']}" in api["volumes"]


# The secrets each long-running service uses, from the one map in shared/settings.py.
USED = {
    **{service: STAGE_SECRETS[Stage(queue)] for service, queue in WORKERS.items()},
    "beat": BEAT_SECRETS,
    "flower": FLOWER_SECRETS,
    "api": API_SECRETS,
    "operator": OPERATOR_SECRETS,
}


@pytest.mark.parametrize("service", sorted(USED))
def test_each_service_gets_exactly_the_secrets_it_uses(service):
    env = SERVICES[service]["environment"]
    given = {
        name for name, field in Settings.model_fields.items() if field.annotation is SecretStr and env[name.upper()]
    }
    assert given == set(USED[service])
    assert all(env[name.upper()] == f"${{{name.upper()}:?set {name.upper()}}}" for name in given)


def test_minio_init_gives_each_identity_its_own_user_and_deploy_policy():
    init = SERVICES["minio-init"]
    script = init["command"][0]
    (looped,) = re.findall(r"for identity in ([a-z ]+); do", script)
    assert looped.split() == list(GRANTED)
    assert '"/deploy/$$identity-s3-policy.json"' in script and "./deploy:/deploy:ro" in init["volumes"]
    assert all((ROOT / "deploy" / f"{identity}-s3-policy.json").is_file() for identity in GRANTED)
    for identity in GRANTED:
        for part in ("ACCESS_KEY_ID", "SECRET_ACCESS_KEY"):
            name = f"{identity.upper()}_S3_{part}"
            assert init["environment"][name] == f"${{{name}:?set {name}}}"


def test_alertmanager_config_gets_the_smtp_password_alone():
    env = SERVICES["alertmanager-config"]["environment"]
    assert {name for name in env if SECRET.search(name) and env[name]} == {"ALERT_SMTP_PASSWORD"}


@pytest.mark.parametrize("service", sorted(PROJECT))
def test_only_the_init_job_holds_an_administrator_secret(service):
    env = SERVICES[service]["environment"]
    postgres = {"POSTGRES_SUPERUSER_PASSWORD", "SOURCE_OWNER_PASSWORD"}  # to create the source (init)
    held = {variable for variable in ("MONGO_ADMIN_PASSWORD", "S3_ADMIN_SECRET_ACCESS_KEY", *postgres) if env[variable]}
    assert held == (postgres if service == "init" else set())


def test_env_example_lists_every_setting():
    names = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if re.match(r"^[A-Z0-9_]+=", line)
    }
    assert names == FIELDS


def test_redis_requires_its_password_kept_off_every_command_line():
    redis = SERVICES["redis"]
    script = "\n".join(redis["command"])
    # the broker's (default) user from a file in memory only the redis user reads, then the image's own entrypoint
    broker = f"printf 'user default resetpass {BROKER_RULES} >%s\\n' \"$$REDIS_PASSWORD\" > /run/redis/redis.conf"
    assert broker in script and "requirepass" not in script
    # the API's and the administrator's users, with the rules the local stack writes (shared/redis_acl.py)
    for rules, user, password in (
        (API_RULES, "API_REDIS_USER", "API_REDIS_PASSWORD"),
        (ADMIN_RULES, "REDIS_ADMIN_USER", "REDIS_ADMIN_PASSWORD"),
    ):
        line = f'printf \'user %s {rules} >%s\\n\' "$${user}" "$${password}" >> /run/redis/redis.conf'
        assert line in script and password in script.split("unset ", 1)[1].split("\n", 1)[0]
        assert redis["environment"][password] == f"${{{password}:?set {password}}}"
    assert "/run/redis" in redis["tmpfs"] and "docker-entrypoint.sh redis-server /run/redis/redis.conf" in script
    assert "--requirepass" not in script
    assert (
        redis["environment"]["REDISCLI_AUTH"]
        == redis["environment"]["REDIS_PASSWORD"]
        == "${REDIS_PASSWORD:?set REDIS_PASSWORD}"
    )
    broker_clients = {*WORKERS, "beat", "flower", "operator"}
    for service in PROJECT:
        given = SERVICES[service]["environment"]["REDIS_PASSWORD"]
        assert given == ("${REDIS_PASSWORD:?set REDIS_PASSWORD}" if service in broker_clients else ""), service
        api_password = SERVICES[service]["environment"]["API_REDIS_PASSWORD"]
        assert api_password == ("${API_REDIS_PASSWORD:?set API_REDIS_PASSWORD}" if service == "api" else ""), service
        assert SERVICES[service]["environment"]["REDIS_ADMIN_PASSWORD"] == "", service  # no service administers


def test_flower_on_the_hosts_loopback_with_its_password_in_its_environment():
    flower = SERVICES["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    command = " ".join(flower["command"])
    assert "--basic-auth" not in command
    assert command.startswith('sh -c FLOWER_BASIC_AUTH="$$FLOWER_USER:$$FLOWER_PASSWORD" exec celery ')
