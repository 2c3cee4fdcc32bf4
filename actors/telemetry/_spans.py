"""A command's span, started when the request arrives and ended when its work is stored."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["PROPAGATOR", "CommandSpan", "traceparents"]

PROPAGATOR: Final = TraceContextTextMapPropagator()
_TRACE_FIELD: Final = re.compile(rb'"trace":"(00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2})"')


def traceparents(messages: Iterable[bytes]) -> list[str]:
    """The ``trace`` fields of encoded events (compact JSON), found without decoding them:
    a quoted key cannot occur inside a JSON string, whose quotes are escaped."""
    return [m.group(1).decode() for data in messages if (m := _TRACE_FIELD.search(data))]


class CommandSpan:
    """One command's span: :attr:`traceparent` names it for the events; :meth:`end` once.

    Not a context manager on purpose: the request's task hands the command to an actor and
    the span ends when that actor has stored the first event (or answered without one).
    """

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        carrier: dict[str, str] = {}
        PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        self.traceparent: str | None = carrier.get("traceparent")
        self._ended = False

    def end(self, error: str | None = None) -> None:
        """End the span (only the first call counts); ``error``: a stable error code to mark
        it failed with."""
        if self._ended:
            return
        self._ended = True
        if error is not None:
            self.span.set_status(Status(StatusCode.ERROR, error))
        self.span.end()
