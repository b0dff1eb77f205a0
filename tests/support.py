"""Test helpers: valid events, and a real gunicorn server started as the Procfile says."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from tests import databases

ROOT = Path(__file__).resolve().parent.parent
TEST_JWT_SECRET = "test-only-signing-secret-" + "k" * 48

# For tests of data at fixed past dates: the service's housekeeping, which runs as an app
# starts, must not prune it (by default raw rows go after 90 days, rollups after 400).
KEEP_HISTORY = {"retention_days": 3650, "rollup_retention_days": 36500}


def current_hour(hours_ago: int = 0) -> str:
    """An ISO timestamp of the start of the current hour, minus `hours_ago`."""
    moment = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_event(**overrides: Any) -> dict[str, Any]:
    """A valid standard-level event; keyword arguments replace or add fields (None removes)."""
    event: dict[str, Any] = {
        "version": "1.0.0",
        "tool": "get_forecast",
        "status": "success",
        "timestamp_hour": current_hour(),
        "analytics_level": "standard",
        "response_time_ms": 150,
        "service": "noaa",
        "cache_hit": True,
        "country": "US",
    }
    for key, value in overrides.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 30,
    context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One real HTTP request; returns status, headers and the JSON (or text) body."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            status, got_headers, payload = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, got_headers, payload = error.code, dict(error.headers), error.read()
        error.close()
    try:
        return status, got_headers, json.loads(payload)
    except ValueError:
        return status, got_headers, payload.decode()


class Server:
    """The service under gunicorn, started with the Procfile's command on a free port."""

    def __init__(self, database: Path, root: Path = ROOT, **settings: Any) -> None:
        """`root`: the checkout whose Procfile and code run (another one's, for an A/B benchmark)."""
        self.root = root
        self.port = free_port()
        tls = settings.get("tls_certfile")
        # HTTPS when the settings give a certificate: the server's own TLS, trusted by these helpers.
        self.context = ssl.create_default_context(cafile=str(tls)) if tls else None
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "WEATHER_METRICS_DATABASE": databases.location(database),
            "WEATHER_METRICS_RATE_LIMIT_PER_MINUTE": "1000000",
            "WEATHER_METRICS_JWT_SECRET": TEST_JWT_SECRET,
        }
        self.env["WEATHER_METRICS_CONFIG"] = os.devnull  # not a developer's ./config.toml
        for key, value in {**databases.files_beside(database), **settings}.items():
            self.env[f"WEATHER_METRICS_{key.upper()}"] = str(value)
        self.log = database.with_suffix(".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Server:
        return self.launch().wait_until_healthy(timeout)

    def launch(self) -> Server:
        """Start the process without waiting for it: `started` starts several at once."""
        command = (self.root / "Procfile").read_text().split("web:", 1)[1].strip()
        argv = shlex.split(command)
        argv[0] = str(Path(sys.executable).parent / argv[0])
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_until_healthy(self, timeout: float = 30) -> Server:
        assert self.process is not None, "launch() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if http("GET", self.url + "/v1/health", timeout=2, context=self.context)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the server and wait for it; returns its exit code."""
        self.send_signal(sig)
        return self.wait_stopped(timeout)

    def wait_stopped(self, timeout: float = 60) -> int:
        """Wait for the signalled server to exit (killed after `timeout`); returns its exit code."""
        if self.process is None:
            return 0
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def send_signal(self, sig: int = signal.SIGTERM) -> None:
        """Signal the server without waiting for it (a stopped one: nothing)."""
        if self.process is None or self.process.poll() is not None:
            return
        if sig == signal.SIGKILL:
            # Kill the worker too, as a crash or the OOM killer would.
            subprocess.run(["pkill", "-KILL", "-P", str(self.process.pid)], check=False)
        self.process.send_signal(sig)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def started(*servers: Server, timeout: float = 30) -> Iterator[tuple[Server, ...]]:
    """Several servers started at once and stopped at once: each takes about a second to start and to stop."""
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.wait_until_healthy(timeout)
        yield servers
    finally:
        for server in servers:
            server.send_signal()
        for server in servers:
            server.wait_stopped()


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files in `folder`: for the server's own HTTPS."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = folder / "cert.pem", folder / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return certfile, keyfile


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    """Debian's nginx with docs/nginx.conf, in front of the server on `upstream_port`; its URL is `url`."""

    def __init__(self, upstream_port: int, folder: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        site = (ROOT / "docs" / "nginx.conf").read_text()
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        (folder / "site.conf").write_text(site.replace("127.0.0.1:3000", f"127.0.0.1:{upstream_port}"))
        temp_paths = "".join(f" {kind}_temp_path {folder}/{kind};\n" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
        (folder / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "")  # workers may write temp files in root's folders
            + f"daemon off;\nworker_processes 1;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log;\n"
            + "events { worker_connections 4096; }\n"
            + f"http {{\n access_log off;\n client_body_temp_path {folder}/body;\n{temp_paths}"
            + f" include {folder}/site.conf;\n}}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        with open(self.folder / "stderr.log", "wb") as stderr:
            self.process = subprocess.Popen(
                [NGINX, "-c", str(self.folder / "nginx.conf"), "-p", str(self.folder)], stderr=stderr
            )
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("nginx did not start: " + (self.folder / "stderr.log").read_text()) from None
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def assert_vendored(folder: Path, package: str, licences: set[str]) -> None:
    """A folder of files from an npm package: each byte for byte what its README's table says, and the
    README names every file, the package and version (the folder's name ends in the version), and the licence."""
    readme = (folder / "README.md").read_text()
    assert f"`{package}@{folder.name.rsplit('-', 1)[1]}`" in readme
    listed = dict(re.findall(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$", readme, re.MULTILINE))
    files = {path.name for path in folder.iterdir()} - {"README.md"}
    assert set(listed) == files
    assert licences <= files
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


# --- Debian's Chromium, driven by selenium: pages as a browser draws them ------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


DRAWN = 20  # seconds for a page to draw


def wait_drawn(driver: Any, condition: Any) -> Any:
    """What `condition(driver)` returns once it is true, waiting up to DRAWN seconds.

    An element read while the browser replaces the page (after a form is sent) is stale: tried again.
    """
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, DRAWN, ignored_exceptions=ignored).until(condition)


def chromium(width: int = 1280, height: int = 1600) -> Any:
    """Headless Chromium keeping its console and network logs; skips when missing (fails under STRICT)."""
    import pytest

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (the dev dependency group)")
    if missing:
        if os.environ.get("WEATHER_METRICS_TEST_STRICT"):
            pytest.fail(f"browser tests need {', '.join(missing)}; .ci/run installs chromium and chromium-driver")
        pytest.skip(f"{', '.join(missing)} missing: apt-get install chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def console_problems(driver: Any) -> list[str]:
    """Console errors and warnings since the last call (CSP violations among them)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


# --- Debian's poppler-utils: PDFs as a reader sees them -------------------------------------------


@dataclass(frozen=True)
class PdfWord:
    """A word of a PDF page as pdftotext places it, in points from the page's top left."""

    page: int
    text: str
    left: float
    top: float
    right: float
    bottom: float


def poppler() -> None:
    """Skips when pdftoppm or pdftotext is missing (fails under STRICT)."""
    import pytest

    missing = [tool for tool in ("pdftoppm", "pdftotext") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("WEATHER_METRICS_TEST_STRICT"):
            pytest.fail(f"PDF rendering tests need {', '.join(missing)}; .ci/run installs poppler-utils")
        pytest.skip(f"{', '.join(missing)} missing: apt-get install poppler-utils (.ci/run does)")


def pdf_words(path: Path) -> list[PdfWord]:
    """Every word of the PDF with its page (from 1) and box, read by pdftotext."""
    import xml.etree.ElementTree as ElementTree

    poppler()
    xhtml = subprocess.run(["pdftotext", "-bbox", str(path), "-"], capture_output=True, check=True, text=True).stdout
    namespace = {"x": "http://www.w3.org/1999/xhtml"}
    words = []
    for number, page in enumerate(ElementTree.fromstring(xhtml).iterfind(".//x:page", namespace), start=1):
        for word in page.iterfind("x:word", namespace):
            box = [float(word.attrib[key]) for key in ("xMin", "yMin", "xMax", "yMax")]
            words.append(PdfWord(number, word.text or "", *box))
    return words


def pdf_page_image(path: Path, page: int, dpi: int = 72) -> Any:
    """One page drawn by pdftoppm, as a Pillow RGB image (at 72 dpi a pixel is a point)."""
    from PIL import Image

    poppler()
    prefix = path.with_name(f"{path.stem}-page{page}")
    subprocess.run(
        ["pdftoppm", "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile", str(path), str(prefix)],
        check=True,
    )
    with Image.open(prefix.with_suffix(".png")) as image:
        return image.convert("RGB")


def requested_urls(driver: Any) -> list[str]:
    """Every URL the browser asked for since the last call, including ones a policy then blocked."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


@dataclass
class Member:
    """A seeded user: the model row, their password, and the headers of a fresh login."""

    user: Any
    password: str
    headers: dict[str, str]
    refresh_token: str


def login(client: Any, email: str, password: str) -> dict[str, Any]:
    """POST /api/auth/login; the JSON answer (asserting it succeeded)."""
    response = client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def seed_org(app: Any, name: str = "Acme") -> dict[str, Member]:
    """An organization with an admin, a manager and a developer, each logged in."""
    from weather_metrics.accounts import organizations as accounts

    passwords = app.extensions["weather_metrics"].passwords
    slug = name.lower().replace(" ", "-")
    people: dict[str, Member] = {}
    with app.app_context():
        org, admin, admin_password = accounts.create_organization(name, f"admin@{slug}.test", "Admin", passwords)
        seeded = [("admin", admin, admin_password)]
        for role in ("manager", "developer"):
            user, password = accounts.create_user(org.id, f"{role}@{slug}.test", role.title(), role, passwords)
            seeded.append((role, user, password))
    client = app.test_client()
    for role, user, password in seeded:
        tokens = login(client, user.email, password)
        people[role] = Member(
            user, password, {"Authorization": f"Bearer {tokens['access_token']}"}, tokens["refresh_token"]
        )
    return people


API_ERROR_CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "CONFLICT",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


def assert_api_error(response: Any, status: int) -> dict[str, Any]:
    """The response is `status` with the spec's error body; returns the inner error object."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.is_json, response.content_type
    body = response.get_json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details", "timestamp", "request_id"}, error
    assert error["code"] == API_ERROR_CODES[status], error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["details"], dict), error
    stamp = datetime.fromisoformat(error["timestamp"])
    assert stamp.tzinfo is not None, error["timestamp"]
    assert abs(stamp.timestamp() - time.time()) < 300, error["timestamp"]
    assert error["request_id"] and error["request_id"] == response.headers["X-Request-ID"], error
    if status == 401:
        assert response.headers.get("WWW-Authenticate") == "Bearer"
    return error  # type: ignore[no-any-return]


def sample(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample of a Prometheus text page, as Prometheus reads it; None when the series is not there."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == (labels or {}):
                return float(found.value)
    return None


def scraped(client: Any, name: str, labels: dict[str, str] | None = None, expect: float | None = None) -> float:
    """One sample of the app's /metrics (0 when absent). With `expect`, waits up to 10 s for that value:
    the writer counts what it committed just after it acknowledges it."""
    deadline = time.monotonic() + 10
    while True:
        value = sample(client.get("/metrics").get_data(as_text=True), name, labels) or 0.0
        if expect is None or value == expect or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


Seeded = TypeVar("Seeded")


def seeded_database(path: Path, seed: Callable[[Any], Seeded]) -> Seeded:
    """Build a database file once with `seed(app)`; returns what seed returned.

    Seeding hashes passwords with Argon2, the slow part of many tests: a module seeds one
    file, and each test works on its own copy of it (see the `service` fixture).
    """
    from weather_metrics import create_app

    settings = {
        "database": databases.location(path),
        **databases.files_beside(path),
        "jwt_secret": TEST_JWT_SECRET,
        "password_time_cost": 2,
        "password_memory_kib": 19456,
    }
    # The members' access tokens are minted here once per run: a day's lifetime outlasts a slow run.
    app = create_app({**settings, "access_token_minutes": 1440})
    try:
        seeded = seed(app)
    finally:
        app.extensions["weather_metrics"].close()
    if not databases.ON_POSTGRESQL:
        with sqlite3.connect(path) as conn:  # everything into the main file, which is what gets copied
            assert conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        conn.close()
    return seeded


# --- WebSockets by hand: clients that misbehave on purpose ----------------------------------------


def upgrade_request(query: str = "") -> bytes:
    """The bytes of a WebSocket upgrade of /ws, with a fresh key."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def raw_upgrade(port: int, query: str = "", receive_buffer: int | None = None) -> socket.socket:
    """A WebSocket opened by hand: it answers nothing unless the test makes it."""
    raw = socket.socket()
    if receive_buffer:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    raw.connect(("127.0.0.1", port))
    raw.sendall(upgrade_request(query))
    head = b""
    while b"\r\n\r\n" not in head:
        head += raw.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return raw


def masked_frame(payload: bytes, opcode: int = 0x1, final: bool = True) -> bytes:
    """One client-to-server frame (clients must mask): text by default, or a ping (0x9) and so on."""
    mask = os.urandom(4)
    size = len(payload)
    head = bytes([(0x80 if final else 0) | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + size.to_bytes(8, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def masked_text(text: str) -> bytes:
    return masked_frame(text.encode())


def rule_body(**changes: Any) -> dict[str, Any]:
    """A valid alert rule (POST /api/alerts/rules): errors above half the calls, checked over 10 minutes."""
    body = {
        "name": "Errors",
        "metric": "error_rate",
        "scope": {"type": "organization"},
        "comparison": "gt",
        "threshold": 50,
        "window_minutes": 10,
        "severity": "high",
        "cooldown_minutes": 0,
    }
    return {**body, **changes}


# Pages in Chromium: a phone or a desktop, and the whole page as a PNG.
PHONE, DESKTOP = 375, 1440


def set_width(driver: Any, width: int) -> None:
    """A phone (touch, overlay scrollbars, the viewport meta tag obeyed) at 375 px, else a desktop window."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 812 if width == PHONE else 900, "deviceScaleFactor": 1, "mobile": width == PHONE},
    )


def full_page_screenshot(driver: Any, path: Path, width: int) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))
