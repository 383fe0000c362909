"""Fixtures of the dashboard tests: a PKI, brokers, a headless Chromium."""

import shutil
import tempfile
from pathlib import Path

import pytest

from dashboard_harness import REPO_ROOT, Fleetmq, Pki

SCREENSHOTS = REPO_ROOT / "target" / "dashboard-screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def start_fleetmq(tmp_path):
    """start_fleetmq(extra_toml, http=None) -> Fleetmq with a plain listener
    "plain", `extra_toml` (more listeners), and `http` as its [http] table
    (default: the dashboard on a free port); stopped after the test."""
    started = []

    def start(extra_toml="", http=None):
        http_toml = http if http is not None else '[http]\nbind = "127.0.0.1:0"\n'
        # A plain listener always, so the defaults (1883, 8883) never apply.
        toml = ('[[listener]]\nname = "plain"\nbind = "127.0.0.1:0"\n\n'
                f"{extra_toml}\n[mqtt]\nsys_interval_secs = 0\n\n{http_toml}")
        broker = Fleetmq(tmp_path / f"broker{len(started)}", toml)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="fleetmq-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(10)
    driver.set_script_timeout(10)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
