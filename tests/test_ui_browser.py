"""The dashboard end to end in real headless Chromium (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _ui_store import XSS_IMG, XSS_SCRIPT, long_run, make_run, train_run
from backfeed.store import RunStore

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("BACKFEED_CHROMIUM", "/usr/bin/chromium")
if not shutil.which(CHROMIUM):
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parent.parent / "docs"


def _serve(store: Path, token: str | None = None, host: str = "127.0.0.1") -> tuple[str, object, threading.Thread]:
    from backfeed.ui.server import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(store, host=host, token=token), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the dashboard server did not start"
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


@contextlib.contextmanager
def _served(store: Path, token: str | None = None, host: str = "127.0.0.1") -> Iterator[str]:
    """The dashboard on `store` for the block: its address; the server stops after."""
    url, server, thread = _serve(store, token=token, host=host)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def dashboard(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    store = tmp_path / "runs.db"
    run_id = train_run(store, payload=True)  # a scripted training through bf.train
    with _served(store) as url:
        yield url, store, run_id


def _until(page: object, expression: str, timeout: float = 15.0) -> None:
    """Poll a JS expression (the page's CSP forbids eval, so no wait_for_function)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        page.wait_for_timeout(100)


def _page(browser: object) -> tuple[object, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    return page, problems


def test_runs_run_and_step_pages_show_the_diff_and_the_rejected_suggestion(browser, dashboard):
    url, _, run_id = dashboard
    page, problems = _page(browser)
    page.goto(url + "/")
    row = page.locator(f"#runs tbody tr[data-run='{run_id}']")
    row.wait_for()
    assert "finished" in row.inner_text() and "0.000" in row.inner_text()  # status, best score
    row.click()
    page.wait_for_selector("#steps")
    assert page.url.endswith(f"/runs/{run_id}")
    assert page.locator("svg.score-chart circle").count() == 6  # 3 validated candidates x 2 charts
    assert page.locator("ul.tree li[data-candidate]").count() == 4  # the seed and 3 proposals
    assert page.locator("#pareto tbody tr").count() == 1  # candidate 3 wins every example
    assert "does not improve its parent" in page.locator("#steps tbody tr[data-step='1']").inner_text()
    page.locator("#steps tbody tr[data-step='1']").click()
    page.wait_for_selector("#updates")
    assert page.url.endswith(f"/runs/{run_id}/steps/1")
    # the text diff of each parameter
    diff = page.locator(".update[data-param='x'] .diff")
    assert diff.locator("span.del").inner_text() == "-2.0"
    assert diff.locator("span.add").inner_text() == "+three"
    assert "Be exact." in page.locator(".update[data-param='system_prompt'] .diff span.add").inner_text()
    # the rejected suggestion with its reason
    rejected = page.locator("#rejected .rejected-suggestion[data-param='x']")
    assert rejected.locator(".reason-text").inner_text() == "parameter 'x' is float; got str 'three'"
    # the exact prompt and answer, the trace graph and the feedback
    assert "#Graph" in page.locator("pre.prompt").nth(1).inner_text()
    assert '"x": "three"' in page.locator("pre.answer").inner_text()
    assert "expected 20.0, got 16.0" in page.locator(".feedback").first.inner_text()
    assert "not kept" in page.locator("#decisions").inner_text()
    _until(page, "document.getElementById('trace-graph').complete && document.getElementById('trace-graph').naturalWidth > 0")
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "dashboard-step.png"), full_page=True)
    assert problems == []


def test_parameter_payloads_are_shown_as_text_and_run_nothing(browser, dashboard):
    url, _, run_id = dashboard
    for path in ("/", f"/runs/{run_id}", f"/runs/{run_id}/steps/0", f"/runs/{run_id}/steps/1"):
        page, problems = _page(browser)
        page.goto(url + path)
        page.wait_for_selector("main table, #updates")
        page.wait_for_timeout(300)
        assert page.evaluate("window.__pwned") is None, path
        # the only script is the dashboard's own, and no element carries an event handler
        assert page.evaluate("[...document.scripts].map(s => s.src.replace(location.origin, ''))") == ["/static/app.js"]
        assert page.locator("[onerror]").count() == 0
        assert page.locator("main img").count() <= 1  # the trace graph only
        assert problems == [], path
        if "steps/0" in path:
            text = page.locator(".update[data-param='system_prompt'] pre.value-new").inner_text()
            assert XSS_SCRIPT in text and XSS_IMG in text  # shown verbatim, as text
        page.close()


def test_pages_update_live_while_a_run_is_writing(browser, tmp_path):
    store_path = tmp_path / "runs.db"
    run_id = make_run(store_path, finish=False)  # still 'running'
    with _served(store_path) as url:
        page, problems = _page(browser)
        page.goto(f"{url}/runs/{run_id}")
        page.wait_for_selector("#steps")
        assert page.locator("#steps tbody tr").count() == 3
        assert page.locator("#live").is_visible()
        store = RunStore(store_path)
        store.add_candidate(run_id, 4, step=3, values={"x": 3.0, "system_prompt": "Hi"}, parents=[3],
                            origin="proposal", status="rejected", val_score=-1.0, val_scores=[-1.0])
        store.checkpoint(run_id, step=3, parents=[3], candidate=4, accepted=False, best_score=0.0,
                         best_candidate=3, spend={"calls": 4, "tokens": 900, "usd": 0.005}, state={},
                         started_at=time.time())
        page.wait_for_selector("#steps tbody tr[data-step='3']", timeout=15000)
        store.update_run(run_id, status="finished")
        _until(page, "document.getElementById('live').hidden")
        store.close()
        assert problems == []


def test_a_long_run_shows_its_newest_steps_and_pages_back_to_older_ones(browser, tmp_path):
    store_path = tmp_path / "runs.db"
    run_id = long_run(store_path, 120)
    with _served(store_path) as url:
        page, problems = _page(browser)
        page.goto(f"{url}/runs/{run_id}")
        page.wait_for_selector("#steps")
        rows = page.locator("#steps tbody tr")
        assert rows.count() == 50 and rows.first.get_attribute("data-step") == "70"
        assert "steps 70–119 of 120" in page.locator("#pager").inner_text()
        page.click("#older-steps")
        page.wait_for_selector("#steps tbody tr[data-step='20']")
        assert page.locator("#steps tbody tr").count() == 50 and "?before=70" in page.url
        page.click("#newest-steps")
        page.wait_for_selector("#steps tbody tr[data-step='119']")
        assert problems == []


def test_a_token_protected_dashboard_says_so(browser, tmp_path):
    store = tmp_path / "runs.db"
    make_run(store)
    with _served(store, token="s3cret-token", host="0.0.0.0") as url:
        page, _ = _page(browser)
        response = page.goto(url + "/")
        assert response.status == 401
        assert "token is required" in page.locator("body").inner_text()
        page.goto(url + "/?token=s3cret-token")
        page.wait_for_selector("#runs")
        assert "a token is required" in page.locator("#notice").inner_text()
        page.goto(url + "/")  # the cookie set on the first visit carries the token
        page.wait_for_selector("#runs")


def _several_candidates_run(path: Path) -> str:
    """One step of Prime with three candidates for two text parameters (scripted)."""
    import backfeed as bf

    class Two(bf.Module):
        def __init__(self) -> None:
            self.greeting = bf.param("Hi", name="greeting")
            self.closing = bf.param("Bye", name="closing")

        def forward(self, name):
            return bf.format("{g} {n}. {c}", g=self.greeting, n=name, c=self.closing)

    answers = [f"### greeting\n```text\nHello, take {i}\n```\n### closing\n```text\nCiao {i}\n```"
               for i in range(3)]
    module = Two()
    result = bf.train(module, ["Ann", "Bo"], metric=lambda ex, out: float("Hello" in out),
                      steps=1, store=str(path), progress=False, name="several",
                      optimizer=bf.optim.Prime(module.parameters(), llm=bf.llm.Scripted(answers),
                                               candidates=3, compact=False))
    return result.run_id


def test_a_step_with_several_candidates_counts_its_tokens_prompts_and_cards_once(browser, tmp_path):
    store_path = tmp_path / "runs.db"
    run_id = _several_candidates_run(store_path)
    store = RunStore(store_path)
    calls = store.llm_calls(run_id, step=0)
    tokens = sum(c.prompt_tokens + c.completion_tokens for c in calls)
    store.close()
    with _served(store_path) as url:
        page, problems = _page(browser)
        page.goto(f"{url}/runs/{run_id}/steps/0")
        page.wait_for_selector("#candidates")
        assert page.locator("#candidates tbody tr").count() == 3
        cards = {page.locator(".card .k").nth(i).inner_text(): page.locator(".card .v").nth(i)
                 .inner_text() for i in range(page.locator(".card").count())}
        assert cards["tokens"] == f"{tokens:,}"
        assert cards["applied"] == "2"  # the kept candidate's two changes, not all six
        assert page.locator("a", has_text="← seed").count() == 1
        assert page.locator("pre.answer").count() == len(calls) == 3
        panels = page.locator("#updates .update")
        assert panels.count() == 6  # two parameters of each of three candidates, once each
        for i in range(3):  # each candidate's card holds its own value
            assert f"Hello, take {i}" in page.locator(
                f"#updates .update[data-param='greeting'][data-candidate='{i + 1}']").inner_text()
        assert problems == []


def test_a_run_with_objectives_draws_each_cost_against_the_score_and_its_verdict(browser, tmp_path):
    import backfeed as bf
    import train_helpers as h

    store = tmp_path / "runs.db"
    module = h.Router()
    result = bf.train(module, h.dataset(1), metric=h.metric, steps=2, store=store,
                      optimizer=h.FixOptimizer(module.parameters(), llm=h.scripted()),
                      progress=False, objectives=["prompt_tokens", "latency"],
                      testset=h.dataset(1))
    with _served(store) as url:
        page, problems = _page(browser)
        page.goto(f"{url}/runs/{result.run_id}")
        page.locator("svg.score-chart[data-x='prompt_tokens']").wait_for()
        assert page.locator("svg.score-chart[data-x='latency']").count() == 1
        assert "score vs prompt_tokens (the line: the front)" in page.inner_text("body")
        assert result.verdict.line() in page.inner_text("#verdict")
        assert problems == []
        page.close()
