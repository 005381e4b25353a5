"""The round explorer on a real round (Anvil, the roles, two validators), in a real headless
Chromium: the round table, each submission's verdict and the charts render with the right values,
and a JavaScript error fails the test."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from dashboard.app import create_app, serve
from dgpt.chain.client import Chain, dev_accounts
from dgpt.chain.protocol import deploy
from dgpt.report import Report
from dgpt.store import LocalStore
from harness.demo import DEMO_PARAMS, DemoPlan, demo_data, drive, setup_network, setup_validators

ROOT = Path(__file__).resolve().parents[1]
PLAN = DemoPlan(oracles=2, pretrain_rounds=1, finetune_rounds=1, max_len=32, examples_per_oracle=16, test_examples=16)


@pytest.fixture(scope="module")
def network(tmp_path_factory, anvil_url):
    home = tmp_path_factory.mktemp("dash")
    data = demo_data(PLAN)
    data.validation = data.validation[:24]
    chain, store = Chain.connect(anvil_url), LocalStore(home / "store")
    a = dev_accounts(2 + PLAN.oracles + PLAN.validators)
    validators = a[2 + PLAN.oracles:]
    protocol = deploy(chain, a[0], a[1].address, DEMO_PARAMS, tuple(v.address for v in validators))
    agg, oracles = setup_network(protocol, store, a[0], a[1], a[2:2 + PLAN.oracles], data, PLAN, home, log=lambda *x: None)
    vnodes = setup_validators(protocol, store, a[0], validators, home, log=lambda *x: None)
    drive(chain, protocol, agg, oracles, lambda rid: None, vnodes)
    server = serve(protocol, store, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(protocol=protocol, store=store, url=f"http://127.0.0.1:{server.server_port}")
    server.shutdown()


def browse(url: str, wait_for: str, *selectors: str) -> dict:
    out = subprocess.run(["node", str(ROOT / "tests" / "browser" / "page.js"), url, wait_for, *selectors],
                         capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.anvil
def test_the_explorer_shows_the_rounds_verdicts_and_charts_in_a_real_browser(network):
    p = network.protocol
    seen = browse(network.url + "/", "#submissions tbody tr", "#rounds tbody tr .state", "#submissions tbody tr",
                  "#accuracy-chart .main-svg", "#loss-chart .main-svg", "#lineage li", "#oracles tbody tr .earned", "a.cid")
    assert seen["errors"] == []
    assert seen["texts"]["#rounds tbody tr .state"] == ["final", "final"]
    reports = [Report.from_bytes(network.store.get_bytes(p.round(r).report_cid)) for r in (1, 2)]
    rows = seen["texts"]["#submissions tbody tr"]
    assert len(rows) == 2 * PLAN.oracles
    for r, report in enumerate(reports, start=1):
        for e in report.submissions:
            verdict = "merged" if e.accepted and e.reward else (e.reason.value if e.reason else "accepted")
            row = next(x for x in rows if x.split("\t")[:2] == [str(r), e.oracle])
            cells = row.split("\t")
            assert cells[3] == verdict and cells[5] == str(e.weight) and cells[6] == f"{e.reward / 10**18:.2f}", row
    assert seen["counts"]["#accuracy-chart .main-svg"] >= 1 and seen["counts"]["#loss-chart .main-svg"] >= 1
    assert len(seen["texts"]["#lineage li"]) == 2 and p.round(2).new_model_cid in seen["texts"]["#lineage li"][1]
    earned = sorted(f"{sum(e.reward for rep in reports for e in rep.submissions if e.oracle == o) / 10**18:.2f}"
                    for o in {e.oracle for e in reports[0].submissions})
    assert sorted(seen["texts"]["#oracles tbody tr .earned"]) == earned
    assert p.round(2).new_model_cid in seen["texts"]["a.cid"]


@pytest.mark.anvil
def test_a_cid_link_serves_bytes_checked_against_the_cid_and_an_unknown_round_is_a_message(network):
    import httpx

    p = network.protocol
    report = httpx.get(f"{network.url}/ipfs/{p.round(2).report_cid}")
    assert report.status_code == 200 and Report.from_bytes(report.content).round == 2
    seen = browse(network.url + "/round/99", "#error:not(:empty)", "#error")
    assert seen["texts"]["#error"] == ["round 99 does not exist: this deployment has rounds 1 to 2"]
    assert all("404" in e for e in seen["errors"])  # only the refused request itself, no script error


def test_an_unreachable_chain_is_one_message_not_a_stack_trace():
    import requests

    class Dead:
        chain = SimpleNamespace(name="http://127.0.0.1:9")

        def events(self, *a, **k):
            raise requests.ConnectionError("connection refused")

    client = create_app(Dead(), store=None).test_client()
    r = client.get("/api/status")
    assert r.status_code == 503 and r.get_json() == {"error": "the chain at http://127.0.0.1:9 does not answer: ConnectionError"}
    assert client.get("/").status_code == 200  # the page itself loads and shows the message


def test_the_embedded_demo_serves_the_explorer_live(tmp_path):
    """`dgpt demo --dashboard`: the page answers while the rounds run (between the roles' turns,
    on the demo's own thread) and shows every final round once they are done."""
    import time

    import httpx

    from dgpt.config import Settings
    from harness.demo import run_demo

    seen, stop = [], threading.Event()

    def poll(port_box):
        while not stop.is_set():
            if port_box:
                try:
                    data = httpx.get(f"http://127.0.0.1:{port_box[0]}/api/status", timeout=120).json()
                    seen.append(tuple(r["state"] for r in data["rounds"]))
                except httpx.HTTPError:
                    pass
            time.sleep(0.5)

    port_box: list[int] = []
    poller = threading.Thread(target=poll, args=(port_box,), daemon=True)
    browsed = {}

    def after(server):
        proc = subprocess.Popen(["node", str(ROOT / "tests" / "browser" / "page.js"), f"http://127.0.0.1:{server.server_port}/",
                                 "#rounds tbody tr", "#rounds tbody tr .state"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        from dashboard.app import pump_requests

        while proc.poll() is None:
            pump_requests(server)
            time.sleep(0.05)
        browsed.update(json.loads(proc.stdout.read().strip().splitlines()[-1]))

    def log(line):
        if line.startswith("round explorer on http://127.0.0.1:") and not port_box:
            port_box.append(int(line.rsplit(":", 1)[1].strip("/")))
            poller.start()

    run_demo(Settings(home=str(tmp_path)), PLAN, log=log, dashboard_port=0, after=after)
    stop.set()
    assert browsed["errors"] == [] and browsed["texts"]["#rounds tbody tr .state"] == ["final", "final"]
    assert len(set(seen)) >= 2, seen  # the page's data changed while the rounds ran
