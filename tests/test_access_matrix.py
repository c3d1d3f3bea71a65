"""README's access matrix (role × store) agrees with the real grants, so it cannot drift.

Each cell is "—" or segments "`SECRET`: what it allows", split by "; ". The secrets are compared
with the environment docker-compose.yml gives the role's service; S3 cells with deploy/'s policies;
MongoDB cells with deploy/mongo-init.js; PostgreSQL cells with the roles' privileges in the local
stack's PostgreSQL, as `reviews source create` and `reviews history init` leave them; Redis cells with the
users of the local stack's Redis (ACL GETUSER).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg2
import pytest
import redis
import yaml
from pydantic import SecretStr

from ops.source.schema import create_source
from ops.stack.s3_server import GRANTED
from shared.history.schema import init_metadata_db
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SERVICES = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
SECRETS = {name.upper() for name, field in Settings.model_fields.items() if field.annotation is SecretStr}
TOO_BROAD = "(too broad: issue 27)"
ROLES = [
    "extract",
    "archive",
    "transform",
    "classify",
    "publish",
    "beat",
    "API",
    "init job",
    "operator",
    "Flower",
    "Alertmanager's configuration",
]
STORES = {
    "source PostgreSQL": "source",
    "metadata PostgreSQL": "metadata",
    "MongoDB archive": "mongo",
    "S3 lake": "s3",
    "Redis": "redis",
    "other secrets": "other",
}
# The store each credential opens; a secret of none of them goes in "other secrets".
STORE_OF = {
    "POSTGRES_SUPERUSER_PASSWORD": {"source", "metadata"},
    "SOURCE_OWNER_PASSWORD": {"source"},
    "SOURCE_READER_PASSWORD": {"source"},
    "METADATA_PASSWORD": {"metadata"},
    "API_METADATA_PASSWORD": {"metadata"},
    "WORKER_METADATA_PASSWORD": {"metadata"},
    "MONGO_PASSWORD": {"mongo"},
    "MONGO_ADMIN_PASSWORD": {"mongo"},
    **{f"{identity.upper()}_S3_SECRET_ACCESS_KEY": {"s3"} for identity in GRANTED},
    "S3_ADMIN_SECRET_ACCESS_KEY": {"s3"},
    "REDIS_PASSWORD": {"redis"},
    "API_REDIS_PASSWORD": {"redis"},
}
# Each S3 identity's secret -> its policy, deploy/<identity>-s3-policy.json.
S3_POLICY = {f"{identity.upper()}_S3_SECRET_ACCESS_KEY": identity for identity in GRANTED}
# Those who own the metadata database, and why it is not too broad: the init job migrates it; the operator's commands,
# run by a person on demand, add erasure requests, which no service's role may change.
OWNERS = {"init", "operator"}
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
# Those PostgreSQL also grants on columns: held when granted on the table or on any of its columns.
COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")
PG_WORDS = {*TABLE_PRIVILEGES, "OWNER", "SUPERUSER"}


def read_matrix() -> dict[str, dict]:
    """The README's matrix: by role, its compose service and, by store, its segments {secret: text}."""
    section = (ROOT / "README.md").read_text().split("## Least privilege\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| role ")]
    assert len(lines) == 1, "one matrix in README's Least privilege section"
    rows = section[section.index(lines[0]) :].split("\n\n", 1)[0].splitlines()
    header = cells_of(rows[0])
    assert header[1:] == list(STORES)
    matrix = {}
    for row in rows[2:]:
        first, *cells = cells_of(row)
        role, service = re.fullmatch(r"(.+) \(`([a-z-]+)`\)", first).groups()
        matrix[role] = {
            "service": service,
            **{STORES[h]: segments(cell) for h, cell in zip(header[1:], cells, strict=True)},
        }
    return matrix


def cells_of(row: str) -> list[str]:
    """A table row's cells: split at its pipes, not at an escaped one (``+client\\|setinfo``)."""
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row.strip("|"))]


def segments(cell: str) -> dict[str, str]:
    """A cell's credentials: each secret with the text that says what it allows ("" for text naming none)."""
    found: dict[str, str] = {}
    if cell == "—":
        return found
    secret = ""
    for segment in cell.split("; "):
        named = re.match(r"`([A-Z0-9_]+)`", segment)
        if named and named.group(1) in SECRETS:
            secret = named.group(1)
        found[secret] = f"{found.get(secret, '')}; {segment}".lstrip("; ")
    return found


def quoted(text: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", text))


MATRIX = read_matrix()


def secrets_given(service: str) -> set[str]:
    env = SERVICES[service].get("environment") or {}
    return {name for name, value in env.items() if name in SECRETS and value not in ("", None)}


def test_the_matrix_has_every_role_and_every_service_holding_a_credential():
    assert list(MATRIX) == ROLES
    project = {name for name, service in SERVICES.items() if service.get("image") == "review-intelligence:latest"}
    holders = {name for name in project if secrets_given(name) & set(STORE_OF)}
    assert holders <= {row["service"] for row in MATRIX.values()}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_holds_exactly_the_secrets_compose_gives_its_service(role):
    row = MATRIX[role]
    named = {secret for store in STORES.values() for secret in row[store] if secret}
    assert named == secrets_given(row["service"])
    for store in STORES.values():
        assert all(store in STORE_OF.get(secret, {"other"}) for secret in row[store] if secret), (role, store)


def test_s3_cells_name_the_actions_and_keys_deploy_policies_allow():
    for role, row in MATRIX.items():
        for secret, text in row["s3"].items():
            assert secret, (role, "an S3 cell names its key's secret")
            policy = json.loads((ROOT / "deploy" / f"{S3_POLICY[secret]}-s3-policy.json").read_text())
            actions = {action for s in policy["Statement"] for action in s["Action"]}
            keys = {
                arn.split("/", 1)[1] for s in policy["Statement"] for arn in s["Resource"] if "/" in arn.split(":::")[1]
            }
            words = quoted(text) - {secret}
            assert {w for w in words if w.startswith("s3:")} == actions, role
            assert {w for w in words if not w.startswith("s3:")} == keys, role


def test_mongodb_cells_name_the_roles_deploy_mongo_init_grants():
    granted = set(re.findall(r'role: "(\w+)"', (ROOT / "deploy" / "mongo-init.js").read_text()))
    for role, row in MATRIX.items():
        for secret, text in row["mongo"].items():
            assert secret == "MONGO_PASSWORD", role
            assert quoted(text) - {secret, "MONGO_DB"} == granted, role


def test_redis_gives_the_api_its_own_user_and_the_broker_password_to_celery_alone():
    assert "--requirepass" not in " ".join(map(str, SERVICES["redis"]["command"]))  # a config file, not argv
    broker = [role for role, row in MATRIX.items() if "REDIS_PASSWORD" in row["redis"]]
    assert broker == [role for role in ROLES if role not in ("API", "init job", "Alertmanager's configuration")]
    assert not any(TOO_BROAD in MATRIX[role]["redis"]["REDIS_PASSWORD"] for role in broker)  # narrowed
    assert list(MATRIX["API"]["redis"]) == ["API_REDIS_PASSWORD"]


def acl_rules(text: str) -> list[str]:
    """The ACL rules a cell quotes, in order: +/-command, +/-@category, keys (~pattern), channels (&pattern)."""
    return [w for w in re.findall(r"`([^`]+)`", text) if w[0] in "+-~&"]


def permissions(held: dict) -> dict:
    return {part: sorted(held[part]) for part in ("commands", "categories", "keys", "channels")}


def test_redis_cells_name_what_the_real_acl_allows(servers: Settings):
    # the cell's rules, given by the real Redis to a scratch user, make exactly the real user's permissions (Redis
    # rewrites rules in its own words, which differ between versions: compared as Redis reads them, not as text)
    users = {"API_REDIS_PASSWORD": servers.api_redis_user, "REDIS_PASSWORD": "default"}
    with redis.Redis.from_url(servers.redis_admin_url, socket_timeout=5, decode_responses=True) as admin:
        try:
            for role, row in MATRIX.items():
                for secret, text in row["redis"].items():
                    admin.execute_command("ACL", "SETUSER", "matrix-cell", "reset", "resetchannels", *acl_rules(text))
                    cell, held = admin.acl_getuser("matrix-cell"), admin.acl_getuser(users[secret])
                    assert permissions(cell) == permissions(held), (role, held)
        finally:
            admin.acl_deluser("matrix-cell")


def test_only_the_init_job_and_the_operator_own_a_database_and_no_role_is_too_broad_there():
    for role, row in MATRIX.items():
        for store in ("source", "metadata"):
            for secret, text in row[store].items():
                assert TOO_BROAD not in text, (role, secret)
                assert "OWNER" not in quoted(text) or row["service"] in OWNERS, (role, secret)


def test_s3_no_longer_too_broad_each_identity_held_by_its_service_alone():
    holders = {secret: [role for role, row in MATRIX.items() if secret in row["s3"]] for secret in S3_POLICY}
    assert all(len(roles) == 1 for roles in holders.values()), holders
    assert all(TOO_BROAD not in text for row in MATRIX.values() for text in row["s3"].values())


def pg_privileges(settings: Settings, db: str, role: str) -> set[str]:
    """SUPERUSER, OWNER (of every table), or the privileges ``role`` holds on any table of ``db`` or its columns."""
    conn = psycopg2.connect(settings.postgres_admin_dsn, dbname=db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,))
            if cur.fetchone()[0]:
                return {"SUPERUSER"}
            cur.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'")
            tables = cur.fetchall()
            assert tables, db
            if all(owner == role for _, owner in tables):
                return {"OWNER"}
            cur.execute(
                "SELECT DISTINCT p FROM pg_tables, unnest(%s) AS p WHERE schemaname = 'public'"
                " AND CASE WHEN p = ANY(%s) THEN has_any_column_privilege(%s, 'public.' || quote_ident(tablename), p)"
                " ELSE has_table_privilege(%s, 'public.' || quote_ident(tablename), p) END",
                (list(TABLE_PRIVILEGES), list(COLUMN_PRIVILEGES), role, role),
            )
            return {p for (p,) in cur.fetchall()}
    finally:
        conn.close()


def test_postgresql_cells_name_the_privileges_the_roles_hold(servers: Settings):
    create_source(servers)
    init_metadata_db(servers)
    role_of = {
        "POSTGRES_SUPERUSER_PASSWORD": servers.postgres_superuser,
        "SOURCE_OWNER_PASSWORD": servers.source_owner_user,
        "SOURCE_READER_PASSWORD": servers.source_reader_user,
        "METADATA_PASSWORD": servers.metadata_user,
        "API_METADATA_PASSWORD": servers.api_metadata_user,
        "WORKER_METADATA_PASSWORD": servers.worker_metadata_user,
    }
    for store, db in (("source", servers.source_db), ("metadata", servers.metadata_db)):
        held = {secret: pg_privileges(servers, db, role) for secret, role in role_of.items()}
        for role, row in MATRIX.items():
            for secret, text in row[store].items():
                assert quoted(text) & PG_WORDS == held[secret], (role, store, secret)
