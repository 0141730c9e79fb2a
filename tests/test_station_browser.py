"""The issue's "done when", end to end: a real daemon on the demo source, a real `painedge station`, a real browser.

Debian's chromium, headless, driven by selenium through Debian's chromedriver: nothing is
downloaded (selenium-manager is kept offline and never needed, both paths are given).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .daemon import Daemon, free_port
from .test_alerting import FAST_ALERTS
from .waiting import wait_until

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ACK_TIMEOUT_S = 2.5
# The demo at its own pace (a grimace lasts seconds, long enough to escalate), alert timers short.
PACED_ALERTS = {**FAST_ALERTS, "PAINEDGE_SOURCE__REALTIME": "true"}


def browser():
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never try to download a driver or browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            pytest.fail(f"{path} is missing: run scripts/setup-system (Debian's chromium and chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900",
                "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


class StationProcess:
    """`painedge station` in a subprocess."""

    def __init__(self, *connect: str, db: Path, ack_timeout_s: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        self.cmd = [sys.executable, "-m", "painedge", "station", *[a for c in connect for a in ("--connect", c)],
                    "--http", f"127.0.0.1:{self.port}", "--db", str(db), "--ack-timeout", str(ack_timeout_s)]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> StationProcess:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/api/state", timeout=1).read()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    pytest.fail(f"painedge station exited: {self.proc.stderr.read()}")
                time.sleep(0.2)
        pytest.fail("painedge station did not answer in 30 s")

    def stop(self) -> str:
        self.proc.terminate()
        _out, err = self.proc.communicate(timeout=10)
        return err

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def sql(self, query: str, *args: object) -> list[tuple]:
        with sqlite3.connect(self.db) as db:
            return list(db.execute(query, args))


def test_alarm_shows_within_2_s_is_acknowledged_by_name_and_escalates_when_nobody_does(tmp_path):
    from selenium.webdriver.common.by import By

    with Daemon("--source", "demo", env=PACED_ALERTS, kinds=("alert",)) as daemon, \
            StationProcess(f"{daemon.pub},{daemon.replay}", db=tmp_path / "station.db",
                           ack_timeout_s=ACK_TIMEOUT_S) as station:
        driver = browser()
        try:
            driver.get(station.url + "/")
            assert wait_until(lambda: driver.find_element(By.ID, "conn").text == "live", 10), "no live connection"
            assert wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, ".bed"), 20), "the bed never appeared"

            # 1. The demo's grimace raises an alert; the board shows it within 2 s of the alert message.
            cards = wait_until(lambda: driver.find_elements(By.CSS_SELECTOR, "#alarm-list .alarm"), 60, every_s=0.02)
            seen = time.time()
            assert cards, "no alarm on the board within 60 s"
            alarm_id = cards[0].get_attribute("data-alarm")
            ((alert_ts,),) = station.sql("SELECT min(ts) FROM alerts WHERE alert_id=? AND state!='cleared'", alarm_id)
            assert seen - alert_ts <= 2.0, f"shown {seen - alert_ts:.2f} s after the alert was published"
            print(f"alarm on the board {seen - alert_ts:.2f} s after the alert was published")
            card = driver.find_element(By.ID, f"alarm-{alarm_id}")
            assert "priority" in card.text and "Why:" in card.text

            # 2. Nobody acknowledges: it escalates after ack_timeout_s, louder on the board and stored.
            assert wait_until(lambda: "st-escalated" in card.get_attribute("class"), ACK_TIMEOUT_S + 3), "never escalated"
            assert "ESCALATED" in card.text
            ((raised_ts, escalated_ts),) = station.sql("SELECT raised_ts, escalated_ts FROM alarms WHERE alarm_id=?",
                                                        alarm_id)
            assert ACK_TIMEOUT_S - 0.1 <= escalated_ts - raised_ts <= ACK_TIMEOUT_S + 1.0
            driver.save_screenshot(str(tmp_path / "escalated.png"))

            # 3. A nurse types her name and a note and clicks Acknowledge: stored, audited and shown.
            card.find_element(By.NAME, "name").send_keys("Nurse Ana")
            card.find_element(By.NAME, "note").send_keys("repositioned, analgesia given")
            card.find_element(By.CSS_SELECTOR, "button.ack-button").click()
            assert wait_until(lambda: "acknowledged by Nurse Ana" in driver.find_element(By.ID, f"alarm-{alarm_id}").text
                            or not driver.find_elements(By.ID, f"alarm-{alarm_id}"), 3), "the ack is not shown"
            rows = station.sql("SELECT state, acked_by, ack_note FROM alarms WHERE alarm_id=?", alarm_id)
            assert rows[0][1:] == ("Nurse Ana", "repositioned, analgesia given")
            assert rows[0][0] in ("acknowledged", "ended")  # the demo's grimace may end right after
            assert station.sql("SELECT action, name FROM audit WHERE alarm_id=?", alarm_id) == [("acknowledge", "Nurse Ana")]

            # 4. The bed's history page plots what was stored.
            driver.get(f"{station.url}/beds/test-bed?hours=1")
            assert driver.find_elements(By.CSS_SELECTOR, "svg.history path.level")
            assert "Nurse Ana" in driver.find_element(By.TAG_NAME, "table").text
        finally:
            driver.quit()
        err = station.stop()
    assert "ESCALATION" in err and "acknowledged alarm" in err  # the escalation message and the audit line
