"""A local stand-in for the OpenAI and Anthropic HTTP APIs (stdlib ``http.server`` in a thread).

It answers ``/v1/chat/completions``, ``/v1/responses`` and ``/v1/messages`` with JSON or SSE
streams shaped like the providers' own, with or without prompt-cache tokens, with each provider's
rate-limit headers (``x-ratelimit-*`` / ``anthropic-ratelimit-*``) and, when asked, 429s; it keeps
each request's JSON body so tests can see what the wrapped client really sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_MODEL = "gpt-4o-2024-08-06"
RESPONSES_MODEL = "o3-2025-04-16"
CLAUDE_MODEL = "claude-haiku-4-5-20251001"


class Provider:
    def __init__(self) -> None:
        self.cached = False  # answer with prompt-cache tokens
        self.fail_status: int | None = None  # answer every request with this error status
        self.delay = 0.0  # seconds before answering (timeouts)
        self.finish: str | None = None  # the finish_reason / stop_reason to answer (else as the real API)
        self.incomplete: str | None = None  # answer Responses as incomplete, for this reason
        self.requests: list[dict[str, Any]] = []
        # The rate limits the headers announce (what remains goes down by one request a call).
        self.limit_tokens, self.limit_requests = 30_000_000, 10_000
        self.limit_input_tokens, self.limit_output_tokens = 2_000_000, 400_000
        self.rate_limited = 0  # answer this many requests with a 429 before answering normally
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Many small writes (SSE events): do not let Nagle and delayed ACKs space them out.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def handle(self) -> None:
                try:
                    super().handle()
                except ConnectionResetError:
                    # openai's Stream stops reading at [DONE] and closes the connection before the
                    # chunked body's last bytes, so waiting for its next request may meet a reset.
                    pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                provider.requests.append(body)
                if provider.delay:
                    time.sleep(provider.delay)
                    self.close_connection = True
                if provider.rate_limited:
                    provider.rate_limited -= 1
                    self._json(429, provider.error(self.path, 429))
                    return
                if provider.fail_status:
                    self._json(provider.fail_status, provider.error(self.path))
                    return
                route = {
                    "/v1/chat/completions": (provider.chat, provider.chat_stream),
                    "/v1/responses": (provider.response, provider.response_stream),
                    "/v1/messages": (provider.message, provider.message_stream),
                }[self.path]
                if body.get("stream"):
                    try:
                        self._sse(route[1](body))
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client closed the stream early, as a test asked it to
                else:
                    self._json(200, route[0](body))

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("x-request-id", "req_standin_1")
                    self.send_header("request-id", "req_standin_1")
                    self._limit_headers(status)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first, as a test asked it to

            def _sse(self, events: list[tuple[str | None, str]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("x-request-id", "req_standin_stream")
                self.send_header("request-id", "req_standin_stream")
                self._limit_headers(200)
                self.end_headers()
                for name, data in events:
                    text = (f"event: {name}\n" if name else "") + f"data: {data}\n\n"
                    raw = text.encode()
                    self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")

            def _limit_headers(self, status: int) -> None:
                for name, value in provider.limit_headers(self.path, status).items():
                    self.send_header(name, value)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- OpenAI Chat Completions --------------------------------------------------------------

    def chat_usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920 if self.cached else 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }  # fmt: skip

    def chat_finish(self, body: dict[str, Any]) -> str:
        return self.finish or ("tool_calls" if body.get("tools") else "stop")

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "Hello!", "refusal": None, "annotations": []}
        if (body.get("response_format") or {}).get("type") == "json_schema":  # structured outputs
            message["content"] = json.dumps({"greeting": "Hello!"})
        if body.get("tools"):
            message["content"] = None
            message["tool_calls"] = [
                {"id": f"call_{i}", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
                for i in range(2)
            ]
        return {
            "id": "chatcmpl-standin", "object": "chat.completion", "created": 1763640000, "model": CHAT_MODEL,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.chat_finish(body)}],
            "usage": self.chat_usage(), "service_tier": "default", "system_fingerprint": "fp_standin",
        }  # fmt: skip

    def chat_stream(self, body: dict[str, Any]) -> list[tuple[str | None, str]]:
        with_usage = (body.get("stream_options") or {}).get("include_usage") is True
        base = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 1763640000,
                "model": CHAT_MODEL, "service_tier": "default", "system_fingerprint": "fp_standin"}  # fmt: skip
        extra = {"usage": None} if with_usage else {}
        deltas = [{"role": "assistant", "content": "", "refusal": None}, {"content": "Hel"}, {"content": "lo!"}]
        events = [
            json.dumps(
                {**base, **extra, "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}]}
            )
            for d in deltas
        ]
        events.append(json.dumps({**base, **extra, "choices": [
            {"index": 0, "delta": {}, "logprobs": None, "finish_reason": self.chat_finish(body)}]}))  # fmt: skip
        if with_usage:
            events.append(json.dumps({**base, "choices": [], "usage": self.chat_usage()}))
        sse: list[tuple[str | None, str]] = [(None, e) for e in events]
        return [*sse, (None, "[DONE]")]

    # -- OpenAI Responses ---------------------------------------------------------------------

    def response(self, body: dict[str, Any], status: str = "completed") -> dict[str, Any]:
        incomplete = None
        if self.incomplete and status == "completed":
            status, incomplete = "incomplete", {"reason": self.incomplete}
        return {
            "id": "resp_standin", "object": "response", "created_at": 1763640000, "status": status,
            "incomplete_details": incomplete,
            "model": RESPONSES_MODEL, "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup",
                 "arguments": "{}", "status": "completed"},
                {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Hi", "annotations": []}]},
            ],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [], "service_tier": "flex",
            "usage": None if status == "in_progress" else {
                "input_tokens": 2048, "input_tokens_details": {"cached_tokens": 1536 if self.cached else 0},
                "output_tokens": 900, "output_tokens_details": {"reasoning_tokens": 640}, "total_tokens": 2948,
            },
        }  # fmt: skip

    def response_stream(self, body: dict[str, Any]) -> list[tuple[str | None, str]]:
        seq = iter(range(100))
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": {**self.response(body, "in_progress"), "output": []}},
            {"type": "response.in_progress", "response": {**self.response(body, "in_progress"), "output": []}},
            {"type": "response.output_item.added", "output_index": 0,
             "item": {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}},
            {"type": "response.content_part.added", **where, "part": part},
            {"type": "response.output_text.delta", **where, "delta": "H", "logprobs": []},
            {"type": "response.output_text.delta", **where, "delta": "i", "logprobs": []},
            {"type": "response.output_text.done", **where, "text": "Hi", "logprobs": []},
            {"type": "response.content_part.done", **where, "part": {**part, "text": "Hi"}},
            {"type": "response.output_item.done", "output_index": 0,
             "item": {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                      "content": [{**part, "text": "Hi"}]}},
            {"type": "response.incomplete" if self.incomplete else "response.completed",
             "response": self.response(body)},
        ]  # fmt: skip
        return [(e["type"], json.dumps({**e, "sequence_number": next(seq)})) for e in events]

    # -- Anthropic Messages -------------------------------------------------------------------

    def anthropic_usage(self, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": 50,
            "cache_creation_input_tokens": 2000 if self.cached else 0,
            "cache_read_input_tokens": 5000 if self.cached else 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def stop_reason(self, body: dict[str, Any]) -> str:
        return self.finish or ("tool_use" if body.get("tools") else "end_turn")

    def message(self, body: dict[str, Any]) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": "Hi"}]
        if body.get("tools"):
            content.append({"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}})
        return {
            "id": "msg_standin", "type": "message", "role": "assistant", "model": CLAUDE_MODEL,
            "content": content, "stop_reason": self.stop_reason(body), "stop_sequence": None,
            "usage": self.anthropic_usage(100),
        }  # fmt: skip

    def message_stream(self, body: dict[str, Any]) -> list[tuple[str | None, str]]:
        start = {**self.message(body), "content": [], "stop_reason": None, "usage": self.anthropic_usage(1)}
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": start},
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            {"type": "ping"},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
            {"type": "content_block_stop", "index": 0},
            {"type": "message_delta", "delta": {"stop_reason": self.stop_reason(body), "stop_sequence": None},
             "usage": {"output_tokens": 100}},
            {"type": "message_stop"},
        ]  # fmt: skip
        return [(e["type"], json.dumps(e)) for e in events]

    # -- rate limits --------------------------------------------------------------------------

    def limit_headers(self, path: str, status: int) -> dict[str, str]:
        """The provider's rate-limit headers; a 429 says nothing remains and to retry at once."""
        served = len(self.requests)
        requests_left = 0 if status == 429 else max(self.limit_requests - served, 0)
        extra = {"retry-after": "0"} if status == 429 else {}
        if path == "/v1/messages":
            tokens_limit = self.limit_input_tokens + self.limit_output_tokens
            tokens_left = 0 if status == 429 else tokens_limit - 2306 * served
            return {
                "anthropic-ratelimit-requests-limit": str(self.limit_requests),
                "anthropic-ratelimit-requests-remaining": str(requests_left),
                "anthropic-ratelimit-requests-reset": "2026-11-20T12:00:01Z",
                "anthropic-ratelimit-tokens-limit": str(tokens_limit),
                "anthropic-ratelimit-tokens-remaining": str(max(tokens_left, 0)),
                "anthropic-ratelimit-input-tokens-limit": str(self.limit_input_tokens),
                "anthropic-ratelimit-input-tokens-remaining": str(self.limit_input_tokens),
                "anthropic-ratelimit-output-tokens-limit": str(self.limit_output_tokens),
                "anthropic-ratelimit-output-tokens-remaining": str(self.limit_output_tokens),
                **extra,
            }
        tokens_left = 0 if status == 429 else self.limit_tokens - 2306 * served
        return {
            "x-ratelimit-limit-requests": str(self.limit_requests),
            "x-ratelimit-limit-tokens": str(self.limit_tokens),
            "x-ratelimit-remaining-requests": str(requests_left),
            "x-ratelimit-remaining-tokens": str(max(tokens_left, 0)),
            "x-ratelimit-reset-requests": "6ms",
            "x-ratelimit-reset-tokens": "0s",
            **extra,
        }

    # -- errors -------------------------------------------------------------------------------

    def error(self, path: str, status: int = 400) -> dict[str, Any]:
        if status == 429:
            if path == "/v1/messages":
                return {"type": "error", "error": {"type": "rate_limit_error", "message": "rate limited"}}
            return {"error": {"message": "Rate limit reached for requests", "type": "requests", "param": None,
                              "code": "rate_limit_exceeded"}}  # fmt: skip
        if path == "/v1/messages":
            return {"type": "error", "error": {"type": "invalid_request_error", "message": "bad request"}}
        return {"error": {"message": "bad request", "type": "invalid_request_error", "param": None, "code": None}}
