"""An OTLP/HTTP receiver for the tests: a stdlib HTTP server in a thread that keeps the
decoded export requests (the exporter posts synchronously from the SDK's threads)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass
class Received:
    url: str
    span_names: list[str] = field(default_factory=list)
    metric_names: list[str] = field(default_factory=list)
    content_types: set[str] = field(default_factory=set)


@contextmanager
def otlp_receiver() -> Iterator[Received]:
    received: Received

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.content_types.add(self.headers.get("content-type", ""))
            if self.path == "/v1/traces":
                traces = ExportTraceServiceRequest.FromString(body)
                received.span_names += [
                    span.name
                    for resource in traces.resource_spans
                    for scope in resource.scope_spans
                    for span in scope.spans
                ]
            elif self.path == "/v1/metrics":
                metrics = ExportMetricsServiceRequest.FromString(body)
                received.metric_names += [
                    metric.name
                    for resource in metrics.resource_metrics
                    for scope in resource.scope_metrics
                    for metric in scope.metrics
                ]
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received = Received(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
