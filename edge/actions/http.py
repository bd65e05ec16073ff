"""HTTP: one request per detection (a lamp, a Home Assistant webhook, Shelly, Tasmota)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from ..detector import Detection
from ..errors import ActionError, ConfigError
from .base import MAX_REASON_CHARS, Action, PermanentActionError, _short, render


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
HTTP_SCHEMES = ("http", "https")
DEFAULT_HTTP_TIMEOUT = 2.0
DEFAULT_HTTP_RETRIES = 2
MAX_HTTP_RETRIES = 10
HTTP_SERVER_ERROR = 500
"""Status codes from here up are worth a retry; 4xx answers are not (the request is wrong)."""
MAX_RESPONSE_BYTES = 64 * 1024
USER_AGENT = "trigger-edge"


def check_http_url(url: str) -> str | None:
    """Why ``url`` is not a usable http(s) URL, or None when it is."""
    if not isinstance(url, str) or not url or any(ch.isspace() for ch in url):
        return f"not a URL: {url!r}" if not isinstance(url, str) or not url else "URL contains whitespace"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in HTTP_SCHEMES:
        return f"URL must start with http:// or https://, got {parts.scheme + '://' if parts.scheme else 'no scheme'}"
    if not parts.hostname:
        return "URL has no host"
    if parts.username is not None or parts.password is not None:
        return "URL must not contain user:password@ (use an Authorization header)"
    try:
        parts.port
    except ValueError:
        return "URL has an invalid port"
    return None


def redact_url(url: str) -> str:
    """``scheme://host:port`` plus ``/…`` when there is more: paths and queries often hold
    webhook ids or tokens, so they never reach a log line."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port is not None else host
    rest = "/…" if parts.path not in ("", "/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{netloc}{rest}"


@dataclass(frozen=True)
class HttpConfig:
    """An HTTP request per detection (urllib only; system proxies are ignored: lamps and
    hubs are on the local network).

    Examples::

        # Home Assistant webhook (an automation with a "Webhook" trigger)
        HttpConfig("http://homeassistant.local:8123/api/webhook/trigger-edge",
                   body='{"word": "{model}", "score": {score}}')
        # Shelly relay: toggle output 0
        HttpConfig("http://192.168.1.50/relay/0?turn=toggle", method="GET")
        # Tasmota plug: toggle power
        HttpConfig("http://192.168.1.51/cm?cmnd=Power%20TOGGLE", method="GET")

    ``body`` may contain ``{time}`` (stream seconds), ``{sample}``, ``{score}`` and
    ``{model}``. Without a ``Content-Type`` header, a body that is valid JSON is sent as
    ``application/json``, anything else as ``text/plain``.
    """

    url: str
    method: str = "POST"
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """May hold tokens (``Authorization: Bearer …``): kept out of repr and logs."""
    timeout: float = DEFAULT_HTTP_TIMEOUT
    retries: int = DEFAULT_HTTP_RETRIES

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", str(self.method).upper())
        object.__setattr__(self, "headers", dict(self.headers))
        if self.method not in HTTP_METHODS:
            raise ConfigError(f"method must be one of {', '.join(HTTP_METHODS)}, got {self.method!r}")
        if self.body is not None and self.method == "GET":
            raise ConfigError("a GET request has no body: use method = \"POST\" or drop body")
        if not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 s, got {self.timeout}")
        if not 0 <= self.retries <= MAX_HTTP_RETRIES:
            raise ConfigError(f"retries must be 0-{MAX_HTTP_RETRIES}, got {self.retries}")


class HttpAction(Action):
    """Send ``HttpConfig``'s request. A bad URL is an ``ActionError`` here, at construction.

    Errors: no answer (refused, timed out, DNS) and HTTP 5xx raise ``ActionError`` (the
    dispatcher retries ``retries`` times); HTTP 4xx raises ``PermanentActionError``.
    """

    def __init__(self, config: HttpConfig) -> None:
        problem = check_http_url(config.url)
        if problem:
            raise ActionError(f"http action: {problem}")
        self.config = config
        self.retries = config.retries
        self.name = f"http {config.method} {redact_url(config.url)}"
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._headers = {"User-Agent": USER_AGENT, **config.headers}
        if config.body is not None and not any(k.lower() == "content-type" for k in self._headers):
            self._headers["Content-Type"] = _content_type(config.body)

    def trigger(self, detection: Detection) -> None:
        data = render(self.config.body, detection).encode("utf-8") if self.config.body is not None else None
        request = urllib.request.Request(self.config.url, data=data, method=self.config.method, headers=self._headers)
        try:
            with self._opener.open(request, timeout=self.config.timeout) as response:
                response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            message = f"{self.name} answered HTTP {exc.code} {str(exc.reason)[:MAX_REASON_CHARS]}"
            exc.close()
            if exc.code >= HTTP_SERVER_ERROR:
                raise ActionError(message) from None
            raise PermanentActionError(message) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # OSError covers socket timeouts and resets while reading; http.client's
            # protocol errors (BadStatusLine ...) are HTTPException, caught below.
            raise ActionError(f"{self.name} did not answer: {_short(exc)}") from None
        except Exception as exc:  # http.client.HTTPException and friends
            raise ActionError(f"{self.name} gave a broken answer: {_short(exc)}") from None


def _content_type(body: str) -> str:
    try:
        json.loads(body.replace("{score}", "0").replace("{time}", "0").replace("{sample}", "0"))
    except ValueError:
        return "text/plain; charset=utf-8"
    return "application/json"

