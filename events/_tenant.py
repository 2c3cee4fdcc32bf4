"""Tenant ids and the subjects derived from them: the one place that knows both."""

from __future__ import annotations

import re

__all__ = [
    "EVENT_SUBJECT_PREFIX",
    "EVENT_SUBJECT_WILDCARD",
    "InvalidTenantError",
    "event_subject",
    "tenant_of_subject",
    "validate_tenant",
]

_TENANT_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

EVENT_SUBJECT_PREFIX = "tgqr.evt."
EVENT_SUBJECT_WILDCARD = "tgqr.evt.*"


class InvalidTenantError(ValueError):
    """Raised when a tenant id does not match ``^[A-Za-z0-9_-]{1,64}$``."""

    code = "invalid_tenant"


def validate_tenant(tenant: object) -> str:
    """Return ``tenant`` unchanged if it is a valid tenant id.

    Raises:
        InvalidTenantError: for anything else (wrong type, empty, too long, other characters).
    """
    if not isinstance(tenant, str) or _TENANT_RE.fullmatch(tenant) is None:
        shown = repr(tenant)[:80]
        raise InvalidTenantError(f"invalid tenant id {shown}: expected ^[A-Za-z0-9_-]{{1,64}}$")
    return tenant


def event_subject(tenant: str) -> str:
    """The JetStream subject of ``tenant``'s events (one subject per aggregate)."""
    return EVENT_SUBJECT_PREFIX + validate_tenant(tenant)


def tenant_of_subject(subject: str) -> str:
    """The tenant id of an event subject.

    Raises:
        InvalidTenantError: if ``subject`` is not ``tgqr.evt.<tenant>``.
    """
    if not subject.startswith(EVENT_SUBJECT_PREFIX):
        raise InvalidTenantError(f"not an event subject: {subject[:100]!r}")
    return validate_tenant(subject[len(EVENT_SUBJECT_PREFIX) :])
