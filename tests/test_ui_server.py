"""The dashboard server: JSON API over the store, token and host checks, security headers."""

from __future__ import annotations

from pathlib import Path

import pytest

from _ui_store import XSS_SCRIPT, long_run, make_run
from backfeed.ui.server import DashboardError, check_bind, create_app, is_loopback

pytest.importorskip("starlette")
from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("ui") / "runs.db"
    return path, make_run(path, payload=True)


def _client(path: Path, **kw: object) -> TestClient:
    return TestClient(create_app(path, **kw), base_url="http://127.0.0.1:8765")


def test_api_serves_runs_a_run_and_a_step(store):
    path, run_id = store
    c = _client(path)
    runs = c.get("/api/runs").json()["runs"]
    assert [r["id"] for r in runs] == [run_id]
    assert runs[0]["status"] == "finished" and runs[0]["llm_calls"] == 3 and runs[0]["best_score"] == 0.0
    run = c.get(f"/api/runs/{run_id}").json()
    assert [s["step"] for s in run["steps"]] == [0, 1, 2]
    assert run["pareto"]["wins"] == {"3": [0, 1, 2]}
    step = c.get(f"/api/runs/{run_id}/steps/1").json()
    assert step["rejected"][0]["reason"] == "x is a float; cannot use 'three'"
    assert step["updates"][0]["diff"][-2:] == ["-2.0", "+three"]
    svg = c.get(f"/api/runs/{run_id}/steps/1/graph.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml") and "<svg" in svg.text
    assert "<script" not in svg.text  # the payload in the prompt parameter is escaped
    for page in ("/", f"/runs/{run_id}", f"/runs/{run_id}/steps/1"):
        assert c.get(page).text.count('<script src="/static/app.js" defer></script>') == 1


def test_values_are_json_text_never_markup(store):
    path, run_id = store
    step = _client(path).get(f"/api/runs/{run_id}/steps/0").json()
    applied = {u["name"]: u for u in step["updates"]}
    assert XSS_SCRIPT in applied["system_prompt"]["new_text"]  # raw text: the page escapes it


def test_missing_things_are_404_with_a_reason(store, tmp_path):
    path, run_id = store
    c = _client(path)
    r = c.get("/api/runs/nope")
    assert r.status_code == 404 and "no run 'nope'" in r.json()["error"]
    r = c.get(f"/api/runs/{run_id}/steps/99")
    assert r.status_code == 404 and "has no step 99" in r.json()["error"]
    assert _client(tmp_path / "none.db").get("/api/runs").json()["runs"] == []


def test_every_response_carries_a_strict_content_security_policy(store):
    path, _ = store
    r = _client(path).get("/")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_read_only_and_host_checked(store):
    path, _ = store
    c = _client(path)
    assert c.post("/api/runs").status_code == 405
    assert c.get("/api/runs", headers={"host": "evil.example:8765"}).status_code == 403  # DNS rebinding
    assert c.get("/api/runs", headers={"host": "localhost:8765"}).status_code == 200


def test_a_public_address_needs_a_token(store):
    path, _ = store
    with pytest.raises(DashboardError, match=r"refusing to serve on 0\.0\.0\.0 without a token"):
        create_app(path, host="0.0.0.0")
    c = _client(path, host="0.0.0.0", token="s3cret-token")
    r = c.get("/")
    assert r.status_code == 401 and "A token is required" in r.text
    assert c.get("/api/runs", headers={"authorization": "Bearer wrong-token"}).status_code == 401
    assert c.get("/api/runs", headers={"authorization": "Bearer s3cret-token"}).status_code == 200
    r = c.get("/?token=s3cret-token")
    assert r.status_code == 200 and "backfeed_token=s3cret-token" in r.headers["set-cookie"]
    assert c.get("/api/runs").status_code == 200  # the cookie now carries it
    assert c.get("/api/meta").json()["token_required"] is True


def test_bind_rules():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "long-enough")
    with pytest.raises(DashboardError, match="too short"):
        check_bind("0.0.0.0", "short")


def test_a_long_runs_page_holds_one_page_of_steps_and_a_bounded_score_curve(tmp_path):
    from backfeed.ui.server import PAGE_STEPS
    from backfeed.ui.views import MAX_POINTS

    path = tmp_path / "long.db"
    run_id = long_run(path, 1000)
    c = _client(path)
    newest = c.get(f"/api/runs/{run_id}").json()
    assert [s["step"] for s in newest["steps"]] == list(range(1000 - PAGE_STEPS, 1000))
    assert newest["page"] == {"total_steps": 1000, "before": None, "limit": PAGE_STEPS,
                              "older": 1000 - PAGE_STEPS}
    assert newest["run"]["steps"] == 1000  # the summary still counts the whole run
    listed = {cand["id"] for cand in newest["candidates"]}
    assert {s["candidate"] for s in newest["steps"]} | {334} <= listed and len(listed) <= PAGE_STEPS + 2
    curve = newest["evaluations"]
    assert len(curve) <= MAX_POINTS  # sampled, keeping every point that raised the best score
    assert max(p["score"] for p in curve) == 2.0 and any(p["candidate"] == 334 for p in curve)
    assert curve[0]["candidate"] == 0 and curve[-1]["llm_calls"] <= 1000

    older = c.get(f"/api/runs/{run_id}?before={newest['page']['older']}&limit=400").json()
    assert [s["step"] for s in older["steps"]] == list(range(550, 950))
    first = c.get(f"/api/runs/{run_id}?before=3").json()
    assert [s["step"] for s in first["steps"]] == [0, 1, 2] and first["page"]["older"] is None
    for bad in ("limit=0", "limit=501", "before=x"):
        r = c.get(f"/api/runs/{run_id}?{bad}")
        assert r.status_code == 400 and bad.split("=")[0] in r.json()["error"]
    step = c.get(f"/api/runs/{run_id}/steps/500").json()
    assert (step["prev_step"], step["next_step"], step["score"]) == (499, 501, (500 % 97) / 100)
