"""The dashboard's dynamic-security card in a real headless Chromium
(issue 18): a mutual-TLS device that is a dynsec client (by its
certificate's CN, decision 0162) shows its roles and groups; "Ban" disables
the client, which disconnects the device and keeps it out; "Allow again"
lets it back."""

import json

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from dashboard_harness import TlsClient, tls_context


def wait(driver, timeout=5):
    return WebDriverWait(driver, timeout, poll_frequency=0.05)


def dynsec_file(path):
    """A dynamic-security.json as Mosquitto writes it: the device's client
    (no password: its certificate names it), a role and a group."""
    path.write_text(json.dumps({
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": True,
                             "subscribe": False, "unsubscribe": True},
        "clients": [{"username": "device-d5e6f7", "roles": [{"rolename": "telemetry"}],
                     "groups": [{"groupname": "fleet-a"}]}],
        "groups": [{"groupname": "fleet-a", "roles": [], "clients": [{"username": "device-d5e6f7"}]}],
        "roles": [{"rolename": "telemetry", "acls": [
            {"acltype": "publishClientSend", "topic": "telemetry/#", "allow": True}]}],
    }))
    return path


def test_ban_and_allow_a_dynsec_device(pki, start_fleetmq, browser, tmp_path, screenshots):
    file = dynsec_file(tmp_path / "dynamic-security.json")
    broker = start_fleetmq(pki.listeners_toml() + f'[auth]\ndynsec_file = "{file}"\n')
    cert, key, _serial = pki.client("device-d5e6f7")
    context = tls_context(pki, cert, key)
    device = TlsClient(broker.port("mtls"), context, "esp32_d5e6f7")

    browser.get(broker.http + "/#client/esp32_d5e6f7")
    wait(browser).until(EC.visibility_of_element_located((By.ID, "dynsec-card")))
    dd = lambda cls: browser.find_element(By.CSS_SELECTOR, f"#detail-dynsec dd.{cls}").text
    wait(browser).until(EC.text_to_be_present_in_element(
        (By.CSS_SELECTOR, "#detail-dynsec dd.dynsec-roles"), "telemetry"))
    assert dd("dynsec-name") == "device-d5e6f7"
    assert dd("dynsec-groups") == "fleet-a"
    assert dd("dynsec-state") == "enabled"
    browser.save_screenshot(str(screenshots / "dashboard-dynsec.png"))

    # Ban: the client is disabled, the device disconnected and kept out.
    browser.find_element(By.ID, "dynsec-ban").click()
    assert device.wait_closed(timeout=5), "the banned device stayed connected"
    wait(browser).until(EC.text_to_be_present_in_element(
        (By.CSS_SELECTOR, "#detail-dynsec dd.dynsec-state"), "disabled"))
    assert browser.find_element(By.ID, "dynsec-allow").is_displayed()
    try:
        TlsClient(broker.port("mtls"), context, "esp32_d5e6f7")
        raise AssertionError("a banned device connected again")
    except ConnectionError as refused:
        assert "CONNACK refused" in str(refused)
    saved = json.loads(file.read_text())
    assert saved["clients"][0].get("disabled") is True, saved["clients"]

    # Allow again: it connects.
    browser.find_element(By.ID, "dynsec-allow").click()
    wait(browser).until(EC.text_to_be_present_in_element(
        (By.CSS_SELECTOR, "#detail-dynsec dd.dynsec-state"), "enabled"))
    TlsClient(broker.port("mtls"), context, "esp32_d5e6f7").ping()
