"""The HTTP server of ``mailseal serve``: the CA's public repository.

Routes (all GET unless said otherwise; nothing here needs authentication, as RFC 5280 and
RFC 6960 expect of a CA's publication points):

- ``/ca/{name}.crt``: a CA certificate (DER, ``application/pkix-cert``), the AIA caIssuers URL;
- ``/crl/{name}.crl`` and ``/crl/{name}-delta.crl``: the CA's latest full and delta CRL
  (``application/pkix-crl``), the CRL distribution points;
- ``/ocsp``: OCSP (RFC 6960) by POST (``application/ocsp-request``) and by GET
  (``/ocsp/{base64 request}``, RFC 6960 Appendix A.1); answers come pre-signed;
- ``/health``: JSON, 200 when the database answers, else 503;
- ``/metrics``: Prometheus text format.

The application is built by :func:`create_app` around a :class:`Publisher` (what the CA
publishes); it never raises a 5xx for bad input: a malformed OCSP request gets the OCSP
``malformedRequest`` answer, an oversized body 413, an unknown CA 404.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

__all__ = ["MAX_OCSP_REQUEST", "Metrics", "Publisher", "create_app"]

#: The largest OCSP request body accepted (RFC 5019 requests are about 100 bytes).
MAX_OCSP_REQUEST = 16 * 1024

CRL_TYPE = "application/pkix-crl"
CERT_TYPE = "application/pkix-cert"
OCSP_TYPE = "application/ocsp-response"


class Publisher(Protocol):
    """What the server publishes; :class:`mailseal.lifecycle.authority.Authority` is one."""

    def ca_certificate(self, name: str) -> bytes | None: ...

    def crl(self, name: str, *, delta: bool = False) -> tuple[bytes, int] | None:
        """The DER CRL and the seconds until its nextUpdate, or None."""
        ...

    def ocsp(self, request: bytes) -> tuple[bytes, int]:
        """The DER OCSP response and the seconds it may be cached for (0: not at all)."""
        ...

    def health(self) -> dict[str, Any]: ...


class Metrics:
    """Request counters and a latency histogram, in the Prometheus text format."""

    BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = {}
        self._hist: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (route, status)
            self._counts[key] = self._counts.get(key, 0) + 1
            buckets = self._hist.setdefault(route, [0] * (len(self.BUCKETS) + 1))
            for i, edge in enumerate(self.BUCKETS):
                if seconds <= edge:
                    buckets[i] += 1
                    break
            else:
                buckets[-1] += 1
            self._sums[route] = self._sums.get(route, 0.0) + seconds

    def render(self) -> str:
        out = [
            "# HELP mailseal_http_requests_total HTTP requests by route and status.",
            "# TYPE mailseal_http_requests_total counter",
        ]
        with self._lock:
            counts = dict(self._counts)
            hist = {k: list(v) for k, v in self._hist.items()}
            sums = dict(self._sums)
        for (route, status), n in sorted(counts.items()):
            out.append(f'mailseal_http_requests_total{{route="{route}",status="{status}"}} {n}')
        out += [
            "# HELP mailseal_http_request_seconds Time to answer, by route.",
            "# TYPE mailseal_http_request_seconds histogram",
        ]
        for route, buckets in sorted(hist.items()):
            acc = 0
            for edge, n in zip(self.BUCKETS, buckets, strict=False):
                acc += n
                out.append(
                    f'mailseal_http_request_seconds_bucket{{route="{route}",le="{edge}"}} {acc}'
                )
            acc += buckets[-1]
            out.append(f'mailseal_http_request_seconds_bucket{{route="{route}",le="+Inf"}} {acc}')
            out.append(f'mailseal_http_request_seconds_sum{{route="{route}"}} {sums[route]:.6f}')
            out.append(f'mailseal_http_request_seconds_count{{route="{route}"}} {acc}')
        return "\n".join(out) + "\n"


class _Measure:
    """ASGI middleware counting requests per route and status and timing them (a plain ASGI
    wrapper: a fraction of the cost of an ``@app.middleware("http")`` function)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def watch(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")
            name = getattr(route, "name", None) or "unmatched"
            self.metrics.observe(name, status, time.perf_counter() - start)


def _cache_headers(max_age: int) -> dict[str, str]:
    if max_age <= 0:
        return {"Cache-Control": "no-cache"}
    return {"Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate"}


def create_app(publisher: Publisher, *, metrics: Metrics | None = None) -> FastAPI:
    """The FastAPI application publishing what ``publisher`` holds."""
    app = FastAPI(
        title="mailseal",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    m = metrics or Metrics()
    app.state.metrics = m
    app.state.publisher = publisher

    app.add_middleware(_Measure, metrics=m)

    @app.get("/health", name="health")
    def health() -> JSONResponse:
        try:
            info = publisher.health()
        except Exception as exc:  # the database is down: say so, do not crash
            return JSONResponse({"status": "error", "error": str(exc)}, status_code=503)
        code = 200 if info.get("status") == "ok" else 503
        return JSONResponse(info, status_code=code)

    @app.get("/metrics", name="metrics")
    def metrics_route() -> PlainTextResponse:
        return PlainTextResponse(m.render(), media_type="text/plain; version=0.0.4")

    @app.get("/ca/{name}.crt", name="ca")
    def ca_certificate(name: str) -> Response:
        der = publisher.ca_certificate(name)
        if der is None:
            return PlainTextResponse(f"no CA named {name}\n", status_code=404)
        return Response(der, media_type=CERT_TYPE, headers=_cache_headers(3600))

    @app.get("/crl/{name}.crl", name="crl")
    def crl(name: str) -> Response:
        delta = name.endswith("-delta")
        found = publisher.crl(name.removesuffix("-delta") if delta else name, delta=delta)
        if found is None:
            return PlainTextResponse(f"no CRL named {name}\n", status_code=404)
        der, max_age = found
        return Response(der, media_type=CRL_TYPE, headers=_cache_headers(min(max_age, 3600)))

    @app.post("/ocsp", name="ocsp")
    @app.post("/ocsp/", name="ocsp")
    async def ocsp_post(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_OCSP_REQUEST):
            return PlainTextResponse("OCSP request too large\n", status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_OCSP_REQUEST:
                return PlainTextResponse("OCSP request too large\n", status_code=413)
        der, _ = publisher.ocsp(bytes(body))
        return Response(der, media_type=OCSP_TYPE, headers=_cache_headers(0))

    @app.get("/ocsp/{encoded:path}", name="ocsp-get")
    async def ocsp_get(encoded: str) -> Response:
        from mailseal.errors import OcspRequestError
        from mailseal.pki.ocsp import decode_get_path

        if len(encoded) > 2 * MAX_OCSP_REQUEST:
            return PlainTextResponse("OCSP request too large\n", status_code=414)
        try:
            request = decode_get_path(encoded)
        except OcspRequestError:
            request = b""  # answered as malformedRequest by the responder
        der, max_age = publisher.ocsp(request)
        return Response(der, media_type=OCSP_TYPE, headers=_cache_headers(max_age))

    return app
