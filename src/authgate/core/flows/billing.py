"""Billing customers (CONTRACT §6): the signed username check, admin linking, Stripe events.

A user has at most one billing customer: ``customer_id`` (authgate's own id for it),
``stripe_customer_id`` and ``subscription_status``. They are set by hand (``PUT
/api/customers/{username}``) or by Stripe's webhook; both paths go through ``_link`` so a Stripe
customer is linked to one user at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from authgate.core import appsig, audit, ids
from authgate.core.audit import Event
from authgate.core.blur import blur_email, blur_phone
from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.identifiers import has_control
from authgate.core.model import RequestContext, Role, TokenType, User
from authgate.core.ports import Tx
from authgate.core.service import Core
from authgate.core.sessions import Principal

log = structlog.get_logger("authgate.billing")

# Stripe's subscription statuses (https://docs.stripe.com/api/subscriptions/object#subscription_object-status).
SUBSCRIPTION_STATUSES = frozenset(
    {"incomplete", "incomplete_expired", "trialing", "active", "past_due", "canceled", "unpaid", "paused"}
)
_CUSTOMER_EVENTS = ("customer.created", "customer.updated")
_SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
)


@dataclass(frozen=True)
class CustomerView:
    """What seed 000's username check answers. ``email``/``phone`` are "" when absent."""

    exists: bool
    has_customer: bool = False
    customer_id: str | None = None
    stripe_customer_id: str | None = None
    email: str = ""
    phone: str = ""
    subscription_status: str | None = None
    pin_set: bool = False


@dataclass(frozen=True)
class BillingEvent:
    """A verified webhook event, as plain values (the adapter parses and verifies it)."""

    id: str
    type: str
    object: Mapping[str, Any] = field(default_factory=dict)
    created: int | None = None  # the event's ``created`` (unix seconds), when it has one


async def stored_admin(core: Core, principal: Principal) -> bool:
    """Whether a user access token's account is an admin (ROLE_ADMIN or above) *as stored* and
    active: an admin demoted or deactivated since the token was signed is one no longer. A token
    without the role needs no lookup: it is no admin's whatever is stored (a promotion waits for a
    new token)."""
    if principal.typ != TokenType.ACCESS.value or not principal.has_role_at_least(Role.ADMIN):
        return False
    async with core.store.transaction(write=False) as tx:
        admin = await tx.users.get(principal.user_id or 0)
    return admin is not None and admin.is_active and admin.has_role_at_least(Role.ADMIN)


def view_of(user: User | None, principal: Principal, *, admin: bool) -> CustomerView:
    """The check's answer; contact details in clear (CONTRACT §6) for client-app tokens, the user
    themselves and ``admin`` callers (``stored_admin``)."""
    if user is None:
        return CustomerView(exists=False)
    clear = (
        principal.typ == TokenType.APP.value
        or (principal.user_id is not None and principal.user_id == user.id)
        or admin
    )
    email = user.email if clear else blur_email(user.email)
    phone = user.phone if clear else blur_phone(user.phone)
    return CustomerView(
        exists=True,
        has_customer=bool(user.stripe_customer_id or user.customer_id),
        customer_id=user.customer_id,
        stripe_customer_id=user.stripe_customer_id,
        email=email or "",
        phone=phone or "",
        subscription_status=user.subscription_status,
        pin_set=user.pin_hash is not None,
    )


def caller_key(principal: Principal) -> str:
    if principal.client_id and principal.user_id is None:
        return f"client:{principal.client_id}"
    return f"user:{principal.user_id}"


async def check_username(
    core: Core,
    *,
    token: str | None,
    csrf_token: str,
    username: str,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
) -> CustomerView:
    """Seed 000's username check, after its three proofs, in this order (docs/surface-customer.md):

    1. the Bearer JWT (401): an access token of a live session, or a client-app token;
    2. the per-caller rate limit (429), so a caller cannot spend unlimited signature checks;
    3. the app signature (403, or 426 for an old app version; core.appsig);
    4. the CSRF token, bound to the Bearer's session (403).
    """
    principal = await core.sessions.authenticate(token, (TokenType.ACCESS, TokenType.APP))
    await core.guard.hit("customer_check", caller_key(principal), core.settings.limit_customer_check)
    signed = await appsig.verify(core, method=method, path=path, body=body, headers=headers)
    if principal.typ == TokenType.APP.value and principal.client_id != signed.client.client_id:
        # An app token is the app's own identity: another app's secret may not sign for it.
        log.info("app_signature_refused", reason="token_client_mismatch", client_id=signed.client.client_id)
        raise AuthError(ErrorCode.SIGNATURE_INVALID, detail="token_client_mismatch")
    csrf_session = principal.session_id or f"client:{principal.client_id}"
    if not core.keyed.csrf_valid(csrf_token, csrf_session):
        raise AuthError(ErrorCode.CSRF_INVALID)
    if len(username) > 320:
        return CustomerView(exists=False)
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get_by_username(username)
    admin = user is not None and user.id != principal.user_id and await stored_admin(core, principal)
    return view_of(user, principal, admin=admin)


# --- linking by hand ---------------------------------------------------------------------------------


def _clean_id(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not 1 <= len(value) <= 255 or not all(ch.isalnum() or ch in "_-." for ch in value):
        raise invalid(name, "1-255 letters, digits, '_', '-' or '.'")
    return value


def _clean_status(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in SUBSCRIPTION_STATUSES:
        raise invalid("subscriptionStatus", "one of " + ", ".join(sorted(SUBSCRIPTION_STATUSES)))
    return value


async def _link(tx: Tx, user: User, stripe_customer_id: str, customer_id: str | None, actor: str) -> None:
    """Link ``user`` to a Stripe customer, unlinking any other user that had it."""
    other = await tx.users.find_by_customer(stripe_customer_id)
    if other is not None and other.id != user.id:
        other.stripe_customer_id = other.customer_id = other.subscription_status = None
        other.updated_at, other.updated_by = datetime.now(UTC), actor
        await tx.users.save(other)
        log.warning("customer_moved", stripe_customer_id=stripe_customer_id, from_user=other.id, to_user=user.id)
    if user.stripe_customer_id != stripe_customer_id:
        user.subscription_status = None  # a status belongs to the previous customer's subscription
    user.stripe_customer_id = stripe_customer_id
    user.customer_id = customer_id or user.customer_id or ids.guid("cust")


async def link_customer(
    core: Core,
    ctx: RequestContext,
    principal: Principal,
    username: str,
    *,
    stripe_customer_id: str,
    customer_id: str | None = None,
    subscription_status: str | None = None,
    set_status: bool = False,
) -> CustomerView:
    """An admin (ROLE_ADMIN or above, with a user access token) links a billing customer by hand.

    The roles are the account's as stored, not the token's: an admin demoted (or deactivated)
    since the token was signed is refused at once, as on the sync API (sync.resolve_actor)."""
    if not await stored_admin(core, principal):
        raise AuthError(ErrorCode.FORBIDDEN)
    stripe_id = _clean_id(stripe_customer_id, "stripeCustomerId")
    assert stripe_id is not None
    own_id = _clean_id(customer_id, "customerId")
    status = _clean_status(subscription_status)
    actor = str(principal.user_id)
    async with core.store.transaction() as tx:
        found = await tx.users.get_by_username(username) if len(username) <= 320 else None
        if found is None:
            raise AuthError(ErrorCode.ACCOUNT_NOT_FOUND)
        user = await tx.users.get(found.id, for_update=True)
        assert user is not None
        await _link(tx, user, stripe_id, own_id, actor)
        if set_status:
            user.subscription_status = status
        user.updated_at, user.updated_by = datetime.now(UTC), actor
        await tx.users.save(user)
        await audit.record(
            tx, Event.CUSTOMER_LINKED, ctx, user.id, actor=actor,
            method="admin", stripe_customer_id=stripe_id, subscription_status=user.subscription_status,
        )
    return view_of(user, principal, admin=True)


# --- Stripe events -----------------------------------------------------------------------------------


async def apply_event(core: Core, event: BillingEvent) -> str:
    """Apply a verified Stripe event once; returns ``applied``, ``duplicate`` or ``ignored``.

    The event id is recorded in the same transaction as the change it makes, so a replay (Stripe
    retries, a resend from the dashboard) changes nothing, and a failure halfway records nothing.
    Events we cannot attach to a user are acknowledged but not recorded: once the user is linked,
    resending the event from Stripe applies it.

    Stripe does not deliver events in order, so an event older (by ``created``) than the newest one
    of its kind already applied to the user is stale: recorded as seen, audited
    (``billing.event_ignored``) and logged as ignored (reason ``stale``), and it changes nothing.
    The kinds are subscriptions (for the customer they belong to) and the customer link; a
    customer event must also be no older than the newest customer event of the user currently
    linked to that customer, whom it would unlink.
    Equal ``created`` (seconds) apply in arrival order; an event without one applies as always.
    """
    if event.type not in _CUSTOMER_EVENTS + ("customer.deleted",) + _SUBSCRIPTION_EVENTS:
        log.info("stripe_event_ignored", event_id=event.id, type=event.type, reason="unhandled_type")
        return "ignored"
    obj = event.object
    stripe_id = _str(obj.get("id"))
    status = _str(obj.get("status"))
    if _str(event.id) is None or stripe_id is None or len(stripe_id) > 255 or (
        event.type in _SUBSCRIPTION_EVENTS and (status is None or len(status) > 40)
    ):
        log.warning("stripe_event_ignored", event_id=event.id, type=event.type, reason="malformed_object")
        return "ignored"
    marker = ids.short_id()
    async with core.store.transaction() as tx:
        if await tx.kv.get(f"stripe_event:{event.id}") is not None:
            return "duplicate"
        user = await _user_for(tx, event)
        if user is None:
            log.info("stripe_event_ignored", event_id=event.id, type=event.type, reason="unknown_customer")
            return "ignored"
        if await tx.kv.put_if_absent(f"stripe_event:{event.id}", marker) != marker:
            return "duplicate"  # a concurrent delivery of the same event won
        newest = await _newest_applied(tx, event, user, stripe_id)
        if event.created is not None and newest is not None and event.created < newest:
            log.info(
                "stripe_event_ignored", event_id=event.id, type=event.type, reason="stale",
                created=event.created, newest=newest,
            )
            await audit.record(
                tx, Event.BILLING_EVENT_IGNORED, None, user.id, actor="stripe", method="webhook",
                event_id=event.id, event_type=event.type, outcome="ignored", reason="stale",
                created=event.created, newest=newest,
            )
            return "ignored"
        if event.type in _CUSTOMER_EVENTS:
            own_id = _str(_metadata(obj).get("customer_id"))
            await _link(tx, user, stripe_id, own_id if own_id and len(own_id) <= 255 else None, "stripe")
        elif event.type == "customer.deleted":
            user.stripe_customer_id = user.customer_id = user.subscription_status = None
        else:
            if status not in SUBSCRIPTION_STATUSES:
                log.warning("stripe_event_status_unknown", event_id=event.id, status=status)
            user.subscription_status = status
        if event.created is not None:
            await _remember_applied(tx, event, user, event.created)
        user.updated_at, user.updated_by = datetime.now(UTC), "stripe"
        await tx.users.save(user)
        await audit.record(
            tx, Event.CUSTOMER_LINKED, None, user.id, actor="stripe", method="webhook",
            event_id=event.id, event_type=event.type, stripe_customer_id=user.stripe_customer_id,
            subscription_status=user.subscription_status,
        )
    return "applied"


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Stripe object's ``metadata``, or nothing when it is missing or not an object."""
    listed = obj.get("metadata")
    return listed if isinstance(listed, Mapping) else {}


def _str(value: object) -> str | None:
    """A non-empty string without control characters or lone surrogates (which PostgreSQL or the
    encoder refuse: a 500 that Stripe would retry for days); anything else counts as absent."""
    return value if isinstance(value, str) and value and not has_control(value) else None


# The ``created`` of the newest event applied, per user and kind, in the kv table:
#   stripe_newest:<user id>:customer       "<created>"
#   stripe_newest:<user id>:subscription   "<created> <stripe customer id>"
# Written under the user's row lock (apply_event), which serialises the events of one user.


def _newest_key(user_id: int, kind: str) -> str:
    return f"stripe_newest:{user_id}:{kind}"


async def _newest_customer(tx: Tx, user_id: int) -> int | None:
    value = await tx.kv.get(_newest_key(user_id, "customer"))
    return int(value) if value and value.isdigit() else None


async def _newest_applied(tx: Tx, event: BillingEvent, user: User, stripe_id: str) -> int | None:
    """The ``created`` an event of this kind must not be older than, or None when there is none."""
    if event.type in _SUBSCRIPTION_EVENTS:
        value = await tx.kv.get(_newest_key(user.id, "subscription"))
        created, _, customer = (value or "").partition(" ")
        # A status recorded for another customer's subscription says nothing about this one.
        if created.isdigit() and customer == user.stripe_customer_id:
            return int(created)
        return None
    newest = await _newest_customer(tx, user.id)
    if event.type in _CUSTOMER_EVENTS:
        holder = await tx.users.find_by_customer(stripe_id)
        if holder is not None and holder.id != user.id:
            theirs = await _newest_customer(tx, holder.id)
            if theirs is not None and (newest is None or theirs > newest):
                newest = theirs
    return newest


async def _remember_applied(tx: Tx, event: BillingEvent, user: User, created: int) -> None:
    if event.type in _SUBSCRIPTION_EVENTS:
        await tx.kv.put(_newest_key(user.id, "subscription"), f"{created} {user.stripe_customer_id}")
    else:
        await tx.kv.put(_newest_key(user.id, "customer"), str(created))


async def _user_for(tx: Tx, event: BillingEvent) -> User | None:
    """The user an event is about, locked for update.

    customer.created/updated: ``metadata.user_id``, then ``metadata.username``, then whoever is
    already linked to the customer; customer.deleted and subscriptions: whoever is linked to the
    Stripe customer id.
    """
    obj = event.object
    found: User | None = None
    if event.type in _CUSTOMER_EVENTS:
        metadata = _metadata(obj)
        user_id, username = _str(metadata.get("user_id")), _str(metadata.get("username"))
        wanted = ids.parse_id(user_id)
        if wanted is not None:
            found = await tx.users.get(wanted)
        if found is None and username and len(username) <= 320:
            found = await tx.users.get_by_username(username)
        if found is None and not (user_id or username):
            found = await _by_customer(tx, obj.get("id"))
    elif event.type == "customer.deleted":
        found = await _by_customer(tx, obj.get("id"))
    else:
        customer = obj.get("customer")
        if isinstance(customer, Mapping):  # an expanded customer object
            customer = customer.get("id")
        found = await _by_customer(tx, customer)
    if found is None:
        return None
    return await tx.users.get(found.id, for_update=True)


async def _by_customer(tx: Tx, stripe_customer_id: object) -> User | None:
    value = _str(stripe_customer_id)
    if value is None or len(value) > 255:
        return None
    return await tx.users.find_by_customer(value)
