"""The source database ``amazonreviews``: tables, an owner for loading, a read-only role for the pipeline.

The role of the seed's ``create_database.py``. Idempotent: re-running changes
nothing but the roles' passwords, which follow the settings.
"""

from __future__ import annotations

import psycopg2
from psycopg2 import sql

from shared.settings import Settings

TABLES = """
CREATE TABLE IF NOT EXISTS product (
    product_id    text PRIMARY KEY,           -- asin; parent_asin in the 2023 format
    title         text,
    brand         text,
    category      text,                       -- the most specific single category
    categories    jsonb,
    price         numeric(12, 2),
    has_metadata  boolean NOT NULL DEFAULT false,  -- false: a stub made for reviews of an unlisted product
    source_format text,
    loaded_at     timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS buyer (
    buyer_id   text PRIMARY KEY,              -- reviewerID; user_id in the 2023 format
    name       text,
    loaded_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS review (
    review_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    review_key         text NOT NULL UNIQUE,  -- content hash: an exact duplicate loads once
    product_id         text NOT NULL REFERENCES product,
    buyer_id           text NOT NULL REFERENCES buyer,
    rating             smallint,              -- no CHECK: bad values reach the pipeline, which rejects them
    title              text,
    text               text,
    helpful_votes      integer NOT NULL DEFAULT 0,
    total_votes        integer,               -- only the 2014 format publishes it
    verified_purchase  boolean,               -- not in the 2014 format
    reviewed_at        timestamptz,
    source_format      text NOT NULL,
    source_file        text,
    source_line        integer,
    loaded_at          timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- The primary key serves the extractor's keyset pagination; these serve the rest.
CREATE INDEX IF NOT EXISTS review_product_id ON review (product_id);
CREATE INDEX IF NOT EXISTS review_buyer_id ON review (buyer_id);          -- erasure by buyer
CREATE INDEX IF NOT EXISTS review_updated_at ON review (updated_at, review_id);  -- incremental runs

-- Incremental runs read what changed since their watermark: any UPDATE moves updated_at, whether
-- or not the writer remembered to set it.
CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER review_touch BEFORE UPDATE ON review FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
"""


def _upsert_role(cur, name: str, password: str) -> None:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
    verb = "ALTER" if cur.fetchone() else "CREATE"
    cur.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(name)), (password,))


def create_source(settings: Settings) -> None:
    owner, reader, db = settings.source_owner_user, settings.source_reader_user, settings.source_db
    admin = psycopg2.connect(settings.postgres_admin_dsn)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            _upsert_role(cur, owner, settings.source_owner_password.get_secret_value())
            _upsert_role(cur, reader, settings.source_reader_password.get_secret_value())
            # Even a bug in the pipeline cannot write: every transaction of the role is read-only.
            cur.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(sql.Identifier(reader)))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(owner)))
            cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db)))
            cur.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(
                    sql.Identifier(db), sql.Identifier(owner), sql.Identifier(reader)
                )
            )
    finally:
        admin.close()

    conn = psycopg2.connect(settings.source_owner_dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            cur.execute(TABLES)
            grants = sql.SQL("""
                GRANT USAGE ON SCHEMA public TO {reader};
                GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader};
                ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT SELECT ON TABLES TO {reader};
            """).format(reader=sql.Identifier(reader), owner=sql.Identifier(owner))
            cur.execute(grants)
    finally:
        conn.close()
