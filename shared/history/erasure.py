"""Right-to-erasure requests, kept by buyer pseudonym only (see the ``erasure`` table)."""

from __future__ import annotations

from shared.history.connections import Store


class Erasures(Store):
    def add_erasure(self, buyer_pseudonym: str) -> None:
        with self._cursor() as cur:
            cur.execute("INSERT INTO erasure (buyer_pseudonym) VALUES (%s) ON CONFLICT DO NOTHING", (buyer_pseudonym,))

    def erased_pseudonyms(self) -> frozenset[str]:
        with self._cursor() as cur:
            cur.execute("SELECT buyer_pseudonym FROM erasure")
            return frozenset(row["buyer_pseudonym"] for row in cur.fetchall())
