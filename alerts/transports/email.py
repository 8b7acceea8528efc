"""Email through Django's email framework (SMTP settings from the environment): text + HTML."""

from __future__ import annotations

import smtplib
import unicodedata

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from alerts.message import AlertMessage
from alerts.models import Channel
from alerts.transports import PermanentError, TransientError


def subject(headline: str) -> str:
    """``[Meterline] headline`` on one line: control characters (a newline in a name) become spaces."""
    text = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in headline)
    return f"[Meterline] {' '.join(text.split())}"[:200]


class EmailTransport:
    def __init__(self, channel: Channel) -> None:
        self.to = [str(a) for a in channel.config["to"]]

    def send(self, message: AlertMessage, delivery_id: int | None = None) -> None:
        context = {"m": message}
        email = EmailMultiAlternatives(
            subject=subject(message.headline),
            body=render_to_string("alerts/email/alert.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=self.to,
        )
        email.attach_alternative(render_to_string("alerts/email/alert.html", context), "text/html")
        try:
            email.send(fail_silently=False)
        except smtplib.SMTPRecipientsRefused:
            raise PermanentError("the mail server refused every recipient") from None
        except smtplib.SMTPAuthenticationError:  # the operator's SMTP login, not this message: retry
            raise TransientError("the mail server refused Meterline's SMTP login") from None
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600 and exc.smtp_code != 530:
                raise PermanentError(f"the mail server answered {exc.smtp_code}", disable=False) from None
            raise TransientError(f"the mail server answered {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"could not send mail ({type(exc).__name__})") from None
