"""What every integration shares: timing a call, recording it once, and stream proxies.

A wrapper never changes what the app sees: results and streams come back as they are (a stream
inside a transparent proxy), and an exception is recorded with ``status=error`` and re-raised as is.
The one thing a proxy may take out of a stream is an event the wrapper itself caused the provider
to send (an observer's ``hides``): the app then sees the stream it would have had unwrapped.
A failure inside Meterline's own bookkeeping is logged and swallowed, never raised into the app.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Any

from meterline.integrations.prefix import fit

log = logging.getLogger("meterline")
Recorder = Callable[..., None]


def default_recorder() -> Recorder:
    import meterline

    return meterline.record


def is_async(method: Any) -> bool:
    """Whether a client method returns a coroutine (the SDKs' decorators hide ``async def``)."""
    if inspect.iscoroutinefunction(inspect.unwrap(method)):
        return True
    owner = getattr(method, "__self__", None)
    return type(owner).__name__.startswith("Async")


def status_of(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | GeneratorExit):
        return "cancelled"
    if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__:
        return "timeout"
    return "error"


def get(obj: Any, *path: str) -> Any:
    """``obj.a.b`` (or ``obj["a"]["b"]``), None where a step is missing."""
    for name in path:
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj


def as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def wrap_copies(client: Any, instrument: Callable[[Any], Any]) -> None:
    """Make ``client.copy(...)`` and ``client.with_options(...)`` return instrumented clients.

    Both build a new client whose resources are new too, so the wrap must be applied again; the
    patch is on the instance, so the original client's class (and other clients) are untouched."""
    original = getattr(client, "copy", None)
    if original is None or getattr(original, "__meterline__", False):
        return

    @functools.wraps(original)
    def copy(*args: Any, **kwargs: Any) -> Any:
        return instrument(original(*args, **kwargs))

    copy.__meterline__ = True  # type: ignore[attr-defined]
    client.copy = copy
    if hasattr(client, "with_options"):
        client.with_options = copy


class Call:
    """One model call being timed; ``finish`` records it exactly once."""

    def __init__(self, recorder: Recorder, fields: dict[str, Any]) -> None:
        self._record = recorder
        self.fields = fields
        self._start = time.perf_counter()
        self.ttft_ms: float | None = None
        self._done = False

    def first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self._start) * 1000

    def finish(self, status: str, error: BaseException | None = None, fields: dict[str, Any] | None = None) -> None:
        """Record the call; ``fields`` (read from the result) may say its own status, which a clean end defers to."""
        if self._done:
            return
        self._done = True
        latency = (time.perf_counter() - self._start) * 1000
        values = {**self.fields, **(fields or {}), "latency_ms": round(latency, 3)}
        if status != "ok" or "status" not in values:
            values["status"] = status
        if self.ttft_ms is not None:
            values["ttft_ms"] = round(min(self.ttft_ms, latency), 3)
        if error is not None:
            # A 429 is the provider's rate limit, whatever the client calls its exception.
            rate_limited = getattr(error, "status_code", None) == 429
            values["error_type"] = "rate_limit" if rate_limited else type(error).__name__[:200]
        if values["status"] == "error" and values.get("finish_reason") is None:
            values["finish_reason"] = "error"
        values = fit({k: v for k, v in values.items() if v is not None})
        try:
            self._record(**values)
        except Exception as exc:  # noqa: BLE001 (bookkeeping must never break the app's call)
            log.warning("meterline: could not record a call (%s)", exc)


class Observer:
    """Reads a stream's events as they pass; ``fields()`` gives what it learned."""

    def __init__(self, call: Call) -> None:
        self.call = call

    def observe(self, event: Any) -> None:
        raise NotImplementedError

    def hides(self, event: Any) -> bool:
        """Whether ``event`` (already observed) is kept from the app: only what the wrapper asked for."""
        return False

    def fields(self) -> dict[str, Any]:
        raise NotImplementedError


class _StreamBase:
    def __init__(self, stream: Any, observer: Observer) -> None:
        self._stream = stream
        self._observer = observer
        self._finished = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _finish(self, status: str, error: BaseException | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        try:
            fields = self._observer.fields()
        except Exception as exc:  # noqa: BLE001 (never break the app's stream)
            log.warning("meterline: could not read a stream's usage (%s)", type(exc).__name__)
            fields = {}
        self._observer.call.finish(status, error, fields)

    def _see(self, event: Any) -> bool:
        """Observe ``event``; whether the app should see it."""
        try:
            self._observer.observe(event)
        except Exception as exc:  # noqa: BLE001 (never break the app's stream)
            log.warning("meterline: could not read a stream event (%s)", type(exc).__name__)
        try:
            return not self._observer.hides(event)
        except Exception:  # noqa: BLE001 (when in doubt, the app sees its event)
            return True


class RecordingStream(_StreamBase):
    """A sync stream, unchanged for the app; the call is recorded when it ends, fails or is closed."""

    def __iter__(self) -> Iterator[Any]:
        try:
            for event in self._stream:
                if self._see(event):
                    yield event
        except BaseException as exc:
            self._finish(status_of(exc), exc)
            raise
        self._finish("ok")

    def __next__(self) -> Any:
        while True:
            try:
                event = next(self._stream)
            except StopIteration:
                self._finish("ok")
                raise
            except BaseException as exc:
                self._finish(status_of(exc), exc)
                raise
            if self._see(event):
                return event

    def __enter__(self) -> RecordingStream:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()
        self._finish("cancelled")  # closed before its end (after the end, this is a no-op)

    def __del__(self) -> None:
        if not getattr(self, "_finished", True):
            self._finish("cancelled")


class AsyncRecordingStream(_StreamBase):
    """The async twin of :class:`RecordingStream`."""

    async def _events(self) -> AsyncIterator[Any]:
        try:
            async for event in self._stream:
                if self._see(event):
                    yield event
        except BaseException as exc:
            self._finish(status_of(exc), exc)
            raise
        self._finish("ok")

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._events()

    async def __anext__(self) -> Any:
        while True:
            try:
                event = await self._stream.__anext__()
            except StopAsyncIteration:
                self._finish("ok")
                raise
            except BaseException as exc:
                self._finish(status_of(exc), exc)
                raise
            if self._see(event):
                return event

    async def __aenter__(self) -> AsyncRecordingStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._stream.close()
        self._finish("cancelled")

    def __del__(self) -> None:
        if not getattr(self, "_finished", True):
            self._finish("cancelled")
