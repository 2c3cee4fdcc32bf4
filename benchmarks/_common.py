"""Helpers shared by the benchmarks: a private nats-server, a table printer, --json."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from actors.service import NatsServer, start_nats_server

__all__ = ["bench_args", "nats_server", "report"]


def bench_args(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", action="store_true", help="print one JSON object last")
    return parser


@contextmanager
def nats_server() -> Iterator[NatsServer]:
    """A throwaway nats-server with its store in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="tgqr-bench-") as tmp:
        server = start_nats_server(Path(tmp) / "nats")
        try:
            yield server
        finally:
            server.stop()


def report(title: str, figures: Mapping[str, float | int | str], *, as_json: bool) -> None:
    """Print the figures as a two-column table, or as one JSON line."""
    if as_json:
        print(json.dumps(dict(figures)))
        return
    width = max(len(k) for k in figures)
    print(title)
    print("-" * (width + 16))
    for key, value in figures.items():
        shown = f"{value:,.2f}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown:>12}")
