"""CLICKHOUSE_CLUSTER: the migrations' replicated and distributed form, parsed by the engine itself.

chDB has no Keeper and no remote servers, so it cannot run ON CLUSTER DDL, but it parses it: every
generated statement goes through ``formatQuery`` (and ``EXPLAIN AST``) of the real engine. The full
cluster DDL is pinned by ``ledger/tests/snapshots/clickhouse_cluster.sql``; after changing a
migration or the rewrite, regenerate it with

    make cluster-snapshot

and review the diff. Without the setting the statements must go out exactly as written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from ledger.clickhouse import cluster
from ledger.clickhouse.client import ClickHouse
from ledger.clickhouse.cluster import ClusterDDL, ClusterDDLError
from ledger.clickhouse.migrate import bookkeeping, discover, migrate, plan, render

SNAPSHOT = Path(__file__).parent / "snapshots" / "clickhouse_cluster.sql"
# The settings the snapshot is made with (the defaults of config/settings.py).
SNAPSHOT_SETTINGS = {
    "CLICKHOUSE_CLUSTER": "meterline",
    "CLICKHOUSE_DATABASE": "meterline",
    "CLICKHOUSE_RAW_TTL_DAYS": 400,
    "CLICKHOUSE_MINUTE_TTL_DAYS": 14,
    "CLICKHOUSE_HOUR_TTL_DAYS": 730,
}
OC = "ON CLUSTER meterline"
KEEPER = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'"


def formatted(ch: ClickHouse, sql: str) -> str:
    """The engine's own rendering of ``sql``: raises unless ClickHouse parses it."""
    return str(ch.query("SELECT formatQuery({q:String})", parameters={"q": sql}).result_rows[0][0])


def ast(ch: ClickHouse, sql: str) -> str:
    return "\n".join(row[0] for row in ch.query(f"EXPLAIN AST {sql}").result_rows)


def ddl() -> ClusterDDL:
    return ClusterDDL("meterline", "meterline")


def all_cluster_statements() -> list[str]:
    d = ddl()
    return [d.create_database(), bookkeeping(d)] + [s for _, statements in plan(d) for s in statements]


# --- the shipped migrations ---------------------------------------------------------------------


def test_every_generated_statement_parses_in_the_engine(ch: ClickHouse) -> None:
    statements = all_cluster_statements()
    for sql in statements:
        text = formatted(ch, sql)
        if not sql.startswith("INSERT"):  # a backfill runs once, through the Distributed tables
            assert "ON CLUSTER meterline" in text, sql
    creates = [s for s in statements if s.startswith("CREATE TABLE")]
    locals_ = [s for s in creates if "ReplicatedReplacingMergeTree(" in s]
    dists = [s for s in creates if "ENGINE = Distributed(" in s]
    # every MergeTree table of the migrations has both forms; schema_migrations is replicated only
    assert len(locals_) == len(dists) + 1
    tree = ast(ch, dists[0])
    for node in ("Function Distributed", "Function cityHash64", "Identifier project_id"):
        assert node in tree


def test_each_local_table_keeps_the_single_node_definition(ch: ClickHouse) -> None:
    """Columns, version column, PARTITION BY, ORDER BY, TTL and SETTINGS are the engine-normalised
    single-node table's, with only the name, ON CLUSTER and the replicated engine differing."""
    with override_settings(**SNAPSHOT_SETTINGS):
        single = [s for m in discover() for s in m.written() if s.startswith("CREATE TABLE")]
        d = ddl()
        for sql in single:
            local, dist = d.rewrite(sql)
            name = re.search(r"CREATE TABLE IF NOT EXISTS (\w+)", sql)[1]  # type: ignore[index]
            expected = formatted(ch, sql)
            got = formatted(ch, local)
            assert got.startswith(f"CREATE TABLE IF NOT EXISTS {name}_local ON CLUSTER meterline\n")
            back = got.replace(f"{name}_local ON CLUSTER meterline", name, 1)
            back = re.sub(r"ENGINE = Replicated(\w+)\(" + re.escape(KEEPER) + r"(, )?", r"ENGINE = \1(", back)
            assert back.replace("MergeTree()", "MergeTree") == expected
            assert formatted(ch, dist) == (
                f"CREATE TABLE IF NOT EXISTS {name} ON CLUSTER meterline AS {name}_local\n"
                f"ENGINE = Distributed('meterline', 'meterline', '{name}_local', cityHash64(project_id))"
            )


def test_a_migrations_statements_follow_the_setting() -> None:
    with override_settings(**SNAPSHOT_SETTINGS):
        cluster_form = {m.version: m.statements() for m in discover()}
        assert cluster_form == {m.version: s for m, s in plan(ddl())}
    with override_settings(CLICKHOUSE_CLUSTER=None):
        assert [m.statements() for m in discover()] == [m.written() for m in discover()]


def test_the_column_migration_alters_the_local_and_the_distributed_tables(ch: ClickHouse) -> None:
    d = ddl()
    steps = {m.version: s for m, s in plan(d)}
    local, dist = steps[3]
    assert local.startswith("ALTER TABLE llm_calls_local ON CLUSTER meterline")
    assert dist.startswith("ALTER TABLE llm_calls ON CLUSTER meterline")
    for sql in (local, dist):
        assert formatted(ch, sql).count("ADD COLUMN IF NOT EXISTS") == 4
    # the skip index of 0002 is for the data: on the local table only
    [index] = [s for s in steps[2] if "ADD INDEX" in s]
    assert index.startswith("ALTER TABLE llm_calls_local ON CLUSTER meterline ADD INDEX")


def test_bookkeeping_is_replicated_to_every_node(ch: ClickHouse) -> None:
    text = formatted(ch, bookkeeping(ddl()))
    assert "CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER meterline" in text
    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/cluster_wide/{database}/{table}', '{shard}-{replica}')"
        in text
    )
    assert formatted(ch, ddl().create_database()) == "CREATE DATABASE IF NOT EXISTS meterline ON CLUSTER meterline"


def test_snapshot_of_the_cluster_ddl() -> None:
    with override_settings(**SNAPSHOT_SETTINGS):
        text = render(cluster.current())
        printed = io.StringIO()
        call_command("migrate_clickhouse", "--print-sql", stdout=printed)  # what `make cluster-snapshot` runs
    assert SNAPSHOT.read_text() == text, "the cluster DDL changed: run `make cluster-snapshot` and review the diff"
    assert printed.getvalue() == text


# --- without the setting nothing changes --------------------------------------------------------


@pytest.fixture
def fresh(ch: ClickHouse) -> Iterator[ClickHouse]:
    """A second, empty database in the same engine, dropped afterwards."""
    other = ClickHouse(ch.url, "meterline_h16c_fresh_db")
    yield other
    ch.command("DROP DATABASE IF EXISTS meterline_h16c_fresh_db")
    other.close()


def test_without_the_setting_migrate_runs_the_statements_as_written(fresh: ClickHouse) -> None:
    sent: list[str] = []
    timed = fresh._timed

    def record(kind: str, caller: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(args[0]))  # the SQL of a command, the table of an insert
        return timed(kind, caller, fn, *args, **kwargs)

    fresh._timed = record  # type: ignore[method-assign]
    with override_settings(CLICKHOUSE_CLUSTER=None):
        assert cluster.current() is None
        ran = migrate(fresh)
        expected = ["CREATE DATABASE IF NOT EXISTS `meterline_h16c_fresh_db`", cluster.BOOKKEEPING_DDL]
        expected.append("SELECT version FROM schema_migrations FINAL")
        for m in discover():
            expected += m.statements()
            expected.append("schema_migrations")
        assert [m.version for m in ran] == [m.version for m in discover()]
        assert sent == expected
        assert plan() == [(m, m.written()) for m in discover()]
        assert local_names_unchanged()


def local_names_unchanged() -> bool:
    return cluster.local_table("llm_calls") == "llm_calls"


@override_settings(CLICKHOUSE_CLUSTER="meterline")
def test_local_table_names_the_shard_table_on_a_cluster() -> None:
    assert cluster.local_table("llm_calls") == "llm_calls_local"


# --- the rewrite, on migrations still to be written ---------------------------------------------

NEW_TABLE = """CREATE TABLE IF NOT EXISTS rollup_prefix_day  -- a table someone adds later
(
    project_id UInt64,
    bucket DateTime('UTC'),
    prompt_prefix_hash String CODEC(ZSTD(3)),
    calls UInt64,
    payload String TTL bucket + INTERVAL 30 DAY,
    version UInt64,
    INDEX hash_bloom prompt_prefix_hash TYPE bloom_filter(0.01) GRANULARITY 4,
    PROJECTION by_hash (SELECT * ORDER BY prompt_prefix_hash)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(bucket)
ORDER BY (project_id, bucket, prompt_prefix_hash)
TTL bucket + INTERVAL 90 DAY
SETTINGS index_granularity = 4096, deduplicate_merge_projection_mode = 'rebuild'"""


def test_a_new_table_with_indexes_and_projections(ch: ClickHouse) -> None:
    local, dist = ddl().rewrite(NEW_TABLE)
    text = formatted(ch, local)
    assert text.startswith("CREATE TABLE IF NOT EXISTS rollup_prefix_day_local ON CLUSTER meterline")
    assert f"ENGINE = ReplicatedReplacingMergeTree({KEEPER}, version)" in text
    for kept in ("INDEX hash_bloom", "PROJECTION by_hash", "CODEC(ZSTD(3))", "TTL bucket + toIntervalDay(30)",
                 "PARTITION BY toYYYYMM(bucket)", "ORDER BY (project_id, bucket, prompt_prefix_hash)",
                 "TTL bucket + toIntervalDay(90)", "index_granularity = 4096"):  # fmt: skip
        assert kept in text, kept
    assert "a table someone adds later" not in local  # comments go: they would swallow spliced text
    assert "AS rollup_prefix_day_local" in formatted(ch, dist)


def test_column_changes_reach_the_distributed_table_and_data_changes_stay_local(ch: ClickHouse) -> None:
    d = ddl()
    local, dist = d.rewrite(
        "ALTER TABLE llm_calls ADD COLUMN IF NOT EXISTS region LowCardinality(String) DEFAULT '' CODEC(ZSTD(1))"
        " TTL toDateTime(timestamp) + INTERVAL 1 DAY AFTER environment,\n"
        "    ADD INDEX IF NOT EXISTS region_set region TYPE set(100) GRANULARITY 2,\n"
        "    MODIFY COLUMN IF EXISTS user_id String CODEC(ZSTD(3)),\n"
        "    MODIFY COLUMN customer_id CODEC(ZSTD(3)),\n"
        "    COMMENT COLUMN region 'where the call ran'"
    )
    assert local.startswith("ALTER TABLE llm_calls_local ON CLUSTER meterline ADD COLUMN")
    for kept in ("ADD INDEX", "CODEC(ZSTD(1))", "MODIFY COLUMN"):
        assert kept in local
    assert dist == (
        "ALTER TABLE llm_calls ON CLUSTER meterline\n"
        "    ADD COLUMN IF NOT EXISTS region LowCardinality(String) DEFAULT '' AFTER environment,\n"
        "    MODIFY COLUMN IF EXISTS user_id String,\n"  # the type change, not the codec
        "    COMMENT COLUMN region 'where the call ran'"
    )  # the codec-only change of customer_id is not for a Distributed table
    for sql in (local, dist):
        formatted(ch, sql)
    # data-only actions: one statement, on the local tables
    for sql, expected in [
        ("ALTER TABLE llm_calls ADD PROJECTION p (SELECT * ORDER BY cost_pusd)",
         f"ALTER TABLE llm_calls_local {OC} ADD PROJECTION p (SELECT * ORDER BY cost_pusd)"),
        ("ALTER TABLE llm_calls MATERIALIZE PROJECTION p",
         f"ALTER TABLE llm_calls_local {OC} MATERIALIZE PROJECTION p"),
        ("ALTER TABLE llm_calls MODIFY TTL toDateTime(timestamp) + INTERVAL 200 DAY",
         f"ALTER TABLE llm_calls_local {OC} MODIFY TTL toDateTime(timestamp) + INTERVAL 200 DAY"),
        ("ALTER TABLE llm_calls DELETE WHERE project_id = 0",
         f"ALTER TABLE llm_calls_local {OC} DELETE WHERE project_id = 0"),
        ("ALTER TABLE feedback UPDATE score = 0, created_at = now() WHERE project_id = 0",
         f"ALTER TABLE feedback_local {OC} UPDATE score = 0, created_at = now() WHERE project_id = 0"),
        ("OPTIMIZE TABLE rollup_day FINAL", f"OPTIMIZE TABLE rollup_day_local {OC} FINAL"),
        ("DELETE FROM feedback WHERE project_id = 0", f"DELETE FROM feedback_local {OC} WHERE project_id = 0"),
        ("TRUNCATE TABLE IF EXISTS rollup_minute", f"TRUNCATE TABLE IF EXISTS rollup_minute_local {OC}"),
    ]:  # fmt: skip
        assert d.rewrite(sql) == [expected]
        formatted(ch, expected)
    # a dropped column leaves the Distributed table first; a dropped table takes both
    assert [s.split(" ON ")[0] for s in d.rewrite("ALTER TABLE llm_calls DROP COLUMN IF EXISTS region")] == [
        "ALTER TABLE llm_calls", "ALTER TABLE llm_calls_local"]  # fmt: skip
    assert d.rewrite("DROP TABLE IF EXISTS rollup_prefix_day SYNC") == [
        "DROP TABLE IF EXISTS rollup_prefix_day ON CLUSTER meterline SYNC",
        "DROP TABLE IF EXISTS rollup_prefix_day_local ON CLUSTER meterline SYNC",
    ]


def test_other_engines_and_views_live_on_every_node_and_dml_is_kept(ch: ClickHouse) -> None:
    d = ddl()
    [memo] = d.rewrite("CREATE TABLE IF NOT EXISTS scratch (project_id UInt64, n UInt32) ENGINE = Memory")
    assert (
        memo == "CREATE TABLE IF NOT EXISTS scratch ON CLUSTER meterline (project_id UInt64, n UInt32) ENGINE = Memory"
    )
    assert d.rewrite("ALTER TABLE scratch ADD COLUMN m UInt8") == [
        "ALTER TABLE scratch ON CLUSTER meterline ADD COLUMN m UInt8"
    ]
    assert d.rewrite("DROP TABLE scratch") == ["DROP TABLE scratch ON CLUSTER meterline"]
    [view] = d.rewrite(
        "CREATE VIEW IF NOT EXISTS spend AS SELECT project_id, sum(cost_pusd) FROM llm_calls GROUP BY project_id"
    )
    assert view.startswith("CREATE VIEW IF NOT EXISTS spend ON CLUSTER meterline AS SELECT")
    backfill = "INSERT INTO rollup_day SELECT * FROM rollup_day FINAL WHERE 0 -- through the Distributed tables"
    assert d.rewrite(backfill) == [backfill]
    for sql in (memo, view):
        formatted(ch, sql)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        (
            "CREATE MATERIALIZED VIEW mv TO rollup_day AS SELECT * FROM llm_calls",
            "CREATE MATERIALIZED needs a hand-written",
        ),
        ("RENAME TABLE llm_calls TO calls", "not a statement the cluster rewrite knows"),
        ("CREATE TABLE t ON CLUSTER x (project_id UInt64) ENGINE = MergeTree ORDER BY project_id", "no ON CLUSTER"),
        (
            "CREATE TABLE t (project_id UInt64) ENGINE = ReplicatedMergeTree ORDER BY project_id",
            "write the plain engine",
        ),
        ("CREATE TABLE t (id UInt64) ENGINE = MergeTree ORDER BY id", "needs a project_id column"),
        ("CREATE TABLE t AS llm_calls", "must list its columns"),
        ("ALTER TABLE llm_calls ATTACH PARTITION 202611 FROM other", "naming a second table"),
        ("SYSTEM SYNC REPLICA llm_calls", "not a statement the cluster rewrite knows"),
    ],
)
def test_what_the_rewrite_refuses_names_the_statement(sql: str, reason: str) -> None:
    with pytest.raises(ClusterDDLError, match=reason) as caught:
        ddl().rewrite(sql)
    assert "cannot make cluster DDL of" in str(caught.value)


def test_names_are_quoted_when_they_need_it(ch: ClickHouse) -> None:
    d = ClusterDDL("prod-eu.1", "ledger db")
    local, dist = d.rewrite(
        "CREATE TABLE `my calls` (project_id UInt64, v UInt64) ENGINE = ReplacingMergeTree(v) ORDER BY project_id"
    )
    assert local.startswith("CREATE TABLE `my calls_local` ON CLUSTER `prod-eu.1`")
    assert "Distributed('prod-eu.1', 'ledger db', 'my calls_local', cityHash64(project_id))" in dist
    for sql in (local, dist, d.create_database(), d.bookkeeping()):
        formatted(ch, sql)


@override_settings(CLICKHOUSE_CLUSTER="meterline")
def test_on_a_cluster_every_statement_carries_the_distributed_settings(ch: ClickHouse) -> None:
    names = list(cluster.CLIENT_SETTINGS)
    row = ch.query("SELECT " + ", ".join(f"toString(getSetting('{n}'))" for n in names)).result_rows[0]
    assert dict(zip(names, row, strict=True)) == {
        "distributed_foreground_insert": "true",
        "distributed_product_mode": "local",
        "optimize_skip_unused_shards": "true",
        "load_balancing": "in_order",
        "prefer_localhost_replica": "false",
    }
    with override_settings(CLICKHOUSE_CLUSTER=None):
        assert ch.query("SELECT toString(getSetting('distributed_product_mode'))").result_rows[0][0] == "deny"
