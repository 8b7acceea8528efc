"""The demo's capacity traffic: daily weekday peak minutes, the providers' rate-limit fields, 429s at peaks."""

from __future__ import annotations

from collections import Counter

from ledger.raw import CALL_FIELDS, CallColumns
from ops.demo import DAY_MS, DEMO_LIMITS, generate, with_capacity

END_MS = 1_795_000_000_000  # a fixed instant: the demo is reproducible
IX = {name: i for i, name in enumerate(CALL_FIELDS)}


def test_every_record_has_every_field_and_openai_and_anthropic_report_limits() -> None:
    records = list(with_capacity(generate(20_000, END_MS)))
    assert {len(r) for r in records} == {len(CALL_FIELDS)}
    assert len(CallColumns.from_records(records)) == len(records)
    for r in records:
        limits = DEMO_LIMITS.get(r[IX["model"]])
        if limits is None:  # Google and the self-hosted model send no rate-limit headers
            assert r[IX["ratelimit_limit_requests"]] is None
            continue
        assert r[IX["provider"]] in ("openai", "anthropic")
        assert (r[IX["ratelimit_limit_tokens"]], r[IX["ratelimit_limit_requests"]]) == limits[:2]
        assert (r[IX["ratelimit_limit_input_tokens"]], r[IX["ratelimit_limit_output_tokens"]]) == limits[2:]
        assert 0 <= r[IX["ratelimit_remaining_requests"]] < limits[1]


def test_weekdays_have_a_peak_minute_with_a_few_429s() -> None:
    records = list(with_capacity(generate(20_000, END_MS)))
    per_minute = Counter(r[IX["timestamp"]] // 60_000 for r in records)
    plain = Counter(r[IX["timestamp"]] // 60_000 for r in generate(20_000, END_MS))
    assert max(per_minute.values()) >= 3 * max(plain.values())  # the digest job's burst stands out
    busiest = max(per_minute, key=lambda m: per_minute[m])
    assert ((busiest * 60_000) // DAY_MS + 3) % 7 < 5  # on a weekday
    refused = [r for r in records if r[IX["error_type"]] == "rate_limit"]
    at_peaks = [r for r in refused if (r[IX["timestamp"]] % DAY_MS) // 3_600_000 == 15]
    assert at_peaks
    assert all(r[IX["ratelimit_remaining_requests"]] == 0 for r in refused if r[IX["model"]] in DEMO_LIMITS)
