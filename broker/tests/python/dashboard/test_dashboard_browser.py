"""The dashboard in a real headless Chromium: live device table, detail
view, kick, and the access token."""

import time

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from dashboard_harness import TlsClient, eventually, get_json, http, tls_context

TOKEN = "browser-test-token-93b1"


def wait(driver, timeout=5):
    return WebDriverWait(driver, timeout, poll_frequency=0.05)


def row_selector(client_id):
    return f'#clients tbody tr[data-client-id="{client_id}"]'


def wait_live(driver):
    wait(driver).until(EC.text_to_be_present_in_element((By.ID, "live"), "live"))


def test_live_table_detail_and_kick(pki, start_fleetmq, browser, screenshots):
    broker = start_fleetmq(pki.listeners_toml())
    cert, key, serial = pki.client("device-a1b2c3")
    browser.get(broker.http + "/")
    wait_live(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "#clients tbody tr") == []

    # A mutual-TLS device connects: its row appears within a second.
    device = TlsClient(broker.port("mtls"), tls_context(pki, cert, key), "esp32_a1b2c3")
    connected_at = time.monotonic()
    row = wait(browser, 3).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, row_selector("esp32_a1b2c3"))))
    latency = time.monotonic() - connected_at
    assert latency < 1.0, f"the row took {latency:.2f}s to appear"
    assert row.find_element(By.CLASS_NAME, "c-identity").text == "device-a1b2c3"
    handshake = row.find_element(By.CLASS_NAME, "c-handshake")
    assert float(handshake.get_attribute("data-ms")) > 0, handshake.get_attribute("data-ms")
    assert handshake.text.endswith("ms") or handshake.text.endswith(" s"), handshake.text
    assert "mutual TLS" in row.find_element(By.CLASS_NAME, "c-auth").text
    print(f"row appeared {latency * 1000:.0f} ms after CONNACK")
    device.subscribe("cmd/esp32_a1b2c3/#", 1)

    # A one-way device joins; filter and sort the table.
    other = TlsClient(broker.port("oneway"), tls_context(pki), "dev-oneway")
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, row_selector("dev-oneway"))))
    ids = lambda: [r.get_attribute("data-client-id")
                   for r in browser.find_elements(By.CSS_SELECTOR, "#clients tbody tr")]
    browser.find_element(By.CSS_SELECTOR, '#clients th[data-sort="client_id"]').click()
    assert ids() == ["dev-oneway", "esp32_a1b2c3"]
    browser.find_element(By.CSS_SELECTOR, '#clients th[data-sort="client_id"]').click()
    assert ids() == ["esp32_a1b2c3", "dev-oneway"]
    search = browser.find_element(By.ID, "filter")
    search.send_keys("device-a1")
    assert ids() == ["esp32_a1b2c3"]
    search.clear()
    search.send_keys("one-way")
    assert ids() == ["dev-oneway"]
    search.clear()
    search.send_keys(" ")  # an input event with an empty needle
    wait(browser).until(lambda d: len(ids()) == 2)
    browser.save_screenshot(str(screenshots / "dashboard-table.png"))

    # The detail view: certificate, timing, subscriptions, last connects.
    browser.find_element(By.CSS_SELECTOR, row_selector("esp32_a1b2c3")).click()
    wait(browser).until(EC.visibility_of_element_located((By.ID, "detail")))
    wait(browser).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#detail-cert dd.cert-cn"),
                                                         "device-a1b2c3"))
    assert browser.find_element(By.CSS_SELECTOR, "#detail-cert dd.cert-serial").text == serial
    tls_time = browser.find_element(By.CSS_SELECTOR, "#detail-timing dd.timing-tls").text
    assert tls_time.endswith("ms") or tls_time.endswith(" s"), tls_time
    # Where the handshake went: the device's part and the network's.
    for part in ("split-broker-flight", "split-network", "split-device", "split-broker-verify"):
        text = browser.find_element(By.CSS_SELECTOR, f"#detail-timing dd.{part}").text
        assert text.endswith("ms") or text.endswith(" s"), (part, text)
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "detail-subs"), "cmd/esp32_a1b2c3/#"))
    history = browser.find_elements(By.CSS_SELECTOR, "#detail-history tbody tr")
    assert len(history) == 1 and "mutual TLS" in history[0].text
    # The waterfall: TCP, broker flight, network, device, broker verify,
    # CONNECT, CONNACK.
    assert len(browser.find_elements(By.CSS_SELECTOR, "#timing-bar span")) == 7
    assert browser.find_elements(By.CSS_SELECTOR, "#timing-bar span.seg-device")
    # The fleet comparison: one-way and mutual devices are both connected.
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "hs-comparison"), "Mutual TLS costs your devices"))
    device_p50 = browser.find_element(By.CSS_SELECTOR, '#hs-groups tr[data-group="mutual-false"] td.hs-device').text
    assert device_p50.endswith("ms") or device_p50.endswith(" s"), device_p50
    # By key type and device group (the device's certificate: ECDSA P-256, OU sensors).
    wait(browser).until(EC.presence_of_element_located((By.CSS_SELECTOR, '#hs-keys tr[data-keyed^="key ECDSA"]')))
    assert browser.find_elements(By.CSS_SELECTOR, '#hs-keys tr[data-keyed^="group "]'), "no device group row"
    browser.execute_script("document.getElementById('hs-keys').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "dashboard-handshake-comparison.png"))
    browser.save_screenshot(str(screenshots / "dashboard-detail.png"))

    # Kick it: the device is disconnected and leaves the table.
    browser.find_element(By.ID, "kick").click()
    wait(browser).until(EC.element_to_be_clickable((By.ID, "kick-confirm"))).click()
    assert device.wait_closed(timeout=5), "the broker kept the kicked device connected"
    wait(browser).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, row_selector("esp32_a1b2c3"))))
    assert browser.find_elements(By.CSS_SELECTOR, row_selector("esp32_a1b2c3")) == []
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "detail-status"), "Disconnected"))
    wait(browser).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, '#disconnected tr[data-client-id="esp32_a1b2c3"]')))
    broker.wait_for(r"Client esp32_a1b2c3 kicked from the dashboard by 127\.0\.0\.1:")
    assert ids() == ["dev-oneway"]
    browser.save_screenshot(str(screenshots / "dashboard-after-kick.png"))

    # Readable on a phone: the narrow layout still shows the device.
    browser.find_element(By.ID, "detail-close").click()
    # Desktop windows cannot be that narrow; emulate the phone's screen.
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    wait(browser).until(EC.visibility_of_element_located((By.CSS_SELECTOR, row_selector("dev-oneway"))))
    page_width = browser.execute_script("return document.documentElement.scrollWidth")
    assert page_width <= 400, f"the page is {page_width}px wide on a 390px screen"
    browser.save_screenshot(str(screenshots / "dashboard-phone.png"))
    other.close()


def test_the_token_is_required(pki, start_fleetmq, browser):
    broker = start_fleetmq(http=f'[http]\nbind = "127.0.0.1:0"\ntoken = "{TOKEN}"\n')
    browser.get(broker.http + "/")
    assert browser.find_elements(By.ID, "login-form"), "the login form"
    assert not browser.find_elements(By.ID, "clients"), "no device table without the token"
    status = browser.execute_async_script(
        "const done = arguments[0]; fetch('/api/clients').then(r => done(r.status));")
    assert status == 401
    assert http("GET", broker.http + "/api/clients")[0] == 401
    assert http("GET", broker.http + "/metrics")[0] == 401
    assert http("GET", broker.http + "/api/clients", token=TOKEN)[0] == 200
    assert http("GET", broker.http + "/healthz")[0] == 200

    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "login-submit").click()
    wait(browser).until(EC.text_to_be_present_in_element((By.TAG_NAME, "body"), "Wrong token"))
    assert not browser.find_elements(By.ID, "clients")

    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login-submit").click()
    wait_live(browser)
    status = browser.execute_async_script(
        "const done = arguments[0]; fetch('/api/clients').then(r => done(r.status));")
    assert status == 200
    cookie = browser.get_cookie("fleetmq_session")
    assert cookie and cookie["httpOnly"], cookie
    assert TOKEN not in cookie["value"]
    # The page cannot read the HttpOnly cookie.
    assert "fleetmq_session" not in browser.execute_script("return document.cookie")
    assert not browser.find_element(By.ID, "logout-form").get_attribute("hidden")
    browser.find_element(By.CSS_SELECTOR, "#logout-form button").click()
    wait(browser).until(EC.presence_of_element_located((By.ID, "login-form")))
    status = browser.execute_async_script(
        "const done = arguments[0]; fetch('/api/clients').then(r => done(r.status));")
    assert status == 401
