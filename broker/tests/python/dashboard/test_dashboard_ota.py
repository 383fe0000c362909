"""The dashboard's firmware-rollout card in a real headless Chromium: a
real fleetmq with `[ota]` on, a real rollout made with `fleetmq firmware`,
simulated devices (`fleetmq-sim`, the firmware's OTA agent over file-backed
flash, with their own certificates made by `fleetmq certs`). The card shows
the rollout and each device's state with its reason; pause and resume
clicked on the page, after logging in with the token, change the rollout
the broker keeps on disk and serves on /api."""

import json
import ssl
import subprocess
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from dashboard_harness import TlsClient, _packet, _utf8, binary, eventually, get_json, http

TOKEN = "ota-card-test-token-5d2e"
# The Ed25519 base point: a valid public key that signed nothing of ours.
FOREIGN_KEY = "58" + "66" * 31


def wait(driver, timeout=10):
    return WebDriverWait(driver, timeout, poll_frequency=0.05)


def fleetmq(*args):
    done = subprocess.run([binary(), *args], capture_output=True, text=True)
    assert done.returncode == 0, f"fleetmq {args}: {done.stdout}{done.stderr}"
    return done.stdout


def sim_binary():
    path = Path(binary()).parent / "fleetmq-sim"
    assert path.exists(), f"{path}: cargo build -p fleetmq-firmware --bin fleetmq-sim"
    return str(path)


def device_id(n):
    return "esp32_%06X" % (0x807A98 + n)


def device_mac(n):
    tail = 0x807A98 + n
    return "24:0A:C4:%02X:%02X:%02X" % (tail >> 16, (tail >> 8) & 0xFF, tail & 0xFF)


def esp_image(version, body):
    """An ESP32-C3 application image header and descriptor, then `body`
    (what firmware/src/ota/image.rs builds)."""
    image = bytearray(80 + 176)
    image[0], image[1] = 0xE9, 1
    image[12:14] = (0x0005).to_bytes(2, "little")
    image[32:36] = (0xABCD5432).to_bytes(4, "little")
    image[48:48 + len(version)] = version.encode()
    return bytes(image) + body


class Sims:
    """`fleetmq-sim` processes, killed at the end."""

    def __init__(self, root, port):
        self.root, self.procs, self.logs = root, [], []
        fs = root / "device" / "fs"
        fs.mkdir(parents=True)
        (fs / "ca.crt").write_bytes((root / "pki" / "ca.crt").read_bytes())
        self.config = root / "device" / "device.toml"
        self.config.write_text(
            f'[mqtt]\nserver = "127.0.0.1:{port}"\nssl_ca_cert = "ca.crt"\n'
            'ssl_server_name = "localhost"\nreconnect_timeout_min = 0.2\nreconnect_timeout_max = 1\n')

    def start(self, devices, first, key):
        log = self.root / f"sim-{len(self.procs)}.log"
        out = open(log, "wb")
        self.procs.append(subprocess.Popen(
            [sim_binary(), "--config", str(self.config), "--devices", str(devices),
             "--mac", device_mac(first), "--device-certs", str(self.root / "device-certs"),
             "--ota-flash", str(self.root / "flash"), "--ota-key", str(key)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT))
        out.close()
        self.logs.append(log)

    def text(self):
        return "".join(log.read_text(errors="replace") for log in self.logs)

    def stop(self):
        for proc in self.procs:
            proc.kill()
            proc.wait()


def test_the_rollout_card_shows_device_states_and_pauses_from_the_page(
        tmp_path, start_fleetmq, browser, screenshots):
    pki, ota = tmp_path / "pki", tmp_path / "ota"
    fleetmq("certs", "init", "--dir", str(pki))
    # RSA: the simulated ESP32's default suite (ECDHE-RSA) needs an RSA key.
    fleetmq("certs", "server", "--dir", str(pki), "--name", "localhost", "--rsa")
    fleetmq("certs", "device", "--dir", str(pki), "--group", "fleet", "--out",
            str(tmp_path / "device-certs"), *[device_id(n) for n in range(3)])
    broker = start_fleetmq(
        '[[listener]]\nname = "tls"\nbind = "127.0.0.1:0"\n[listener.tls]\n'
        f'cert = "{pki}/server/localhost.crt"\nkey = "{pki}/server/localhost.key"\n'
        f'client_ca = "{pki}/ca.crt"\nclient_certs = "required"\n\n'
        f'[ota]\nenabled = true\ndir = "{ota}"\npki_dir = "{pki}"\nchunk_bytes = 1024\n'
        'max_image_bytes = 65536\ndevice_timeout_secs = 300\n',
        http=f'[http]\nbind = "127.0.0.1:0"\ntoken = "{TOKEN}"\n')
    broker.wait_for(r"Firmware updates on")
    sims = Sims(tmp_path, broker.port("tls"))
    try:
        foreign = tmp_path / "foreign.pub"
        foreign.write_text(FOREIGN_KEY)
        # Device 0 has the broker's key, device 1 another one; device 2
        # stays offline, so wave 2 waits for it.
        sims.start(1, 0, pki / "ota-signing.pub")
        sims.start(1, 1, foreign)
        eventually(lambda: sims.text().count("MQTT connected") >= 2, "2 devices online", 30)
        image = tmp_path / "image.bin"
        image.write_bytes(esp_image("1.1.0", bytes(n * 7 % 251 for n in range(3000))))
        config = str(broker.workdir / "fleetmq.toml")
        fleetmq("firmware", "--config", config, "upload", str(image), "--version", "1.1.0",
                "--chip", "esp32c3")
        fleetmq("firmware", "--config", config, "rollout", "--version", "1.1.0", "--chip",
                "esp32c3", "--devices", ",".join(device_id(n) for n in range(3)),
                "--waves", "2", "--max-failures", "2", "--id", "spring")
        doc = ota / "rollouts" / "spring.json"

        def rollout():
            return json.loads(doc.read_text())

        eventually(lambda: rollout()["wave"] == 1, "wave 2 started", 60)
        # Device 2 comes online as a plain MQTT client with its certificate
        # and reports a download under way, as the agent does.
        certs = tmp_path / "device-certs"
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(certs / f"{device_id(2)}.crt"), str(certs / f"{device_id(2)}.key"))
        third = TlsClient(broker.port("tls"), context, device_id(2))
        status = b'{"state":"downloading","version":"1.1.0","running":"1.0.0","progress":40}'
        third.sock.sendall(_packet(0x30, _utf8(f"$fleetmq/ota/{device_id(2)}/status") + status))
        eventually(lambda: rollout()["status"][device_id(2)]["state"] == "downloading",
                   "device 2 downloading", 10)

        # Unauthenticated, neither the card's data nor its actions.
        assert http("GET", broker.http + "/api/ota/rollouts")[0] == 401
        assert http("POST", broker.http + "/api/ota/rollouts/spring/pause")[0] == 401
        browser.get(broker.http + "/")
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "login-submit").click()
        wait(browser).until(EC.visibility_of_element_located((By.ID, "ota-section")))
        row = wait(browser).until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, '#ota-rollouts tr[data-rollout="spring"]')))
        cells = [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        assert cells[:5] == ["spring", "1.1.0", "esp32c3", "2/2", "running"], cells

        def device_row(n):
            return browser.find_element(
                By.CSS_SELECTOR, f'#ota-devices tr[data-device-id="{device_id(n)}"]')

        wait(browser).until(lambda d: "running" in device_row(0).text)
        assert "100%" in device_row(0).text and "1.1.0" in device_row(0).text, device_row(0).text
        failed = device_row(1).find_elements(By.TAG_NAME, "td")
        assert failed[2].text == "failed" and failed[5].text == "bad signature", \
            [cell.text for cell in failed]
        downloading = [cell.text for cell in device_row(2).find_elements(By.TAG_NAME, "td")]
        assert downloading[2:4] == ["downloading", "40%"], downloading
        assert device_row(2).find_element(By.TAG_NAME, "progress").get_attribute("value") == "40"
        browser.execute_script("document.getElementById('ota-section').scrollIntoView()")
        browser.save_screenshot(str(screenshots / "dashboard-ota.png"))

        row.find_element(By.CSS_SELECTOR, "button.ota-pause").click()
        wait(browser).until(EC.text_to_be_present_in_element((By.ID, "ota-status"), "pause sent"))
        eventually(lambda: rollout()["state"] == "paused", "paused on disk", 5)
        assert get_json(broker.http + "/api/ota/rollouts", TOKEN)["rollouts"][0]["state"] == "paused"
        broker.wait_for(r"OTA rollout spring Paused")
        resume = wait(browser).until(EC.element_to_be_clickable(
            (By.CSS_SELECTOR, '#ota-rollouts tr[data-rollout="spring"] button.ota-resume')))
        resume.click()
        eventually(lambda: rollout()["state"] == "running", "running again on disk", 5)

        # Abort asks for a confirmation first.
        wait(browser).until(EC.element_to_be_clickable(
            (By.CSS_SELECTOR, '#ota-rollouts tr[data-rollout="spring"] button.ota-abort'))).click()
        confirm = wait(browser).until(EC.element_to_be_clickable(
            (By.CSS_SELECTOR, '#ota-rollouts tr[data-rollout="spring"] button.ota-abort')))
        assert confirm.text == "Confirm abort"
        assert rollout()["state"] == "running"
        confirm.click()
        eventually(lambda: rollout()["state"] == "aborted", "aborted on disk", 5)
        wait(browser).until(EC.text_to_be_present_in_element(
            (By.CSS_SELECTOR, '#ota-rollouts tr[data-rollout="spring"] .ota-state'), "aborted"))
        third.close()
    finally:
        sims.stop()
