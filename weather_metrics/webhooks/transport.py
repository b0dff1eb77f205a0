"""Outbound webhook requests with an SSRF guard: public addresses only, no redirects.

The host is resolved here, every address it resolves to is checked, and the request goes
to a checked address (never to the name again, so a second DNS answer cannot swap in an
internal address). `post` raises DeliveryError, which says whether a retry can help.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from weather_metrics.core.errors import ServiceError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list[tuple[Any, ...]]]  # socket.getaddrinfo's shape
MAX_URL = 2048
CGNAT = ipaddress.ip_network("100.64.0.0/10")
RESPONSE_READ_LIMIT = 65_536  # bytes of a receiver's answer read before the connection is dropped
USER_AGENT = "weather-metrics-webhooks/1"


class DeliveryError(ServiceError):
    """A delivery attempt failed; `retryable` says whether sending again can succeed."""

    def __init__(self, message: str, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


def forbidden_reason(address: Address) -> str | None:
    """Why a webhook may not target `address` unless private targets are allowed; None when it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("shared (CGNAT)", isinstance(address, ipaddress.IPv4Address) and address in CGNAT),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not globally routable", not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"{address} is a {name} address"
    return None


def parse_target(url: Any) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of a webhook URL; DeliveryError (not retryable) if unusable."""
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise DeliveryError(f"URL must be a string of at most {MAX_URL} characters", retryable=False)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DeliveryError(f"invalid URL: {exc}", retryable=False) from None
    if parts.scheme not in ("http", "https"):
        raise DeliveryError("URL must start with http:// or https://", retryable=False)
    if not parts.hostname:
        raise DeliveryError("URL has no host", retryable=False)
    if parts.username is not None or parts.password is not None:
        raise DeliveryError("URL must not carry a user name or password", retryable=False)
    if any(ch in url for ch in " \r\n\t"):
        raise DeliveryError("URL must not contain white space", retryable=False)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def resolve(host: str, port: int, resolver: Resolver = socket.getaddrinfo) -> list[Address]:
    """Every address `host` stands for: itself when it is an IP literal, else what DNS answers."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        answers = resolver(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise DeliveryError(f"cannot resolve {host}: {exc}", retryable=True) from None
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in answers:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # drop an IPv6 zone
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise DeliveryError(f"cannot resolve {host}: no addresses", retryable=True)
    return addresses


def within(seconds: float, resolver: Resolver) -> Resolver:
    """`resolver`, giving up after `seconds` with OSError; the lookup ends in its own thread, unwaited for."""

    def resolve_in_time(*args: Any) -> list[tuple[Any, ...]]:
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["answer"] = resolver(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                outcome["error"] = exc

        lookup = threading.Thread(target=run, name="dns-lookup", daemon=True)
        lookup.start()
        lookup.join(seconds)
        if lookup.is_alive():
            raise OSError(f"no answer within {seconds:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["answer"]  # type: ignore[no-any-return]

    return resolve_in_time


def checked_addresses(
    host: str, port: int, allow_private: bool, resolver: Resolver = socket.getaddrinfo
) -> list[Address]:
    """The addresses of `host`, every one of them allowed; DeliveryError (not retryable) naming a refused one."""
    addresses = resolve(host, port, resolver)
    if not allow_private:
        for address in addresses:
            reason = forbidden_reason(address)
            if reason is not None:
                raise DeliveryError(f"refused: {host} resolves to {reason}", retryable=False)
    return addresses


class PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to one checked IP address; TLS verifies the certificate against `tls_host`."""

    def __init__(self, address: Address, port: int, timeout: float, tls_host: str | None) -> None:
        super().__init__(str(address), port, timeout=timeout)
        self._tls_host = tls_host

    def connect(self) -> None:
        super().connect()
        if self._tls_host is not None:
            self.sock = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self._tls_host)


def _host_header(host: str, port: int, scheme: str) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"


def _send_to(
    address: Address, scheme: str, host: str, port: int, path: str, body: bytes, headers: dict[str, str], timeout: float
) -> int:
    connection = PinnedConnection(address, port, timeout, host if scheme == "https" else None)
    # `timeout` bounds each socket operation; this bounds the whole attempt (connect, send, response),
    # so a receiver that answers a byte at a time cannot hold a delivery thread.
    expired = threading.Event()
    watchdog = threading.Timer(timeout, _cut, args=(connection, expired))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={
                **headers,
                "Host": _host_header(host, port, scheme),
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            },
        )
        response = connection.getresponse()
        response.read(RESPONSE_READ_LIMIT)
        if expired.is_set():
            raise TimeoutError
        return response.status
    except (OSError, http.client.HTTPException):
        if expired.is_set():
            raise TimeoutError from None
        raise
    finally:
        watchdog.cancel()
        connection.close()


def _cut(connection: http.client.HTTPConnection, expired: threading.Event) -> None:
    """The attempt's time is up: shut its socket, so whatever read or write it is in ends now."""
    expired.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    allow_private: bool,
    resolver: Resolver = socket.getaddrinfo,
) -> int:
    """POST `body` to `url`; the 2xx status, or DeliveryError. Redirects are not followed."""
    scheme, host, port, path = parse_target(url)
    addresses = checked_addresses(host, port, allow_private, resolver)
    status = None
    for index, address in enumerate(addresses):
        try:
            status = _send_to(address, scheme, host, port, path, body, headers, timeout)
            break
        except TimeoutError:
            raise DeliveryError(f"timed out after {timeout:g}s", retryable=True) from None
        except ssl.SSLError as exc:
            raise DeliveryError(f"TLS failed: {exc}", retryable=True) from None
        except ConnectionRefusedError as exc:
            if index == len(addresses) - 1:  # try the host's next address first
                raise DeliveryError(f"connection failed: {exc}", retryable=True) from None
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryError(f"connection failed: {type(exc).__name__}: {exc}", retryable=True) from None
    assert status is not None
    if 200 <= status < 300:
        return status
    if 300 <= status < 400:
        raise DeliveryError(f"redirect not followed (status {status})", retryable=False, status=status)
    retryable = status == 429 or status >= 500
    raise DeliveryError(f"receiver answered {status}", retryable=retryable, status=status)
