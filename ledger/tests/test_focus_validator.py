"""The FOCUS export checked by the FinOps Foundation's own validator (``focus-validator`` on PyPI).

The newest release on PyPI, 1.0.0, knows the FOCUS versions 0.5, 1.0-preview and 1.0: none newer.
So the export (FOCUS 1.2 columns) is validated against its 1.0 rules, which check the columns both
versions share: presence, types (decimal, UTC datetime, ISO 4217 currency, JSON object Tags),
nullability and the allowed values (ChargeCategory, ChargeClass, ChargeFrequency, PricingCategory,
ServiceCategory). Where 1.0.0 differs from the published specification, the test says so:

- it names three columns by their pre-1.0 names (``InvoiceIssuer``, ``Provider``, ``Publisher``;
  FOCUS 1.0 and 1.2 say ``InvoiceIssuerName``, ``ProviderName``, ``PublisherName``): the validator reads
  a copy of the file with those three headers renamed, so their values are still checked;
- :data:`OVERRIDES` lists the rules skipped, each with its reason.

It runs in its own virtualenv (``.venv/focus-validator``, from requirements-focus-validator.lock;
``make focus-validator`` or ``make test`` makes it): its pins (pandas < 3, numpy < 2) cannot share
the main environment. It reads no network (checked in a network namespace without interfaces):
its currency list ships in the package (see :func:`validate` for where it looks).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from api.tests.test_usage import ingest_and_roll
from ledger.focus import FocusQuery, focus_csv
from tenancy.models import Project

VALIDATOR = Path(sys.prefix) / "focus-validator" / "bin" / "focus-validator"
VALIDATED_VERSION = "1.0"  # the newest FOCUS version focus-validator 1.0.0 has rules for
RENAMED = {"InvoiceIssuerName": "InvoiceIssuer", "ProviderName": "Provider", "PublisherName": "Publisher"}
OVERRIDES = {
    # Conditional columns in FOCUS 1.2 (present "when the provider supports" regions, resources or
    # commitment discounts): Meterline's charges are per token and have none of them.
    **dict.fromkeys(
        [
            "RegionId_Required",
            "RegionName_Required",
            "ResourceID_Required",
            "ResourceName_Required",
            "ResourceType_Required",
            "CommitmentDiscountCategory_Required",
            "CommitmentDiscountId_Required",
            "CommitmentDiscountName_Required",
            "CommitmentDiscountStatus_Required",
            "CommitmentDiscountType_Required",
        ],
        "conditional column; not applicable to per-token charges",
    ),
    # The rule's SQL reads a column "ChargeType", which no FOCUS release has (1.0 calls it
    # ChargeCategory): on any file it fails with KeyError('ChargeType').
    "SkuPriceId_Nullable": "broken rule in focus-validator 1.0.0 (reads a ChargeType column)",
}
DAY = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)


def validate(path: Path, tmp_path: Path) -> ET.Element:
    """Run the validator on ``path`` (with the renamed headers); its JUnit report's root."""
    if not VALIDATOR.exists():
        pytest.fail(f"{VALIDATOR} is missing: run `make focus-validator` (`make test` makes it too)")
    copy = tmp_path / f"validator-{path.name}"
    with path.open(newline="") as source, copy.open("w", newline="") as target:
        rows = csv.reader(source)
        writer = csv.writer(target, lineterminator="\n")
        writer.writerow([RENAMED.get(name, name) for name in next(rows)])
        writer.writerows(rows)
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text("overrides:\n" + "".join(f"  - {rule}\n" for rule in OVERRIDES))
    report = tmp_path / "report.xml"
    # 1.0.0 opens its bundled currency list by a path relative to the working directory
    # ("focus_validator/utils/currency_codes.csv"): run it from its site-packages.
    site_packages = next(VALIDATOR.parent.parent.glob("lib/python*/site-packages"))
    done = subprocess.run(
        [str(VALIDATOR), "--data-file", str(copy), "--validate-version", VALIDATED_VERSION,
         "--override-file", str(overrides), "--output-type", "unittest", "--output-destination", str(report)],
        capture_output=True, text=True, timeout=300, check=False, cwd=site_packages,
    )  # fmt: skip
    assert report.exists(), done.stdout + done.stderr
    return ET.parse(report).getroot()  # noqa: S314 - the report our own validator run just wrote


def failures(report: ET.Element) -> dict[str, str]:
    return {
        case.attrib["name"]: failure.attrib.get("message", "")
        for case in report.iter("testcase")
        for failure in case.iter("failure")
    }


@pytest.mark.django_db
def test_the_export_passes_the_focus_validator(api: APIClient, project: Project, tmp_path: Path) -> None:
    # given calls of every kind: token classes, reported costs, an unpriced model, cache hits, two days
    ingest_and_roll(
        api,
        [
            {"event_id": "a", "timestamp": (DAY + timedelta(hours=1)).isoformat(), "provider": "openai",
             "model": "gpt-4o-mini", "input_tokens": 1200, "cache_read_tokens": 200, "output_tokens": 90,
             "feature": "chat", "customer_id": "acme", "route_version": "v2", "environment": "prod"},
            {"event_id": "b", "timestamp": (DAY + timedelta(hours=2)).isoformat(), "provider": "openai",
             "model": "o3-mini", "input_tokens": 100, "output_tokens": 900, "reasoning_tokens": 700,
             "feature": "agent", "cost_usd": "0.004000000001"},
            {"event_id": "c", "timestamp": (DAY + timedelta(hours=26)).isoformat(), "provider": "anthropic",
             "model": "claude-sonnet-4-20250514", "input_tokens": 5000, "cache_write_tokens": 4000,
             "output_tokens": 40, "feature": "search", "customer_id": "12345"},
            {"event_id": "d", "timestamp": (DAY + timedelta(hours=27)).isoformat(), "provider": "selfhosted",
             "model": "llama-local", "input_tokens": 10, "output_tokens": 10},
            {"event_id": "e", "timestamp": (DAY + timedelta(hours=28)).isoformat(), "provider": "openai",
             "model": "gpt-4o", "input_tokens": 10, "output_tokens": 10, "cache_hit": True},
        ],
    )  # fmt: skip
    path = tmp_path / "focus.csv"
    path.write_text("".join(focus_csv(FocusQuery(project.pk, DAY, DAY + timedelta(days=2)))))
    # when
    report = validate(path, tmp_path)
    # then: every rule ran and passed, except the documented overrides (reported as skipped)
    assert failures(report) == {}
    cases = list(report.iter("testcase"))
    skipped = {case.attrib["name"].split(" :: ")[0] for case in cases if case.find("skipped") is not None}
    assert skipped <= set(OVERRIDES)
    assert len(cases) - len(skipped) >= 110  # the 1.0 rule set has 133 checks


@pytest.mark.django_db
def test_the_validator_catches_a_broken_export(api: APIClient, project: Project, tmp_path: Path) -> None:
    # A control: the same validator on an export with a non-decimal cost and an unknown category fails.
    ingest_and_roll(
        api,
        [{"event_id": "a", "timestamp": (DAY + timedelta(hours=1)).isoformat(), "provider": "openai",
          "model": "gpt-4o-mini", "input_tokens": 1000, "output_tokens": 10}],
    )  # fmt: skip
    text = "".join(focus_csv(FocusQuery(project.pk, DAY, DAY + timedelta(days=1))))
    broken = text.replace("AI and Machine Learning", "Tokens").replace(",USD,", ",DOLLARS,")
    path = tmp_path / "broken.csv"
    path.write_text(broken)
    found = failures(validate(path, tmp_path))
    assert any(name.startswith("ServiceCategory_Enum") for name in found), found
    assert any(name.startswith("BillingCurrency_IsCurrencyCode") for name in found), found
