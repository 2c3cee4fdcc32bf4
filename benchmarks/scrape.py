"""The size of one ``/metrics`` scrape with many tenants, with and without the tenant label.

Every tenant goes through what the service records for it (a start, a QR, a login that
succeeds or, for one in five, expires; flood waits on three Telegram methods; a failure; a
refused command; a client cleanup; a lease), through the real ``Telemetry`` and the real
``Exposition`` (the OpenTelemetry SDK and prometheus_client, as ``tgqr up`` serves them).
The figures are series (sample lines), bytes, and the time to render one scrape. The series
count depends only on the label sets, so no service needs to run.

    python -m benchmarks.scrape [--json] [--tenants 10000]
"""

from __future__ import annotations

import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from actors.metrics import Exposition
from actors.telemetry import Telemetry
from benchmarks._common import bench_args, report

_METHODS = ("auth.ExportLoginTokenRequest", "auth.ImportLoginTokenRequest", "auth.CheckPassword")


def _scrape(tenants: int, *, tenant_label: bool) -> dict[str, float | int]:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    exposition = Exposition(reader)
    t = Telemetry(meters, tenant_label=tenant_label, exposition=exposition)
    t.watch(projector_lag=lambda: 0, live_actors=lambda: tenants)
    for n in range(tenants):
        tenant = f"tenant-{n:05d}"
        t.qr_start(tenant)
        t.qr_published(tenant)
        if n % 5:
            t.qr_success(tenant)
        else:
            t.qr_expired(tenant)
        for method in _METHODS:
            t.floodwait(tenant, 5, method)
        t.login_failed(tenant, "telegram_unavailable")
        t.rate_limit_hit(tenant, "start")
        t.session_cleanup(tenant, 0.05)
        t.session_lease(tenant, "granted")
    started = time.perf_counter()
    body, _ = exposition.render()
    render_ms = (time.perf_counter() - started) * 1000
    meters.shutdown()
    lines = body.decode().splitlines()
    samples = [line for line in lines if line and not line.startswith("#")]
    ours = [s for s in samples if not s.startswith(("process_", "python_"))]
    return {"series": len(samples), "tgqr_series": len(ours), "bytes": len(body), "ms": render_ms}


def main() -> None:
    parser = bench_args(__doc__ or "")
    parser.add_argument("--tenants", type=int, default=10_000)
    args = parser.parse_args()
    plain = _scrape(args.tenants, tenant_label=False)
    labelled = _scrape(args.tenants, tenant_label=True)
    figures: dict[str, float | int | str] = {"tenants": args.tenants}
    for name, result in (("default", plain), ("tenant_label", labelled)):
        figures[f"{name} series"] = result["series"]
        figures[f"{name} tgqr series"] = result["tgqr_series"]
        figures[f"{name} KiB"] = round(result["bytes"] / 1024, 1)
        figures[f"{name} render ms"] = round(float(result["ms"]), 1)
    report(f"/metrics at {args.tenants:,} tenants", figures, as_json=args.json)


if __name__ == "__main__":
    main()
