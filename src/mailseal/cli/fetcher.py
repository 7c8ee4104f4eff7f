"""An HTTP implementation of :class:`mailseal.validation.fetch.Fetcher` (standard library only).

Validation code never imports an HTTP client; the command line injects this one. Only http and
https URLs are fetched (also across redirects), responses are size-bounded, and every failure
becomes a :class:`~mailseal.validation.fetch.FetchError`.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import IO, Any
from urllib.parse import urlsplit

from mailseal import __version__
from mailseal.validation.fetch import FetchError, FetchRequest

__all__ = ["HttpFetcher"]

_SCHEMES = ("http", "https")


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = 3

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urlsplit(newurl).scheme.lower() not in _SCHEMES:
            raise FetchError(f"{req.full_url} redirects to a non-HTTP URL")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class HttpFetcher:
    """Fetch CRLs (GET), OCSP responses (POST, RFC 6960 A.1) and certificates over HTTP."""

    def __init__(self, *, user_agent: str | None = None) -> None:
        self.user_agent = user_agent or f"mailseal/{__version__}"
        self._opener = urllib.request.build_opener(_Redirects())

    def fetch(self, request: FetchRequest) -> bytes:
        url = request.url
        if urlsplit(url).scheme.lower() not in _SCHEMES:
            raise FetchError(f"{url}: only http and https URLs are fetched")
        headers = {"User-Agent": self.user_agent, "Accept": request.accept}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        req = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url,
            data=request.body,
            headers=headers,
            method="POST" if request.body is not None else "GET",
        )
        try:
            with self._opener.open(req, timeout=request.timeout) as resp:
                status = getattr(resp, "status", 200)
                if status != 200:
                    raise FetchError(f"{url} answered HTTP {status}")
                data: bytes = resp.read(request.max_bytes + 1)
        except FetchError:
            raise
        except urllib.error.HTTPError as exc:
            raise FetchError(f"{url} answered HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise FetchError(f"cannot reach {url} ({exc.reason})") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise FetchError(f"cannot fetch {url} ({exc or type(exc).__name__})") from None
        if len(data) > request.max_bytes:
            raise FetchError(f"{url} sent more than {request.max_bytes} bytes")
        return data
