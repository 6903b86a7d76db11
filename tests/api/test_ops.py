"""Operations surface (CONTRACT §2)."""

from __future__ import annotations

from tests.conftest import Harness


async def test_health_ready_metrics_docs(hdb: Harness) -> None:
    assert (await hdb.client.get("/healthz")).json() == {"status": "ok"}
    ready = await hdb.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    await hdb.client.get("/nope")
    metrics = await hdb.client.get("/metrics")
    assert metrics.status_code == 200
    assert 'authgate_requests_total{method="GET",status="404",surface="ops"}' in metrics.text
    assert "authgate_request_seconds_bucket" in metrics.text
    docs = await hdb.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = (await hdb.client.get("/openapi.json")).json()
    for path in ("/healthz", "/readyz", "/.well-known/jwks.json", "/api/auth/v1/signup", "/api/auth/csrf-token"):
        assert path in spec["paths"], path


async def test_every_response_has_a_request_id(h: Harness) -> None:
    r = await h.client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert len((await h.client.get("/healthz")).headers["x-request-id"]) == 32


async def test_unknown_paths_and_methods_in_the_default_envelope(h: Harness) -> None:
    r = await h.client.get("/no/such/thing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "route_not_found"
    r = await h.client.post("/healthz")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_fastapi_opentelemetry_is_off_unless_the_process_asks_for_it(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from authgate.app import create_app
    from tests.conftest import test_settings

    for name in [n for n in __import__("os").environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("FASTAPI_OTEL_AUTO_CONFIGURE", raising=False)
    settings = test_settings("sqlite+aiosqlite:///:memory:")
    assert create_app(settings)._telemetry["tracing"] is False
    monkeypatch.setenv("OTEL_SERVICE_NAME", "authgate")
    assert create_app(settings)._telemetry["tracing"] is True
