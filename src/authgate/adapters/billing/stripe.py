"""Stripe webhooks: verify ``Stripe-Signature`` with the stripe library's own check, then hand the
core a plain ``BillingEvent``.

``stripe.Webhook.construct_event`` checks the ``t=…,v1=…`` header (HMAC-SHA256 over
``"{t}.{payload}"`` with the endpoint secret, constant-time) and refuses a timestamp older than the
tolerance (300 s, Stripe's default), which bounds replays of a captured delivery; replays within the
window are caught by the event-id record in core.flows.billing. The event's ``created`` goes along,
so the core can tell a late, older event from a newer one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows.billing import BillingEvent

log = structlog.get_logger("authgate.billing.stripe")

TOLERANCE_SECONDS = 300


def parse_event(payload: bytes, signature_header: str | None, secret: str) -> BillingEvent:
    """The verified event, or WEBHOOK_INVALID (400) when the signature, timestamp or body is bad."""
    import stripe  # imported on first use: it costs ~0.3 s of every node's start-up otherwise

    try:
        event = stripe.Webhook.construct_event(payload, signature_header, secret, tolerance=TOLERANCE_SECONDS)
        raw: Any = event.to_dict()
    except stripe.SignatureVerificationError as exc:
        log.warning("stripe_webhook_refused", reason="signature", detail=str(exc).split(" (")[0][:120])
        raise AuthError(ErrorCode.WEBHOOK_INVALID, detail="signature") from None
    except (ValueError, UnicodeDecodeError, TypeError, KeyError, AttributeError):
        log.warning("stripe_webhook_refused", reason="payload")
        raise AuthError(ErrorCode.WEBHOOK_INVALID, detail="payload") from None
    event_id, event_type = raw.get("id"), raw.get("type")
    data = raw.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(event_id, str) or not event_id or len(event_id) > 200 or not isinstance(event_type, str):
        raise AuthError(ErrorCode.WEBHOOK_INVALID, detail="payload")
    if not isinstance(obj, Mapping):
        raise AuthError(ErrorCode.WEBHOOK_INVALID, detail="payload")
    created = raw.get("created")  # unix seconds; Stripe does not deliver events in order
    if isinstance(created, bool) or not isinstance(created, int) or created < 0:
        created = None
    return BillingEvent(id=event_id, type=event_type, object=dict(obj), created=created)
