"""Numbered ClickHouse migrations: ``migrations/NNNN_name.sql``, applied once each, in order.

Applied versions are recorded in ``schema_migrations``. Statements are separated by a line that
ends with ``;``. ``$name`` placeholders are filled from settings (``string.Template``); ``$measures`` is the rollup
measure column list (``measures_v1.sqlpart``), shared by every rollup table, and ``$main_keys`` the
key columns of the minute/hour/day tiers (``main_keys_v1.sqlpart``).

With ``CLICKHOUSE_CLUSTER`` set, every statement is rewritten into replicated and distributed DDL
that runs ``ON CLUSTER`` (``ledger/clickhouse/cluster.py``: a ReplicatedReplacingMergeTree
``<table>_local`` per shard and a Distributed ``<table>`` sharded by project_id in front of it);
without it the statements run exactly as written. Rules for writing a migration, so that both work
(the details are in ``cluster.py``):

1. Write it for one node: plain engines (``ReplacingMergeTree(version)``), no ``ON CLUSTER``, no
   ``Replicated…`` engine, unqualified table names; never edit an applied migration.
2. A MergeTree table lists its columns and has a ``project_id`` column (the sharding key).
3. Skip indexes and projections go in the column list or in ``ALTER TABLE … ADD INDEX / ADD
   PROJECTION``; column changes are ``ALTER TABLE … ADD/DROP/MODIFY/RENAME COLUMN`` (the cluster
   form applies them to both tables).
4. Materialized views, dictionaries, ``RENAME``/``EXCHANGE`` and partition moves between tables
   have no automatic cluster form: the rewrite refuses them, naming the statement.
5. After changing a migration, ``make cluster-snapshot`` and review the diff of
   ``ledger/tests/snapshots/clickhouse_cluster.sql``; ``migrate_clickhouse --print-sql`` shows what
   would run under the current settings.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from django.conf import settings

from ledger.clickhouse import cluster
from ledger.clickhouse.client import ClickHouse, get_clickhouse

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self) -> list[str]:
        """The statements this migration runs under the current settings: as written on one node, their
        cluster form with ``CLICKHOUSE_CLUSTER``."""
        ddl = cluster.current()
        if ddl is None:
            return self.written()
        for earlier in discover():  # the rewrite learns each earlier table's kind
            if earlier.version >= self.version:
                break
            ddl.rewrite_all(earlier.written())
        return ddl.rewrite_all(self.written())

    def written(self) -> list[str]:
        """The statements of the file, with the settings filled in (for one node)."""
        text = Template(self.path.read_text()).substitute(
            raw_ttl_days=settings.CLICKHOUSE_RAW_TTL_DAYS,
            minute_ttl_days=settings.CLICKHOUSE_MINUTE_TTL_DAYS,
            hour_ttl_days=settings.CLICKHOUSE_HOUR_TTL_DAYS,
            measures=(MIGRATIONS_DIR / "measures_v1.sqlpart").read_text().rstrip(),
            main_keys=(MIGRATIONS_DIR / "main_keys_v1.sqlpart").read_text().strip("\n"),
        )
        body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", body) if s.strip()]


def discover() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"ClickHouse migration {path.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError("two ClickHouse migrations share a number")
    return found


def applied(ch: ClickHouse) -> set[int]:
    rows = ch.query(
        "SELECT version FROM schema_migrations FINAL", caller="ledger.clickhouse.migrate.applied"
    ).result_rows
    return {int(r[0]) for r in rows}


def plan(ddl: cluster.ClusterDDL | None = None) -> list[tuple[Migration, list[str]]]:
    """Every migration with the statements it runs: as written, or their cluster form under ``ddl``.

    The cluster rewrite sees all migrations in order (applied ones too), so it knows each table's kind."""
    return [(m, m.written() if ddl is None else ddl.rewrite_all(m.written())) for m in discover()]


def bookkeeping(ddl: cluster.ClusterDDL | None = None) -> str:
    """The ``schema_migrations`` DDL: a local table on one node, replicated to every node on a cluster."""
    return cluster.BOOKKEEPING_DDL if ddl is None else ddl.bookkeeping()


def render(ddl: cluster.ClusterDDL | None = None) -> str:
    """All statements ``migrate`` would run on an empty store, as one SQL script (``--print-sql``)."""
    database = (
        f"CREATE DATABASE IF NOT EXISTS `{settings.CLICKHOUSE_DATABASE}`" if ddl is None else ddl.create_database()
    )
    parts = ["-- bootstrap\n", f"{database};\n\n", f"{bookkeeping(ddl)};\n\n"]
    for migration, statements in plan(ddl):
        parts.append(f"-- {migration.version:04d}_{migration.name}\n")
        parts.extend(f"{statement};\n\n" for statement in statements)
    return "".join(parts)


def migrate(ch: ClickHouse | None = None) -> list[Migration]:
    """Apply pending migrations and return them (ON CLUSTER when ``CLICKHOUSE_CLUSTER`` is set)."""
    ch = ch or get_clickhouse()
    ddl = cluster.current()
    ch.bootstrap(on_cluster=None if ddl is None else ddl.on_cluster)
    ch.command(bookkeeping(ddl), caller="ledger.clickhouse.migrate")
    done = applied(ch)
    ran = []
    for migration, statements in plan(ddl):
        if migration.version in done:
            continue
        log.info("applying ClickHouse migration %04d_%s", migration.version, migration.name)
        for statement in statements:
            ch.command(statement, caller=f"ledger.clickhouse.migrate.{migration.version:04d}_{migration.name}")
        ch.insert(
            "schema_migrations",
            [[migration.version], [migration.name]],
            ["version", "name"],
            caller="ledger.clickhouse.migrate",
        )
        ran.append(migration)
    return ran
