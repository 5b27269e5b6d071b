"""The web console's account card in a real browser (headless Chromium,
as test_http_console.py): a sprayed account is shown locked in plain words,
with its failures, familiar addresses and lock; the desk unlocks it with a
reason, after which a stranger with the right password logs in; an
address's repeated stale password is said in plain words; an account name
holding markup stays text."""

import pytest

from guardutil import ALICE, Conn
from httputil import TOKEN, start_http_daemon
from smtputil import T
from test_http_console import CHROMIUM, DRIVER, browser  # noqa: F401  (fixture)

pytestmark = pytest.mark.skipif(CHROMIUM is None or DRIVER is None,
                                reason="chromium and chromium-driver are not installed")

ACCOUNT = {"account_fail_limit": "4", "account_fail_window": "10m", "account_lock": "1h"}


def auth(d, source, user, password):
    c = Conn(d.port, source=source)
    try:
        c.ehlo()
        return c.auth_plain(user, password)
    finally:
        c.quit()


def test_console_account_lock_and_unlock(start_daemon, tmp_path, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    d = start_http_daemon(start_daemon, tmp_path, public=False, guard=ACCOUNT)
    for i in range(4):
        assert auth(d, f"127.0.0.{50 + i}", ALICE[0], f"spray-{i}").code == 535
    for _ in range(3):    # a stale password, repeated from one address
        assert auth(d, "127.0.0.60", "bob@example.test", "old-one").code == 535
    assert auth(d, "127.0.0.61", *ALICE).code == 535      # a stranger, locked out

    drv = browser
    wait = WebDriverWait(drv, 15 * T)
    drv.get(f"http://127.0.0.1:{d.http_port}/")
    wait.until(EC.visibility_of_element_located((By.ID, "token")))
    drv.find_element(By.ID, "token").send_keys(TOKEN)
    drv.find_element(By.CSS_SELECTOR, "#token-form button").click()
    wait.until(EC.visibility_of_element_located((By.ID, "acct")))

    drv.find_element(By.ID, "acct").send_keys("ALICE@example.test")
    drv.find_element(By.CSS_SELECTOR, "#acct-form button").click()
    wait.until(EC.visibility_of_element_located((By.ID, "acct-result")))
    assert drv.find_element(By.ID, "a-name").text == "alice@example.test"
    assert drv.find_element(By.ID, "a-badge").text == "locked"
    summary = drv.find_element(By.ID, "a-summary").text
    assert "4 failed logins from many addresses" in summary, summary
    assert "even with the right one" in summary, summary
    assert len(drv.find_elements(By.CSS_SELECTOR, "#locks li")) == 1
    drv.save_screenshot(str(tmp_path / "console-account-locked.png"))

    drv.find_element(By.ID, "unlock-reason").send_keys("customer travelling, ticket 4713")
    drv.find_element(By.CSS_SELECTOR, "#unlock-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "acct-msg"), "Unlocked"))
    assert drv.find_element(By.ID, "a-badge").text == "clear"
    assert "ticket 4713" in drv.find_element(By.ID, "locks").text
    assert d.ctl_json("account", ALICE[0])["state"] == "clear"
    assert auth(d, "127.0.0.61", *ALICE).code == 235

    # the stale password, in the address's plain words
    ip = drv.find_element(By.ID, "ip")
    ip.clear()
    ip.send_keys("127.0.0.60")
    drv.find_element(By.CSS_SELECTOR, "#lookup-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "r-facts"), "stale password"))
    assert "2 of the failures were the same wrong password repeated" in \
        drv.find_element(By.ID, "r-facts").text

    # a name holding markup is shown as text
    xss = '<img src=x onerror="window.__xss=1">@x'
    acct = drv.find_element(By.ID, "acct")
    acct.clear()
    acct.send_keys(xss)
    drv.find_element(By.CSS_SELECTOR, "#acct-form button").click()
    wait.until(EC.text_to_be_present_in_element((By.ID, "a-name"), "<img"))
    assert drv.execute_script("return window.__xss === undefined")
