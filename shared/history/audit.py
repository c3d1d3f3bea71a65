"""The audit trail: every operator action (trigger, retry, rollback, erasure), from the API or the CLI, once.

Who is the credential's name (the API token's ``API_TOKEN_NAME``), never the secret, or the OS user of a CLI
command; an erasure names the buyer's pseudonym, never the buyer id. The seed's monthly access review reads it
(``reviews audit``, the console). The API's role may add rows and read them, never change one.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import psycopg2.extras

from shared.history.connections import Store

Action = Literal["trigger", "retry", "rollback", "erasure"]
# The most a page of the trail holds: what one request or command may read.
MAX_PAGE = 500


@dataclass(frozen=True)
class Actor:
    name: str
    via: Literal["api", "cli"]


def cli_actor() -> Actor:
    """Whoever runs a ``reviews`` command: the OS user (the CLI holds the pipeline's own credentials)."""
    return Actor(getpass.getuser(), "cli")


@dataclass
class Outcome:
    """What an audited action came to, set by the caller as it learns it (a trigger learns its run id, its
    target, only once it succeeds); ``detail`` is kept as JSON."""

    target: str | None = None
    text: str = "done"
    detail: dict = field(default_factory=dict)


class Audit(Store):
    def record_action(
        self, actor: Actor, action: Action, target: str | None, outcome: str, detail: dict | None = None
    ) -> None:
        with self._cursor() as cur:
            cur.execute(
                "INSERT INTO audit (actor, via, action, target, outcome, detail) VALUES (%s, %s, %s, %s, %s, %s)",
                (actor.name, actor.via, action, target, outcome[:500], psycopg2.extras.Json(detail or {})),
            )

    def audit_trail(self, limit: int = 50, before: int | None = None) -> list[dict]:
        """The newest actions first, ``limit`` of them (at most ``MAX_PAGE``), older than the id ``before``."""
        with self._cursor() as cur:
            cur.execute(
                "SELECT * FROM audit WHERE %(before)s::bigint IS NULL OR id < %(before)s ORDER BY id DESC LIMIT %(n)s",
                {"before": before, "n": min(limit, MAX_PAGE)},
            )
            return cur.fetchall()

    @contextmanager
    def audited(
        self,
        actor: Actor,
        action: Action,
        target: str | None = None,
        refusals: tuple[type[Exception], ...] = (),
    ) -> Iterator[Outcome]:
        """Record the action once, when it ends: its ``Outcome`` as the caller set it, "refused: <why>" for one
        of ``refusals`` (the pipeline's own words), or "failed: <exception class>" for anything else, whose
        message may hold what the trail must not (a buyer id, a host)."""
        outcome = Outcome(target)
        try:
            yield outcome
        except refusals as exc:
            self.record_action(actor, action, outcome.target, f"refused: {exc}", outcome.detail)
            raise
        except Exception as exc:
            self.record_action(actor, action, outcome.target, f"failed: {type(exc).__name__}", outcome.detail)
            raise
        self.record_action(actor, action, outcome.target, outcome.text, outcome.detail)
