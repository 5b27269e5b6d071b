"""The web console in a real browser: Debian's headless Chromium driven by
chromedriver through python3-selenium. Token, look-up, lift with a reason
(then SMTP from that address is greeted 220), block by hand, the list and
its filter; a reason holding markup stays text; nothing is fetched from
another host. Screenshots are kept in the test's tmp dir (and, with
PORTCULLIS_SCREENSHOTS=DIR, copied there)."""

import os
import shutil

import pytest

from guardutil import fail_auth, greeting_of
from httputil import TOKEN, post, start_http_daemon
from smtputil import T

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="chromium and chromium-driver are not installed")

XSS = '<img src=x onerror="window.__xss=1">'


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,1350", "--no-first-run", "--disable-extensions",
              "--disable-background-networking", "--disable-sync", "--disable-translate",
              "--disable-component-update", "--disable-default-apps",
              # no name is ever looked up: anything not loopback fails at once
              "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(30 * T)
    yield drv
    drv.quit()


def shot(drv, tmp_path, name):
    path = tmp_path / f"console-{name}.png"
    drv.save_screenshot(str(path))
    out = os.environ.get("PORTCULLIS_SCREENSHOTS")
    if out:
        shutil.copy(path, os.path.join(out, path.name))
    return path


def test_console_token_lookup_lift_block_list(start_daemon, tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    d = start_http_daemon(start_daemon, tmp_path, public=False,
                          guard={"auth_fail_limit": "3", "ban_durations": "1h 4h 24h"})
    # what a desk sees on a normal day: automatic blocks with their windows
    for ip in ("127.0.0.31", "127.0.0.34"):
        c = fail_auth(d.port, 3, source=ip)
        c.close()
    post(d, "/api/v1/block", {"ip": "127.0.0.35", "for": "24h", "reason": "spam run, ticket 4712"})
    assert greeting_of(d.port, source="127.0.0.31").startswith("554")

    drv = browser
    wait = WebDriverWait(drv, 15 * T)
    base = f"http://127.0.0.1:{d.http_port}"
    drv.get(base + "/")
    wait.until(EC.visibility_of_element_located((By.ID, "token")))
    shot(drv, tmp_path, "1-token")

    # a wrong token is refused and the desk stays closed
    drv.find_element(By.ID, "token").send_keys("not-the-token-0123456789")
    drv.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "token-error"), "not accepted"))
    assert not drv.find_element(By.ID, "desk").is_displayed()

    drv.find_element(By.ID, "token").send_keys(TOKEN)
    drv.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait.until(EC.visibility_of_element_located((By.ID, "desk")))
    wait.until(lambda x: len(x.find_elements(By.CSS_SELECTOR, "#blocks li")) == 3)
    assert drv.execute_script("return sessionStorage.getItem('portcullis.token')") == TOKEN

    # look 127.0.0.31 up: blocked for failed logins, with its window
    ip = drv.find_element(By.ID, "ip")
    ip.send_keys("127.0.0.31")
    drv.find_element(By.CSS_SELECTOR, "#lookup-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "r-badge"), "blocked"))
    facts = drv.find_element(By.ID, "r-facts").text
    assert "failed logins" in facts and "Offending window" in facts and "3 events" in facts
    assert "failed logins" in drv.find_element(By.ID, "r-summary").text
    shot(drv, tmp_path, "2-lookup")

    # lift it with a reason: SMTP from it is greeted again
    drv.find_element(By.ID, "lift-reason").send_keys("customer fixed the contact form's password")
    drv.find_element(By.CSS_SELECTOR, "#lift-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "action-msg"), "Lifted"))
    wait.until(EC.text_to_be_present_in_element((By.ID, "r-badge"), "clear"))
    hist = drv.find_element(By.ID, "history").text
    assert "desk" in hist and "customer fixed the contact form's password" in hist
    assert greeting_of(d.port, source="127.0.0.31").startswith("220")
    shot(drv, tmp_path, "3-lifted")

    # block 127.0.0.33 by hand for 7 days, with markup in the reason
    ip.clear()
    ip.send_keys("127.0.0.33")
    drv.find_element(By.CSS_SELECTOR, "#lookup-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "r-addr"), "127.0.0.33"))
    wait.until(EC.text_to_be_present_in_element((By.ID, "r-badge"), "clear"))
    Select(drv.find_element(By.ID, "block-for")).select_by_value("7d")
    drv.find_element(By.ID, "block-reason").send_keys(XSS)
    drv.find_element(By.CSS_SELECTOR, "#block-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "r-badge"), "blocked"))
    assert greeting_of(d.port, source="127.0.0.33").startswith("554")
    wait.until(lambda x: len(x.find_elements(By.CSS_SELECTOR, "#blocks li")) == 3)
    blocks = drv.find_element(By.ID, "blocks")
    # newest first, the markup shown as text and never run
    assert blocks.find_elements(By.CSS_SELECTOR, "li .a")[0].text == "127.0.0.33/32"
    assert XSS in blocks.text and XSS in drv.find_element(By.ID, "r-facts").text
    assert drv.find_elements(By.CSS_SELECTOR, "img") == []
    assert drv.execute_script("return window.__xss === undefined")
    shot(drv, tmp_path, "4-blocked")

    # the filter and the kind
    f = drv.find_element(By.ID, "filter")
    f.send_keys("ticket 4712")
    wait.until(lambda x: len(x.find_elements(By.CSS_SELECTOR, "#blocks li")) == 1)
    assert "127.0.0.35/32" in drv.find_element(By.ID, "blocks").text
    assert "1 of 3" in drv.find_element(By.ID, "list-count").text
    f.clear()
    f.send_keys("x")   # an input event redraws; then empty it again
    f.clear()
    drv.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")
    Select(drv.find_element(By.ID, "kind")).select_by_value("permanent")
    wait.until(lambda x: x.find_elements(By.CSS_SELECTOR, "#blocks li") == []
               and "0 block" in x.find_element(By.ID, "list-count").text)
    Select(drv.find_element(By.ID, "kind")).select_by_value("all")
    wait.until(lambda x: len(x.find_elements(By.CSS_SELECTOR, "#blocks li")) == 3)

    # the token is kept for the tab: a reload opens the desk at once
    drv.refresh()
    wait.until(EC.visibility_of_element_located((By.ID, "desk")))
    wait.until(lambda x: len(x.find_elements(By.CSS_SELECTOR, "#blocks li")) == 3)

    # nothing was fetched from anywhere but this server
    urls = drv.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
        ".concat(performance.getEntriesByType('navigation').map(e => e.name))")
    assert urls and all(u.startswith(base + "/") for u in urls), urls

    # readable on a phone
    drv.set_window_size(390, 1400)
    ip = drv.find_element(By.ID, "ip")
    ip.clear()
    ip.send_keys("127.0.0.31")
    drv.find_element(By.CSS_SELECTOR, "#lookup-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "r-addr"), "127.0.0.31"))
    width = drv.execute_script("return document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width}px wide on a 390px phone"
    shot(drv, tmp_path, "5-phone")
    assert d.running()
