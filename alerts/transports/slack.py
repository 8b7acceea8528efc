"""Slack incoming webhook (slack-sdk ``WebhookClient``) with a Block Kit message."""

from __future__ import annotations

from typing import Any

from alerts.message import AlertMessage
from alerts.models import Channel
from alerts.transports import PermanentError, TransientError, http

# Answers that mean the webhook is gone or revoked: retrying cannot help.
_DEAD = {"invalid_token", "no_service", "no_team", "team_disabled", "channel_not_found", "channel_is_archived",
         "action_prohibited", "no_service_id", "no_active_hooks"}  # fmt: skip


def blocks(message: AlertMessage) -> list[dict[str, Any]]:
    fields = [
        f"*Budget*\n{message.budget_name}",
        f"*Scope*\n{message.scope_text}",
        f"*Spend*\n${message.spend:,.2f} of ${message.amount:,.2f}",
        f"*Percent*\n{message.percent} %" if message.percent is not None else f"*Signal*\n{message.signal}",
        f"*Forecast*\n${message.forecast:,.2f}" if message.forecast is not None else "*Forecast*\n—",
        f"*Period*\n{message.period} ({message.timezone})",
    ]
    out: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.headline[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    lines = [
        f"*{dim}*: " + ", ".join(f"{c['value']} (${c['cost_usd']})" for c in values)
        for dim, values in message.contributors.items()
        if values
    ]
    if lines:
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Top contributors*\n" + "\n".join(lines)}})
    out.append(
        {
            "type": "actions",
            "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Open budgets"}, "url": message.url}
            ],
        }
    )
    return out


class SlackTransport:
    def __init__(self, channel: Channel) -> None:
        self.url = str(channel.config["webhook_url"])

    def send(self, message: AlertMessage, delivery_id: int | None = None) -> None:
        answer = http.send_slack(self.url, {"text": message.headline, "blocks": blocks(message)})
        if answer.status == 200:
            return
        # The body is never echoed: only one of Slack's own known error codes is named.
        code = answer.body.strip()[:100]
        known = f"Slack answered {answer.status} {code}" if code in _DEAD else f"Slack answered {answer.status}"
        if answer.status in (403, 404, 410) or code in _DEAD:
            raise PermanentError(known)
        if answer.status == 429 or answer.status >= 500:
            raise TransientError(f"Slack answered {answer.status}", http.retry_after(answer.headers))
        raise PermanentError(known, disable=False)
