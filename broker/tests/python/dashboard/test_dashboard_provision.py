"""The dashboard's device-certificate panel in a real headless Chromium:
provisioning requests waiting for approval (approved from the page, the
same file `fleetmq certs approve` writes) and the certificates of the lab
PKI with how they were issued."""

import json
import subprocess

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from dashboard_harness import binary, get_json


def wait(driver, timeout=8):
    return WebDriverWait(driver, timeout, poll_frequency=0.05)


def certs(*args):
    subprocess.run([binary(), "certs", *args], check=True, capture_output=True)


def test_pending_requests_are_approved_from_the_page(tmp_path, start_fleetmq, browser, screenshots):
    pki = tmp_path / "pki"
    certs("init", "--dir", str(pki))
    certs("claim", "--dir", str(pki), "batch7")
    broker = start_fleetmq(f'[provision]\nenabled = true\npki_dir = "{pki}"\n')
    # What the broker writes for a request under the approval policy.
    pending = tmp_path / "broker0" / "fleetmq-data" / "provision" / "pending"
    pending.mkdir(parents=True)
    (pending / "esp32_0A0B0C.json").write_text(json.dumps({
        "device_id": "esp32_0A0B0C", "key_sha256": "ab" * 32,
        "requested_by": "claim-batch7", "requested_at": "2026-12-04T16:00:00Z"}))
    assert get_json(broker.http + "/api/provision/pending")["pending"][0]["device_id"] == "esp32_0A0B0C"

    browser.get(broker.http + "/")
    wait(browser).until(EC.visibility_of_element_located((By.ID, "certificates")))
    row = wait(browser).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, '#pending tr[data-device-id="esp32_0A0B0C"]')))
    assert "claim-batch7" in row.text
    claim = wait(browser).until(EC.presence_of_element_located(
        (By.CSS_SELECTOR, '#certs tr[data-device-id="claim-batch7"]')))
    assert "cli" in claim.text and "valid" in claim.text, claim.text
    browser.execute_script("document.getElementById('certificates').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "dashboard-certificates.png"))

    row.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait(browser).until(EC.text_to_be_present_in_element((By.ID, "pending-status"), "Approved esp32_0A0B0C"))
    approved = tmp_path / "broker0" / "fleetmq-data" / "provision" / "approved" / "esp32_0A0B0C"
    assert approved.read_text() == "ab" * 32
    broker.wait_for(r"Provisioning request of esp32_0A0B0C approved from the dashboard")
