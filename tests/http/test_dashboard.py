"""The dashboard in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
selenium) against a real daemon (sim driver) and its supervised gateway subprocess.

Screenshots go to the test's tmp dir and are copied to `test-artifacts/` (git-ignored)."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.http.conftest import Stack, free_port, http, start_stack
from tests.waiting import wait_until
from waz_actors.control.client import Client

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

webdriver = pytest.importorskip("selenium.webdriver")
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        "chromium and chromium-driver are not installed (scripts/setup)", allow_module_level=True
    )

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture(scope="module")
def dash() -> Iterator[Stack]:
    """Time runs 20x: a QR rotates every second (`sim.qr_interval` 20 s), pairing waits 30 s."""
    root = Path(tempfile.mkdtemp(prefix="wzd", dir="/tmp"))
    s = start_stack(
        root,
        root / "run",
        free_port(),
        daemon={"time_scale": 0.05},
        sim={"qr_interval": 20.0},
        connection={"pairing_timeout": 600.0},
    )
    yield s
    s.admin.close()
    s.daemon.stop(timeout=10)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(dash: Stack, tenant: tuple[str, Client]) -> Iterator[Any]:
    """Chromium, signed in as the tenant (with a WAZIPER-style link)."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,860", "--no-first-run", "--disable-extensions"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    driver.get(f"{dash.base}/?access_token={tenant[0]}")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def tenant(dash: Stack) -> tuple[str, Client]:
    token = dash.tenant_token("dash")
    return token, Client(dash.daemon.cfg.control_endpoint, token, timeout=5)


def shot(driver: Any, tmp_path: Path, name: str, height: int = 860) -> Path:
    path = tmp_path / f"{name}.png"
    driver.set_window_size(1280, height)
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(1280, 860)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    return path


def text_of(driver: Any, css: str) -> str | None:
    """Read in the page: live refreshes replace elements, so no element handle is kept."""
    got = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null", css
    )
    return None if got is None else str(got)


def chip(driver: Any, name: str) -> None:
    """Clicks a status filter of the messages (in the page: the list may be refreshed)."""
    driver.execute_script(
        "for (const a of document.querySelectorAll('.chip'))"
        " if (a.textContent === arguments[0]) { a.click(); return; }",
        name,
    )


def colour_of(driver: Any, iid: str) -> str:
    """The health dot's colour as the browser paints it (read in the page: rows get replaced)."""
    return str(driver.execute_script(
        "return getComputedStyle(document.querySelector(arguments[0])).backgroundColor",
        f'tr[data-instance="{iid}"] .dot',
    ))  # fmt: skip


def health_of(driver: Any, iid: str) -> str | None:
    got = driver.execute_script(
        "const r = document.querySelector(arguments[0]); return r ? r.dataset.health : null",
        f'tr[data-instance="{iid}"]',
    )
    return None if got is None else str(got)


def find(driver: Any, element_id: str) -> Any:
    """The element once the page that has it is there (a click may still be navigating)."""
    found: list[Any] = []
    wait_until(lambda: bool(found.extend(driver.find_elements(By.ID, element_id)) or found),
               what=f"#{element_id} on the page")  # fmt: skip
    return found[0]


def online(c: Client, iid: str) -> None:
    c.instance_create("sim", iid)
    c.instance_start(iid)
    wait_until(lambda: c.instance_get(iid)["state"] == "online", what=f"{iid} online")


def test_link_signs_in_and_instances_show_with_their_health(
    dash: Stack, browser: Any, tenant: tuple[str, Client], tmp_path: Path
) -> None:
    token, c = tenant
    for iid in ("shop-ok", "shop-bad"):
        online(c, iid)
    other = Client(dash.daemon.cfg.control_endpoint, dash.tenant_token("other"), timeout=5)
    other.instance_create("sim", "not-mine")

    browser.get(f"{dash.base}/?access_token={token}")
    # The link's token went into the cookie and out of the address bar.
    assert browser.current_url == f"{dash.base}/"
    cookie = browser.get_cookie("waz_session")
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["value"] == token
    assert browser.execute_script("return document.cookie") == ""  # HttpOnly: no script reads it
    wait_until(lambda: health_of(browser, "shop-ok") == "healthy", what="shop-ok healthy")
    assert "not-mine" not in browser.page_source  # another tenant's instance

    # Failing sends drop shop-bad's success rate: its row turns red without a reload.
    browser.execute_script("window.notReloaded = true")
    dash.admin.sim_fault("shop-bad", "send_fail", count=100, permanent=True)
    for n in range(3):
        c.message_send("shop-bad", "6281234567890", f"fails {n}")
    wait_until(lambda: health_of(browser, "shop-bad") == "critical", what="shop-bad critical")
    assert browser.execute_script("return window.notReloaded") is True
    assert colour_of(browser, "shop-bad") == "rgb(210, 59, 59)"  # red
    assert colour_of(browser, "shop-ok") == "rgb(26, 156, 74)"  # green
    shot(browser, tmp_path, "dashboard-instances")
    other.close()


def test_state_change_appears_without_reload(
    dash: Stack, browser: Any, tenant: tuple[str, Client]
) -> None:
    _token, c = tenant
    browser.get(f"{dash.base}/")
    on = "return document.getElementById('livebox').classList.contains('on')"
    wait_until(lambda: browser.execute_script(on), what="the live stream connected")
    browser.execute_script("window.notReloaded = true")
    badge = '[data-state-of="shop-ok"]'
    assert text_of(browser, badge) == "online"
    c.instance_stop("shop-ok")
    wait_until(
        lambda: text_of(browser, badge) == "stopped",
        what="the stopped state shown",
    )
    assert browser.execute_script("return window.notReloaded") is True
    c.instance_start("shop-ok")
    wait_until(lambda: text_of(browser, badge) == "online", what="online again")


def test_pairing_shows_a_qr_that_rotates(
    dash: Stack, browser: Any, tenant: tuple[str, Client], tmp_path: Path
) -> None:
    _token, c = tenant
    online(c, "shop-pair")
    c.instance_logout("shop-pair")
    browser.get(f"{dash.base}/i/shop-pair")
    browser.find_element(By.ID, "pair").click()
    img = find(browser, "qr")
    wait_until(
        lambda: (img.get_attribute("src") or "").startswith("data:image/svg+xml"), what="a QR"
    )
    first = img.get_attribute("src")
    assert img.is_displayed() and img.size["width"] >= 200
    wait_until(lambda: img.get_attribute("src") != first, timeout=20, what="the QR rotates")
    shot(browser, tmp_path, "dashboard-pairing")
    dash.admin.sim_fault("shop-pair", "complete_pairing")
    wait_until(
        lambda: find(browser, "pairing").get_attribute("data-done") == "paired",
        what="paired",
    )
    assert c.instance_get("shop-pair")["state"] == "online"


def test_pairing_code_for_a_phone(dash: Stack, browser: Any, tenant: tuple[str, Client]) -> None:
    _token, c = tenant
    c.instance_logout("shop-pair")
    browser.get(f"{dash.base}/i/shop-pair")
    browser.find_element(By.ID, "phone").send_keys("6281234567890")
    browser.find_element(By.ID, "pair").click()
    code = find(browser, "paircode")
    wait_until(lambda: code.text != "", what="a pairing code")
    assert re.fullmatch(r"[A-Z0-9]{4}-?[A-Z0-9]{4}", code.text)
    c.instance_stop("shop-pair")


def test_test_send_shows_up_in_the_queue(
    dash: Stack, browser: Any, tenant: tuple[str, Client], tmp_path: Path
) -> None:
    _token, c = tenant
    c.instance_stop("shop-ok")  # so the message waits in the queue
    browser.get(f"{dash.base}/i/shop-ok")
    browser.find_element(By.ID, "to").send_keys("6281234567890")
    text = browser.find_element(By.ID, "text")
    text.clear()
    text.send_keys("<b>halo</b> from the dashboard")
    browser.find_element(By.ID, "send").click()
    wait_until(lambda: "Queued message" in browser.page_source, what="the send queued")
    texts = browser.execute_script(
        "return [...document.querySelectorAll('#queue tbody tr')].map(r => r.textContent)"
    )
    assert any("<b>halo</b> from the dashboard" in t for t in texts), texts  # escaped, shown
    assert not browser.find_elements(By.CSS_SELECTOR, "#queue b")  # not markup
    mid = re.search(r"Queued message ([\w.-]+)\.", browser.page_source)
    assert mid and c.message_get(mid.group(1))["text"] == "<b>halo</b> from the dashboard"
    shot(browser, tmp_path, "dashboard-instance", height=1100)
    chip(browser, "sent")  # the status filter: none sent yet
    wait_until(lambda: "No messages." in browser.page_source, what="the sent filter")
    chip(browser, "queued")
    wait_until(lambda: text_of(browser, f'tr[data-message="{mid.group(1)}"]') is not None)
    chip(browser, "all")
    wait_until(lambda: text_of(browser, f'tr[data-message="{mid.group(1)}"]') is not None)
    # Live: the stopped instance starts, the message is sent, the page follows.
    c.instance_start("shop-ok")
    wait_until(
        lambda: "sent" in (text_of(browser, f'tr[data-message="{mid.group(1)}"]') or ""),
        what="the message shown as sent",
    )  # fmt: skip


def test_forms_need_the_csrf_token_and_a_signed_in_browser(
    dash: Stack, tenant: tuple[str, Client]
) -> None:
    token, _c = tenant
    cookie = f"waz_session={token}"
    form = b"to=6281234567890&text=x"
    bare = http_with_cookie(dash.url("/i/shop-ok/send"), cookie, form)
    assert bare == 403
    assert http_with_cookie(dash.url("/i/shop-ok/send"), "", form) == 401
    assert http_with_cookie(dash.url("/i/shop-ok/send"), cookie, form + b"&csrf=nope") == 403
    cross = http_with_cookie(dash.url("/logout"), cookie, b"", origin="http://evil.example")
    assert cross == 403
    # The pairing stream starts a pairing: it needs the CSRF token too.
    assert http("GET", dash.url("/i/shop-ok/pair/events")).status == 401
    # A revoked or wrong token: the sign-in page again, and the cookie is dropped.
    r = get_with_cookie(dash.url("/"), "waz_session=waz_" + "x" * 43)
    assert r.status_code == 401 and "refused" in r.text
    assert 'waz_session=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    r = get_with_cookie(dash.url("/i/not-mine"), cookie)  # another tenant's: not found
    assert r.status_code == 404 and "not_found" in r.text
    r = http("GET", dash.url("/"))
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


def get_with_cookie(url: str, cookie: str) -> Any:
    import httpx

    return httpx.get(url, headers={"Cookie": cookie}, timeout=10)


def http_with_cookie(url: str, cookie: str, body: bytes, origin: str | None = None) -> int:
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = cookie
    if origin:
        headers["Origin"] = origin
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_event_stream_is_the_tenants_own_and_ends_with_the_browser(
    dash: Stack, tenant: tuple[str, Client]
) -> None:
    """The SSE stream carries the signed-in tenant's events only; closing it unsubscribes."""
    import httpx

    token, c = tenant
    other = Client(dash.daemon.cfg.control_endpoint, dash.tenant_token("other2"), timeout=5)
    other.instance_create("sim", "theirs")
    online(c, "mine")

    def subscriptions() -> int:
        return int(dash.admin.daemon_status()["control"]["subscriptions"])

    before = subscriptions()
    seen: list[str] = []
    with (
        httpx.Client(base_url=dash.base, cookies={"waz_session": token}, timeout=10) as h,
        h.stream("GET", "/dashboard/events") as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        wait_until(lambda: subscriptions() == before + 1, what="the stream subscribed")
        other.instance_start("theirs")
        c.instance_stop("mine")
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen.append(line)
                if '"mine"' in line and '"stopped"' in line:
                    break
    assert not [s for s in seen if "theirs" in s]
    wait_until(lambda: subscriptions() == before, what="the subscription dropped")
    assert http("GET", dash.url("/dashboard/events")).status == 401  # no cookie, no stream
    other.close()


def test_an_open_dashboard_does_not_hold_up_a_stop(short_dir: Path) -> None:
    """uvicorn waits up to 5 s for open responses; the event streams end on SIGTERM instead."""
    import threading
    import time

    import httpx

    s = start_stack(short_dir, short_dir / "run", free_port())
    token = s.tenant_token("stopper")
    opened = threading.Event()
    ended: list[str] = []

    def hold() -> None:
        try:
            with (
                httpx.Client(base_url=s.base, cookies={"waz_session": token}, timeout=30) as h,
                h.stream("GET", "/dashboard/events") as r,
            ):
                opened.set()
                for _ in r.iter_lines():
                    pass
            ended.append("ended")
        except httpx.HTTPError as e:
            ended.append(type(e).__name__)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert opened.wait(10)
    wait_until(lambda: s.admin.daemon_status()["control"]["subscriptions"] == 1)
    s.admin.close()
    started = time.monotonic()
    s.daemon.stop(timeout=20)
    took = time.monotonic() - started
    t.join(5)
    assert ended == ["ended"], ended  # the stream finished cleanly, it was not cut
    assert took < 4.0, f"the stop took {took:.1f} s"
