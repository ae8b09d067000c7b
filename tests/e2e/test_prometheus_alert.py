"""The shipped SSH-login rule in a real Prometheus, scraping the Loki logger extension.

The runner plays osqueryd and schedules the incident-response pack; the host already has an
old SSH login (in its first run), then alice logs in. A Prometheus server on 127.0.0.1,
with the shipped rule file and 1 s scrape and evaluation intervals, scrapes the extension
for 5 minutes before the pack's first run (a pack rolled out to a host already being
watched), and must keep the alert inactive after that first run, fire after the login, and
clear once the rule's 5 minute window has passed. About 11 minutes.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from osqsdk.runner._scheduler import Scheduler, load_config
from tests.conftest import peer_missing, wait_until
from tests.e2e.conftest import HOST, PACKS, SSH, free_port

# OSQSDK_SSH_RULES points the test at another rule file (to show an old rule failing).
RULES = Path(os.environ.get("OSQSDK_SSH_RULES", PACKS / "alerts" / "ssh_logins.rules.yml"))


class Prometheus:
    def __init__(self, binary: str, workdir: Path, target_port: int) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES.resolve())],
            "scrape_configs": [{"job_name": "osqsdk_loki",
                                "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
        }))
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        url = f"http://127.0.0.1:{self.port}{path}{query}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.loads(answer.read()) if path.startswith("/api") else answer.status

    def ready(self) -> bool:
        try:
            return self.get("/-/ready") == 200
        except OSError:
            return False

    def value(self, expr: str) -> float | None:
        result = self.get("/api/v1/query", query=expr)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict[str, Any]]:
        alerts = self.get("/api/v1/alerts")["data"]["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == "OsquerySSHLogin"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.mark.slow
def test_the_ssh_rule_in_a_real_prometheus(pipeline, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        peer_missing("prometheus (Debian package prometheus) is not installed")
    if "faketime" in os.environ.get("LD_PRELOAD", ""):
        pytest.skip("Prometheus (Go) keeps the real clock under faketime; the run at the real "
                    "date covers this test")
    engine, _receiver, metrics_port = pipeline
    prometheus = Prometheus(str(binary), tmp_path, metrics_port)
    try:
        assert wait_until(prometheus.ready, timeout=30), (tmp_path / "prometheus.log").read_text()
        assert wait_until(lambda: prometheus.value('up{job="osqsdk_loki"}') == 1.0, timeout=30)
        # the extension has been scraped for 5 minutes when the pack first runs
        assert wait_until(lambda: prometheus.value('up{job="osqsdk_loki"} offset 5m') == 1.0,
                          timeout=420, interval=2.0)

        config, packs = load_config(PACKS / "osquery.conf")
        now = int(time.time())
        scheduler = Scheduler(engine, config, {"incident-response": packs["incident-response"]},
                              loggers=[engine.logger("loki")], host_identifier=HOST,
                              start_time=now - now % 86400)
        scheduler.run(2)  # the first run lists the login already in wtmp (counter 0)
        added = f'osquery_results_total{{name="{SSH}", action="added"}}'
        assert wait_until(lambda: prometheus.value(added) == 1.0, timeout=30)
        time.sleep(10)  # ten evaluations with the first run in the data
        assert prometheus.alerts() == [], "the first run fired the alert"

        tick3 = scheduler.step()  # alice logs in from 203.0.113.7
        assert [json.loads(line.line)["name"] for line in tick3] == [SSH]
        assert wait_until(lambda: [a["state"] for a in prometheus.alerts()] == ["firing"],
                          timeout=30), "the login did not fire the alert"
        alert = prometheus.alerts()[0]
        assert alert["labels"]["instance"] == f"127.0.0.1:{metrics_port}"
        assert alert["labels"]["severity"] == "warning"

        # increase(...[5m]) forgets the login five minutes later
        assert wait_until(lambda: prometheus.alerts() == [], timeout=420, interval=2.0), \
            "the alert did not clear"
    finally:
        prometheus.stop()
