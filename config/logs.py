"""The log formatter: no secret reaches a log line, even from an unexpected error.

A database error quotes the data it failed on (PostgreSQL's ``DETAIL``, ``CONTEXT`` and ``LINE n``
lines: a channel's webhook URL, a secret); a traceback or a third-party message may quote a URL with a
token in its path, or an API key. Every record is scrubbed after formatting, tracebacks included:
database context lines are dropped, URLs keep only their scheme and host, API keys and bearer tokens
are masked.
"""

from __future__ import annotations

import logging
import re

_DB_CONTEXT = re.compile(r"^(\s*)(DETAIL|CONTEXT|HINT|LINE \d+|QUERY|WHERE):.*$", re.MULTILINE)
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^\s/@'\"<>]*@)?([^\s/'\"<>?#]+)([^\s'\"<>]*)")
_API_KEY = re.compile(r"\bml_[A-Za-z0-9_-]{8,}")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s'\"]+")


def _url(match: re.Match[str]) -> str:
    scheme, host, rest = match.groups()
    return f"{scheme}{host}/…" if rest else f"{scheme}{host}"


def scrub(text: str) -> str:
    text = _DB_CONTEXT.sub(r"\1\2: <scrubbed>", text)
    text = _URL.sub(_url, text)
    text = _API_KEY.sub("ml_…", text)
    return _BEARER.sub(r"\1…", text)


class ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
