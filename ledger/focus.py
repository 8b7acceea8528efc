"""FOCUS 1.2 cost rows (the FinOps Foundation's open cost format) from the raw ledger.

One row per charge period (a UTC day, clipped to the range asked for), provider, model, token class
(uncached input, cache read, cache write, output, reasoning) and attribution (feature, customer,
route version, environment). ``BilledCost`` is the ledger's own cost, split across token classes so
that the rows of a call add up to its ``cost_pusd`` exactly:

- a call priced from its parts (catalogue or override) bills each part as stored;
- a call whose cost was reported by the provider bills the reported total, allocated over its
  stored parts (or, without a price, its token counts) by cumulative floor division, which telescopes
  to the total exactly;
- an app cache hit (no provider call) bills nothing and consumes nothing: it has no rows;
- an unpriced call bills 0; ``x_UnpricedCalls`` counts such calls in the row and its unit price is empty.

The per-call split runs in ClickHouse (integers), so money never goes through a float. Rows come out
a month of charge days at a time (:func:`focus_rows`), so a long export is streamed, not built in memory.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

from django.conf import settings

from ledger.clickhouse.client import get_clickhouse
from ledger.measures import raw_calls_where
from ledger.queries import DIMENSIONS, QueryError
from tenancy.models import Project

FOCUS_VERSION = "1.2"
MAX_RANGE = timedelta(days=400)
CHUNK_DAYS = 31
PRICING_UNIT_TOKENS = 1_000_000
PRICING_UNIT = "1000000 Tokens"
CONSUMED_UNIT = "Tokens"
SERVICE_CATEGORY = "AI and Machine Learning"
SERVICE_SUBCATEGORY = "Generative AI"
MONEY_PLACES = 12
QUANTITY_PLACES = 6

# (x_TokenClass, SkuMeter), in the order of the raw table's cost parts.
TOKEN_CLASSES = (
    ("input", "Uncached Input Tokens"),
    ("cache_read", "Cache Read Tokens"),
    ("cache_write", "Cache Write Tokens"),
    ("output", "Output Tokens"),
    ("reasoning", "Reasoning Tokens"),
)
ATTRIBUTION = ("feature", "customer_id", "route_version", "environment")
# The Tags object's keys (FOCUS: a JSON object of key-value pairs); empty values are left out.
TAG_KEYS = {
    "feature": "feature",
    "customer_id": "customer",
    "route_version": "route_version",
    "environment": "environment",
}

MONEY, PRICE, QUANTITY, TIME, TEXT, JSON_TEXT, COUNT = "money", "price", "quantity", "time", "text", "json", "count"
# Every column of the export, in order: FOCUS columns (alphabetical), then Meterline's own (x_).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("BilledCost", MONEY),
    ("BillingAccountId", TEXT),
    ("BillingAccountName", TEXT),
    ("BillingCurrency", TEXT),
    ("BillingPeriodEnd", TIME),
    ("BillingPeriodStart", TIME),
    ("ChargeCategory", TEXT),
    ("ChargeClass", TEXT),
    ("ChargeDescription", TEXT),
    ("ChargeFrequency", TEXT),
    ("ChargePeriodEnd", TIME),
    ("ChargePeriodStart", TIME),
    ("ConsumedQuantity", QUANTITY),
    ("ConsumedUnit", TEXT),
    ("ContractedCost", MONEY),
    ("ContractedUnitPrice", PRICE),
    ("EffectiveCost", MONEY),
    ("InvoiceIssuerName", TEXT),
    ("ListCost", MONEY),
    ("ListUnitPrice", PRICE),
    ("PricingCategory", TEXT),
    ("PricingQuantity", QUANTITY),
    ("PricingUnit", TEXT),
    ("ProviderName", TEXT),
    ("PublisherName", TEXT),
    ("ServiceCategory", TEXT),
    ("ServiceName", TEXT),
    ("ServiceSubcategory", TEXT),
    ("SkuId", TEXT),
    ("SkuMeter", TEXT),
    ("SkuPriceId", TEXT),
    ("SubAccountId", TEXT),
    ("SubAccountName", TEXT),
    ("Tags", JSON_TEXT),
    ("x_Calls", COUNT),
    ("x_CustomerId", TEXT),
    ("x_Environment", TEXT),
    ("x_Feature", TEXT),
    ("x_Model", TEXT),
    ("x_PriceRef", TEXT),
    ("x_ReportedCostCalls", COUNT),
    ("x_RouteVersion", TEXT),
    ("x_TokenClass", TEXT),
    ("x_UnpricedCalls", COUNT),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)

# Per call: token quantities and stored cost parts per class (1-based arrays), the billed split, then
# one row per class. `w` weighs the allocation of a total that is not the parts' sum (a reported cost,
# or 0 for an app cache hit): the parts, else the tokens, else all on uncached input.
_SQL = """
SELECT
    day, provider, model, feature, customer_id, route_version, environment, cls,
    sum(qty) AS quantity,
    sum(billed) AS billed,
    count() AS calls,
    countIf(cost_source = 'unpriced') AS unpriced_calls,
    countIf(cost_source = 'reported') AS reported_calls,
    arrayStringConcat(arraySort(groupUniqArray(price_ref)), ' | ') AS price_refs
FROM (
    SELECT
        toStartOfDay(timestamp, 'UTC') AS day,
        toString(provider) AS provider, toString(model) AS model, toString(feature) AS feature, customer_id,
        toString(route_version) AS route_version, toString(environment) AS environment,
        toString(cost_source) AS cost_source, toString(price_ref) AS price_ref,
        [toInt128(input_tokens) - cache_read_tokens - cache_write_tokens, toInt128(cache_read_tokens),
         toInt128(cache_write_tokens), toInt128(output_tokens) - reasoning_tokens, toInt128(reasoning_tokens)] AS q,
        [toInt128(cost_input_pusd), toInt128(cost_cache_read_pusd), toInt128(cost_cache_write_pusd),
         toInt128(cost_output_pusd), toInt128(cost_reasoning_pusd)] AS p,
        toInt128(cost_pusd) AS total,
        if(arraySum(p) > 0, p, if(arraySum(q) > 0, q, [toInt128(1), 0, 0, 0, 0])) AS w,
        arrayCumSum(w) AS cw,
        arraySum(w) AS ws,
        if(arraySum(p) = total, p,
           arrayMap(k -> intDiv(total * cw[k], ws) - if(k = 1, toInt128(0), intDiv(total * cw[k - 1], ws)),
                    range(1, 6))) AS b,
        arrayJoin([1, 2, 3, 4, 5]) AS cls,
        q[cls] AS qty,
        b[cls] AS billed
    FROM llm_calls FINAL
    WHERE $where AND NOT cache_hit
)
GROUP BY day, provider, model, feature, customer_id, route_version, environment, cls
HAVING quantity != 0 OR billed != 0
ORDER BY day, provider, model, feature, customer_id, route_version, environment, cls
"""


@dataclass(frozen=True)
class FocusQuery:
    """One project's calls in [start, end), optionally narrowed by dimension filters."""

    project_id: int
    start: datetime
    end: datetime
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    customers: bool = True  # False: customer ids are left out (for roles that see aggregates only)


def validate(q: FocusQuery) -> None:
    """Raise :class:`QueryError` with a clear message for a bad range or filter."""
    for name, value in (("from", q.start), ("to", q.end)):
        if value.tzinfo is None:
            raise QueryError(f"{name} needs a UTC offset")
    if q.start >= q.end:
        raise QueryError("from must be before to")
    if q.end - q.start > MAX_RANGE:
        raise QueryError(f"a FOCUS export covers at most {MAX_RANGE.days} days; split the range")
    unknown = [d for d in q.filters if d not in DIMENSIONS]
    if unknown:
        raise QueryError(f"unknown dimension {unknown[0]!r}; known: {', '.join(DIMENSIONS)}")
    days = settings.CLICKHOUSE_RAW_TTL_DAYS
    if q.start < datetime.now(UTC) - timedelta(days=days):
        raise QueryError(f"the FOCUS export reads single calls, which are kept {days} days; choose a later from")


def _chunks(start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) in pieces of :data:`CHUNK_DAYS` whole UTC days (the first and last clipped): one
    query each, so a long export holds one piece in memory. (A query per day would pay ClickHouse's
    per-statement cost hundreds of times.)"""
    day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        following = day + timedelta(days=CHUNK_DAYS)
        yield max(day, start), min(following, end)
        day = following


def _billing_period(day: datetime) -> tuple[datetime, datetime]:
    first = day.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return first, (first + timedelta(days=32)).replace(day=1)


def _usd(pusd: int) -> Decimal:
    return Decimal(pusd).scaleb(-MONEY_PLACES)


def unit_price(billed_pusd: int, tokens: int) -> Decimal | None:
    """USD per :data:`PRICING_UNIT` (12 places): exact when the row's calls share one whole-pico rate
    (cost × 10^6 divides by the tokens), else the row's average rate rounded half-even; None without tokens."""
    if tokens <= 0:
        return None
    return _usd(round(Fraction(billed_pusd * PRICING_UNIT_TOKENS, tokens)))


def focus_rows(q: FocusQuery) -> Iterator[dict[str, Any]]:
    """The export's rows as Python values (Decimal money, UTC datetimes), in charge-day order.

    Each piece of :data:`CHUNK_DAYS` days is one query; raises :class:`QueryError` for a bad query."""
    validate(q)
    project = Project.objects.select_related("organization").get(pk=q.project_id)
    org = project.organization
    account = {
        "BillingAccountId": f"org-{org.pk}",
        "BillingAccountName": org.name,
        "SubAccountId": f"project-{project.pk}",
        "SubAccountName": project.name,
    }
    for start, end in _chunks(q.start, q.end):
        params: dict[str, Any] = {"project": q.project_id, "start": start, "end": end}
        where = raw_calls_where(q.filters, params)
        result = get_clickhouse().query(_SQL.replace("$where", where), parameters=params, caller="ledger.focus")
        for values in result.result_rows:
            r = dict(zip(result.column_names, values, strict=True))
            day = r["day"].replace(tzinfo=UTC) if r["day"].tzinfo is None else r["day"].astimezone(UTC)
            period = (max(day, q.start), min(day + timedelta(days=1), q.end))
            yield _row(r, period, _billing_period(day), account, q.customers)


def _row(
    r: dict[str, Any],
    charge: tuple[datetime, datetime],
    period: tuple[datetime, datetime],
    account: dict[str, str],
    customers: bool,
) -> dict[str, Any]:
    token_class, meter = TOKEN_CLASSES[int(r["cls"]) - 1]
    provider, model = r["provider"], r["model"]
    billed, tokens = int(r["billed"]), int(r["quantity"])
    cost = _usd(billed)
    price = None if r["unpriced_calls"] else unit_price(billed, tokens)
    attribution = {d: r[d] for d in ATTRIBUTION}
    if not customers:
        attribution["customer_id"] = ""
    tags = {TAG_KEYS[d]: v for d, v in attribution.items() if v}
    sku = f"{provider}/{model}/{token_class}"
    return {
        "BilledCost": cost,
        **account,
        "BillingCurrency": "USD",
        "BillingPeriodEnd": period[1],
        "BillingPeriodStart": period[0],
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": f"{meter} of {model} ({provider})",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": charge[1],
        "ChargePeriodStart": charge[0],
        "ConsumedQuantity": Decimal(tokens).quantize(Decimal(1).scaleb(-QUANTITY_PLACES)),
        "ConsumedUnit": CONSUMED_UNIT,
        "ContractedCost": cost,
        "ContractedUnitPrice": price,
        "EffectiveCost": cost,
        "InvoiceIssuerName": provider,
        "ListCost": cost,
        "ListUnitPrice": price,
        "PricingCategory": "Standard",
        "PricingQuantity": Decimal(tokens).scaleb(-QUANTITY_PLACES),
        "PricingUnit": PRICING_UNIT,
        "ProviderName": provider,
        "PublisherName": provider,
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceName": f"{provider} API",
        "ServiceSubcategory": SERVICE_SUBCATEGORY,
        "SkuId": sku,
        "SkuMeter": meter,
        "SkuPriceId": f"{sku}@{r['price_refs'] or 'unpriced'}",
        "Tags": tags,
        "x_Calls": int(r["calls"]),
        "x_CustomerId": attribution["customer_id"],
        "x_Environment": attribution["environment"],
        "x_Feature": attribution["feature"],
        "x_Model": model,
        "x_PriceRef": r["price_refs"],
        "x_ReportedCostCalls": int(r["reported_calls"]),
        "x_RouteVersion": attribution["route_version"],
        "x_TokenClass": token_class,
        "x_UnpricedCalls": int(r["unpriced_calls"]),
    }


# --- encodings ---------------------------------------------------------------------------------

# The encodings and their media types.
FORMATS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


def export_format(value: str | None) -> str:
    """The ``format`` parameter (default csv), or :class:`QueryError`."""
    fmt = (value or "csv").strip().lower()
    if fmt not in FORMATS:
        raise QueryError(f"format must be one of {', '.join(FORMATS)}")
    return fmt


def encode(q: FocusQuery, fmt: str) -> Iterator[str] | bytes:
    """The export in ``fmt``: CSV as pieces to stream, Parquet as one file. The first piece of the
    range is queried before this returns, so a bad query or a store outage raises here, not mid-answer."""
    return focus_csv(q) if fmt == "csv" else focus_parquet(q)


def filename(project_name: str, q: FocusQuery, fmt: str) -> str:
    """An attachment name safe in a header: ``focus-<project>-<from>-<to>.<fmt>``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", project_name)[:80] or "project"
    return f"focus-{safe}-{q.start:%Y%m%d}-{q.end:%Y%m%d}.{fmt}"


@lru_cache(maxsize=4096)
def _time_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # a few distinct days per export: cached


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_TEXT: dict[str, Any] = {
    MONEY: lambda v: f"{v:.{MONEY_PLACES}f}",
    PRICE: lambda v: f"{v:.{MONEY_PLACES}f}",
    QUANTITY: lambda v: f"{v:.{QUANTITY_PLACES}f}",
    TIME: _time_text,
    JSON_TEXT: _json_text,
    TEXT: str,
    COUNT: str,
}
_CSV_COLUMNS = tuple((name, _TEXT[kind]) for name, kind in COLUMNS)


def _csv_row(row: dict[str, Any]) -> list[str]:
    return [("" if (value := row[name]) is None else text(value)) for name, text in _CSV_COLUMNS]


def focus_csv(q: FocusQuery) -> Iterator[str]:
    """The export as CSV text in pieces (a header line, then about one piece per thousand rows).

    Decimals are written as fixed-point strings; an empty field is a null."""
    rows = focus_rows(q)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def drain() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    first = next(rows, None)  # the first day's query runs now: an outage or a bad query raises here
    writer.writerow(COLUMN_NAMES)
    if first is not None:
        writer.writerow(_csv_row(first))

    def pieces() -> Iterator[str]:
        yield drain()
        for n, row in enumerate(rows, start=1):
            writer.writerow(_csv_row(row))
            if n % 1000 == 0:
                yield drain()
        yield drain()

    return pieces()


def focus_parquet(q: FocusQuery) -> bytes:
    """The export as one Parquet file: decimal128 money (scale 12) and quantities (scale 6), UTC
    timestamps, ``Tags`` as a JSON string. Built in memory (Parquet's footer comes last)."""
    import pyarrow as pa  # imported here: only this encoding needs it
    import pyarrow.parquet as pq

    types = {
        MONEY: pa.decimal128(38, MONEY_PLACES),
        PRICE: pa.decimal128(38, MONEY_PLACES),
        QUANTITY: pa.decimal128(38, QUANTITY_PLACES),
        TIME: pa.timestamp("ms", tz="UTC"),  # Parquet has no second unit
        TEXT: pa.string(),
        JSON_TEXT: pa.string(),
        COUNT: pa.int64(),
    }
    schema = pa.schema([pa.field(name, types[kind]) for name, kind in COLUMNS])
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, schema) as out:
        batch: list[dict[str, Any]] = []
        for row in focus_rows(q):
            batch.append(row)
            if len(batch) == 10_000:
                out.write_table(_table(batch, schema, pa))
                batch = []
        out.write_table(_table(batch, schema, pa))
    return sink.getvalue()


def _table(rows: list[dict[str, Any]], schema: Any, pa: Any) -> Any:
    columns = []
    for (name, kind), fld in zip(COLUMNS, schema, strict=True):
        values = [row[name] for row in rows]
        if kind == JSON_TEXT:
            values = [_json_text(v) for v in values]
        columns.append(pa.array(values, type=fld.type))
    return pa.Table.from_arrays(columns, schema=schema)
