"""The cluster form of the migrations: ``CLICKHOUSE_CLUSTER=<name>`` turns each single-node statement
into replicated and distributed DDL that runs ``ON CLUSTER``.

Migrations are written for one node (``ledger/clickhouse/migrations/*.sql``); :class:`ClusterDDL`
parses each statement (a small SQL tokenizer: strings, quoted names, comments and brackets are
respected) and rewrites it. Without the setting nothing here runs and the statements go out as
written, byte for byte.

The layout (ClickHouse's standard one):

- Every ``CREATE TABLE t (...) ENGINE = XMergeTree(args) ...`` becomes two tables. ``t_local`` is
  ``ReplicatedXMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', args)`` on
  every node, with everything else kept as written: columns, skip indexes and projections, the
  version column, ``PARTITION BY``, ``ORDER BY``, ``TTL`` and ``SETTINGS``. ``t`` is a
  ``Distributed`` table over the ``t_local`` tables, ``AS t_local``, sharded by
  ``cityHash64(project_id)``.
- The application keeps reading and writing ``t``: every query and insert goes through the
  Distributed tables unchanged. All rows of one project, and so every copy and every version of one
  event and every rollup row of that project, live on one shard: ReplacingMergeTree collapses them
  there, ``FINAL`` through a Distributed table is exact (it is applied on each shard), and joins and
  ``IN`` subqueries between two tables can run shard-locally (``distributed_product_mode='local'``,
  see :data:`CLIENT_SETTINGS`).
- ``ALTER TABLE t`` runs on ``t_local``; the column changes among its actions (``ADD``, ``DROP``,
  ``MODIFY``, ``RENAME`` and ``COMMENT COLUMN``) also run on ``t`` so the Distributed table shows the
  same columns (codecs, column TTLs and statistics, which a Distributed table cannot hold, are left
  out there). Index, projection, TTL, setting and partition actions and mutations
  (``ALTER … UPDATE/DELETE``) stay on ``t_local``; ON CLUSTER runs them once per shard.
- ``OPTIMIZE``, ``TRUNCATE`` and ``DELETE FROM`` act on ``t_local``; ``DROP TABLE`` drops both.
- A table with another engine (``Memory``, ``Null``, ``Kafka``, …) and a plain ``VIEW`` are created on
  every node under their own names (``ON CLUSTER``, nothing else changes); a view reads the
  Distributed tables by their names, so it sees the whole cluster.
- ``INSERT`` and ``SELECT`` statements (a backfill, say) are left as they are: they go through the
  Distributed tables like the application does.
- The bookkeeping table ``schema_migrations`` is replicated to every node of the cluster (one Keeper
  path for all shards), so any node answers which migrations ran.

Rules for writing a migration (they keep the rewrite mechanical):

1. Write it for one node: plain engines (``ReplacingMergeTree(version)``, never ``Replicated…``),
   no ``ON CLUSTER``, unqualified table names.
2. A MergeTree table lists its columns (no ``CREATE TABLE … AS other``) and has a ``project_id``
   column: it is the sharding key.
3. Put skip indexes and projections in the column list or in ``ALTER TABLE … ADD INDEX / ADD
   PROJECTION / MATERIALIZE …``: all of them land on ``t_local``, where the data is.
4. Statements that are refused, with an error naming the statement: ``CREATE MATERIALIZED VIEW``,
   ``DICTIONARY`` and ``FUNCTION`` (they need a hand-written cluster form: the view on the
   ``_local`` source feeding a ``_local`` target), ``RENAME``/``EXCHANGE`` (the Distributed table
   names its local table), partition actions naming a second table (``ATTACH/REPLACE PARTITION …
   FROM``, ``MOVE PARTITION … TO TABLE``), and anything else not listed above.
5. Code that must reach the per-shard tables (``system.parts``, a mutation, ``OPTIMIZE``) names
   ``local_table(t)`` (``t_local`` on a cluster, ``t`` on one node) and runs ``ON CLUSTER``.

``python manage.py migrate_clickhouse --print-sql`` prints what would run, for the current settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

LOCAL_SUFFIX = "_local"
SHARDING_KEY = "cityHash64(project_id)"
SHARDING_COLUMN = "project_id"
KEEPER_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
REPLICA_NAME = "{replica}"
# schema_migrations: one replica set spanning every node (replica names are unique across shards).
EVERYWHERE_KEEPER_PATH = "/clickhouse/tables/cluster_wide/{database}/{table}"
EVERYWHERE_REPLICA_NAME = "{shard}-{replica}"

# Settings every statement carries on a cluster (ledger.clickhouse.client adds them):
# - distributed_foreground_insert: an insert into a Distributed table returns once the shards hold
#   the rows (not once they are queued on the receiving node), so a drain marks a batch done only
#   when it is durable, the insert_deduplication_token reaches the shard, and the rollup that
#   follows reads the rows;
# - distributed_product_mode='local': an IN/JOIN subquery over a Distributed table inside a
#   distributed query reads the shard's own table (every table is sharded by project_id alike);
# - optimize_skip_unused_shards: a query for one project_id is sent to that project's shard only;
# - load_balancing='in_order' with prefer_localhost_replica=0: every node sends reads and writes of
#   a shard to its first healthy replica, so a rollup reads the replica the drain just wrote to
#   rather than one still fetching the part.
CLIENT_SETTINGS: dict[str, int | str] = {
    "distributed_foreground_insert": 1,
    "distributed_product_mode": "local",
    "optimize_skip_unused_shards": 1,
    "load_balancing": "in_order",
    "prefer_localhost_replica": 0,
}

BOOKKEEPING_TABLE = "schema_migrations"
BOOKKEEPING_DDL = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, "
    "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
    "ENGINE = ReplacingMergeTree ORDER BY version"
)

_COLUMN_ACTIONS = {"ADD", "DROP", "MODIFY", "RENAME", "COMMENT"}
_NOT_COLUMNS = {"INDEX", "PROJECTION", "CONSTRAINT", "STATISTICS"}
_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
      | (?P<str>'(?:[^'\\]|\\.|'')*')
      | (?P<ident>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.)*"|[A-Za-z_][A-Za-z0-9_$]*)
      | (?P<num>\d[\w.]*)
      | (?P<punct>.)""",
    re.VERBOSE | re.DOTALL,
)
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClusterDDLError(ValueError):
    """A migration statement the cluster rewrite cannot turn into ON CLUSTER DDL (see the rules)."""


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    start: int
    end: int

    @property
    def word(self) -> str:
        return self.text.upper() if self.kind == "ident" and self.text[0] not in '`"' else ""


def strip_comments(sql: str) -> str:
    """``sql`` without its comments (strings and quoted names kept as they are)."""
    out: list[str] = []
    for m in _TOKEN.finditer(sql):
        if m.lastgroup != "comment":
            out.append(m.group())
        elif out and not out[-1].strip():  # the spaces before a trailing comment go with it
            out[-1] = out[-1].rstrip(" \t")
    return "".join(out).strip()


def _tokens(sql: str) -> list[_Tok]:
    found = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup or "punct"
        if kind not in ("ws", "comment"):
            found.append(_Tok(kind, m.group(), m.start(), m.end()))
    return found


def _nesting(tok: _Tok) -> int:
    """+1 for an opening bracket, -1 for a closing one, else 0."""
    if tok.kind != "punct":
        return 0
    return 1 if tok.text in ("(", "[") else -1 if tok.text in (")", "]") else 0


def _close(toks: list[_Tok], i: int) -> int:
    """The index of the bracket closing the one at ``i``."""
    depth = 0
    for j in range(i, len(toks)):
        depth += _nesting(toks[j])
        if depth == 0:
            return j
    raise ClusterDDLError("unbalanced brackets")


def _split(toks: list[_Tok], start: int, stop: int) -> list[tuple[int, int]]:
    """Token index ranges [a, b) of the comma-separated items of toks[start:stop] at depth 0."""
    items, depth, a = [], 0, start
    for j in range(start, stop):
        depth += _nesting(toks[j])
        if depth == 0 and toks[j].kind == "punct" and toks[j].text == ",":
            items.append((a, j))
            a = j + 1
    if a < stop:
        items.append((a, stop))
    return items


def _unquote(name: str) -> str:
    return name[1:-1] if name[:1] in '`"' else name


def _quote(name: str) -> str:
    return name if _PLAIN_NAME.match(name) else "`" + name.replace("`", "``") + "`"


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def local_name(table: str) -> str:
    """The per-shard table behind the Distributed table ``table``."""
    return table + LOCAL_SUFFIX


def local_table(table: str) -> str:
    """The table that holds ``table``'s rows on this node: ``table_local`` on a cluster, else ``table``.

    For code that must reach the data itself (``system.parts``, mutations, ``OPTIMIZE``); queries and
    inserts use ``table``, the Distributed table, and never need this."""
    return local_name(table) if settings.CLICKHOUSE_CLUSTER else table


@dataclass(frozen=True)
class _Name:
    """A table name in a statement: tokens [first, last] of ``db.table`` or ``table``."""

    first: int
    last: int
    database: str | None
    table: str


@dataclass
class ClusterDDL:
    """Rewrites single-node migration statements for the cluster ``cluster`` (database ``database``).

    Feed it every migration's statements in order (applied ones too): it remembers which tables are
    per-node (not sharded), so a later ALTER or DROP of one is rewritten as such."""

    cluster: str
    database: str
    per_node: set[str] = field(default_factory=set)

    @property
    def on_cluster(self) -> str:
        return f"ON CLUSTER {_quote(self.cluster)}"

    # -- entry points ----------------------------------------------------------------------------

    def create_database(self) -> str:
        """What ``ClickHouse.bootstrap(on_cluster=…)`` runs (shown by ``--print-sql``)."""
        return f"CREATE DATABASE IF NOT EXISTS `{self.database}` {self.on_cluster}"

    def bookkeeping(self) -> str:
        """``schema_migrations``, replicated to every node."""
        sql = BOOKKEEPING_DDL
        toks = _tokens(sql)
        name = self._name(toks, 5)
        engine = self._engine(toks, _close(toks, name.last + 1) + 1)
        if engine is None:
            raise ClusterDDLError("schema_migrations has no engine")
        return self._replicated(sql, toks, name, self._local_engine(sql, toks, engine, everywhere=True), rename=False)

    def rewrite_all(self, statements: Iterable[str]) -> list[str]:
        return [out for statement in statements for out in self.rewrite(statement)]

    def rewrite(self, statement: str) -> list[str]:
        """The cluster statements for one single-node ``statement``, in the order they must run."""
        sql = strip_comments(statement)
        toks = _tokens(sql)
        words = [t.word for t in toks[:4]]
        head = words[0] if words else ""
        try:
            if head == "CREATE":
                return self._create(sql, toks)
            if head == "ALTER" and words[1] == "TABLE":
                return self._alter(sql, toks)
            if head == "DROP" and words[1] in ("TABLE", "VIEW"):
                return self._drop(sql, toks)
            if head == "OPTIMIZE" and words[1] == "TABLE":
                return [self._on_local(sql, toks, self._name(toks, 2))]
            if head == "TRUNCATE":
                return [self._on_local(sql, toks, self._name(toks, self._skip(toks, 1, "TABLE", "IF", "EXISTS")))]
            if head == "DELETE" and words[1] == "FROM":
                return [self._on_local(sql, toks, self._name(toks, 2))]
            if head in ("INSERT", "SELECT", "WITH"):
                return [statement]
        except (IndexError, ClusterDDLError) as exc:
            raise ClusterDDLError(f"cannot make cluster DDL of {_excerpt(sql)}: {exc}") from None
        raise ClusterDDLError(
            f"cannot make cluster DDL of {_excerpt(sql)}: not a statement the cluster rewrite knows "
            "(see the rules in ledger/clickhouse/cluster.py)"
        )

    # -- statements ------------------------------------------------------------------------------

    def _create(self, sql: str, toks: list[_Tok]) -> list[str]:
        i = self._skip(toks, 1, "OR", "REPLACE")
        kind = toks[i].word
        if kind == "VIEW":
            name = self._name(toks, self._skip(toks, i + 1, "IF", "NOT", "EXISTS"))
            self.per_node.add(name.table)
            return [self._splice(sql, toks, name, name.table)]
        if kind != "TABLE":
            raise ClusterDDLError(f"CREATE {kind} needs a hand-written cluster form")
        name = self._name(toks, self._skip(toks, i + 1, "IF", "NOT", "EXISTS"))
        j = name.last + 1
        if j >= len(toks) or toks[j].text != "(":
            raise ClusterDDLError("a table must list its columns (CREATE TABLE … AS is not rewritten)")
        columns_end = _close(toks, j)
        engine = self._engine(toks, columns_end + 1)
        if engine is None or not toks[engine].text.endswith("MergeTree"):
            self.per_node.add(name.table)
            return [self._splice(sql, toks, name, name.table)]
        if toks[engine].text.startswith("Replicated"):
            raise ClusterDDLError("write the plain engine: the cluster rewrite adds the replication")
        columns = {
            _unquote(toks[a].text) for a, _ in _split(toks, j + 1, columns_end) if toks[a].word not in _NOT_COLUMNS
        }
        if SHARDING_COLUMN not in columns:
            raise ClusterDDLError(f"a sharded table needs a {SHARDING_COLUMN} column")
        local = self._replicated(sql, toks, name, self._local_engine(sql, toks, engine), rename=True)
        head = sql[: toks[name.first].start]
        distributed = (
            f"{head}{self._qualified(name, name.table)} {self.on_cluster}\n"
            f"AS {self._qualified(name, local_name(name.table))}\n"
            f"ENGINE = Distributed({_literal(self.cluster)}, {_literal(name.database or self.database)}, "
            f"{_literal(local_name(name.table))}, {SHARDING_KEY})"
        )
        return [local, distributed]

    def _alter(self, sql: str, toks: list[_Tok]) -> list[str]:
        name = self._name(toks, 2)
        if name.table in self.per_node:
            return [self._splice(sql, toks, name, name.table)]
        actions = _split(toks, name.last + 1, len(toks))
        shown = []
        for a, b in actions:
            verb, what = toks[a].word, toks[a + 1].word if a + 1 < b else ""
            if verb in ("ATTACH", "REPLACE", "MOVE") and any(t.word in ("FROM", "TO") for t in toks[a:b]):
                raise ClusterDDLError("a partition action naming a second table is not rewritten")
            if verb in _COLUMN_ACTIONS and what == "COLUMN":
                column = self._column_for_distributed(sql, toks, a, b)
                if column:
                    shown.append(column)
        local = self._splice(sql, toks, name, local_name(name.table))
        if not shown:
            return [local]
        distributed = f"ALTER TABLE {self._qualified(name, name.table)} {self.on_cluster}\n    " + ",\n    ".join(shown)
        drops = any(s.upper().startswith("DROP") for s in shown)
        return [distributed, local] if drops else [local, distributed]

    def _drop(self, sql: str, toks: list[_Tok]) -> list[str]:
        name = self._name(toks, self._skip(toks, 2, "IF", "EXISTS"))
        if name.table in self.per_node or toks[1].word == "VIEW":
            return [self._splice(sql, toks, name, name.table)]
        return [self._splice(sql, toks, name, name.table), self._splice(sql, toks, name, local_name(name.table))]

    def _on_local(self, sql: str, toks: list[_Tok], name: _Name) -> str:
        target = name.table if name.table in self.per_node else local_name(name.table)
        return self._splice(sql, toks, name, target)

    # -- pieces ----------------------------------------------------------------------------------

    @staticmethod
    def _skip(toks: list[_Tok], i: int, *words: str) -> int:
        """Past any of ``words`` (in order, each optional) from ``i``."""
        for word in words:
            if i < len(toks) and toks[i].word == word:
                i += 1
        return i

    def _name(self, toks: list[_Tok], i: int) -> _Name:
        if toks[i].kind != "ident":
            raise ClusterDDLError("expected a table name")
        if i + 2 < len(toks) and toks[i + 1].text == "." and toks[i + 2].kind == "ident":
            name = _Name(i, i + 2, _unquote(toks[i].text), _unquote(toks[i + 2].text))
        else:
            name = _Name(i, i, None, _unquote(toks[i].text))
        after = name.last + 1
        if after + 1 < len(toks) and toks[after].word == "ON" and toks[after + 1].word == "CLUSTER":
            raise ClusterDDLError("write migrations for one node: no ON CLUSTER")
        return name

    def _qualified(self, name: _Name, table: str) -> str:
        return (f"{_quote(name.database)}." if name.database else "") + _quote(table)

    def _splice(self, sql: str, toks: list[_Tok], name: _Name, table: str) -> str:
        """``sql`` with the table name replaced by ``table`` and followed by ON CLUSTER."""
        start, end = toks[name.first].start, toks[name.last].end
        return f"{sql[:start]}{self._qualified(name, table)} {self.on_cluster}{sql[end:]}"

    @staticmethod
    def _engine(toks: list[_Tok], i: int) -> int | None:
        """The index of the engine name token after ``ENGINE [=]`` at depth 0 from ``i``."""
        depth = 0
        for j in range(i, len(toks)):
            depth += _nesting(toks[j])
            if depth == 0 and toks[j].word == "ENGINE":
                return j + 2 if toks[j + 1].text == "=" else j + 1
        return None

    def _local_engine(
        self, sql: str, toks: list[_Tok], engine: int, *, everywhere: bool = False
    ) -> tuple[int, int, str]:
        """(start char, end char, text) of the engine call and its replicated form."""
        path, replica = (EVERYWHERE_KEEPER_PATH, EVERYWHERE_REPLICA_NAME) if everywhere else (KEEPER_PATH, REPLICA_NAME)
        arguments = [_literal(path), _literal(replica)]
        end = toks[engine].end
        if engine + 1 < len(toks) and toks[engine + 1].text == "(":
            close = _close(toks, engine + 1)
            inner = sql[toks[engine + 1].end : toks[close].start].strip()
            if inner:
                arguments.append(inner)
            end = toks[close].end
        return toks[engine].start, end, f"Replicated{toks[engine].text}({', '.join(arguments)})"

    def _replicated(
        self, sql: str, toks: list[_Tok], name: _Name, engine: tuple[int, int, str], *, rename: bool
    ) -> str:
        table = local_name(name.table) if rename else name.table
        start, end = toks[name.first].start, toks[name.last].end
        e_start, e_end, e_text = engine
        return f"{sql[:start]}{self._qualified(name, table)} {self.on_cluster}{sql[end:e_start]}{e_text}{sql[e_end:]}"

    @staticmethod
    def _column_for_distributed(sql: str, toks: list[_Tok], a: int, b: int) -> str | None:
        """The column action [a, b) as a Distributed table takes it: without codec, column TTL,
        statistics or column settings; None when nothing is left for it (e.g. MODIFY COLUMN x CODEC(…))."""
        verb = toks[a].word
        if verb == "MODIFY" and any(t.word in ("REMOVE", "SETTING", "SETTINGS") for t in toks[a:b]):
            return None
        keep: list[tuple[int, int]] = []
        j = a
        while j < b:
            word = toks[j].word
            if word in ("CODEC", "STATISTICS") and j + 1 < b and toks[j + 1].text == "(":
                j = _close(toks, j + 1) + 1
                continue
            if word == "TTL" and verb in ("ADD", "MODIFY"):
                j += 1
                depth = 0
                while j < b and not (depth == 0 and toks[j].word in ("AFTER", "FIRST", "SETTINGS")):
                    depth += _nesting(toks[j])
                    j += 1
                continue
            keep.append((toks[j].start, toks[j].end))
            j += 1
        if verb == "MODIFY":
            # A codec- or TTL-only change (nothing after the column's name is left) is not for a Distributed table.
            name_at = a + (4 if a + 3 < b and toks[a + 2].word == "IF" and toks[a + 3].word == "EXISTS" else 2)
            if not any(start > toks[name_at].start for start, _ in keep):
                return None
        return _join(sql, keep)


def _join(sql: str, spans: list[tuple[int, int]]) -> str:
    """The text of consecutive token spans, keeping the original spacing between adjacent ones."""
    out: list[str] = []
    previous_end: int | None = None
    for start, end in spans:
        if previous_end is not None:
            gap = sql[previous_end:start]
            out.append(gap if gap.strip() == "" else " ")
        out.append(sql[start:end])
        previous_end = end
    return "".join(out)


def _excerpt(sql: str) -> str:
    flat = " ".join(sql.split())
    return repr(flat if len(flat) <= 80 else flat[:77] + "...")


def current() -> ClusterDDL | None:
    """The rewriter for ``CLICKHOUSE_CLUSTER`` (None: one node, statements go out as written)."""
    name = settings.CLICKHOUSE_CLUSTER
    return ClusterDDL(name, settings.CLICKHOUSE_DATABASE) if name else None
