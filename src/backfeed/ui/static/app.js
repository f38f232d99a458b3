// backfeed dashboard: three read-only pages over /api. Every value is put in the page as text
// (textContent / createTextNode), never as HTML: prompts, feedback and parameters are user and
// model text.
"use strict";

const POLL_MS = 2000;
const SVG_NS = "http://www.w3.org/2000/svg";
let pollTimer = null;

// ---------- small DOM helpers ----------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function show(...nodes) {
  const main = document.getElementById("main");
  main.replaceChildren(el("div", {}, ...nodes));
}
function crumbs(...parts) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(...parts.map(([label, href]) => (href ? el("a", { href }, label) : el("span", {}, label))));
}
function runHref(id) { return "/runs/" + encodeURIComponent(id); }
function stepHref(id, step) { return runHref(id) + "/steps/" + encodeURIComponent(step); }
function apiRun(id) { return "/api/runs/" + encodeURIComponent(id); }

// ---------- formatting ----------
const fmt = {
  score: (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(3)),
  int: (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US")),
  usd: (v) => (v === null || v === undefined ? "–" : "$" + Number(v).toFixed(Number(v) < 1 ? 4 : 2)),
  duration(s) {
    if (s === null || s === undefined) return "–";
    s = Math.round(Number(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  },
  time(t) { return t ? new Date(Number(t) * 1000).toLocaleString() : "–"; },
  value(v) {
    if (v === null || v === undefined) return "–";
    return typeof v === "string" ? v : JSON.stringify(v, null, 2);
  },
};
function statusBadge(status) {
  const s = String(status || "unknown");
  return el("span", { class: "status status-" + s.replace(/[^a-z]/gi, "") }, s);
}

async function api(path) {
  const res = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) throw new Error((body && body.error) || res.status + " " + res.statusText);
  return body;
}

function setLive(on) {
  document.getElementById("live").hidden = !on;
}
function poll(render, live, idleMs) {
  // Poll fast while a run is writing; the runs list also polls slowly to notice new runs.
  clearTimeout(pollTimer);
  setLive(live);
  if (live || idleMs) pollTimer = setTimeout(render, live ? POLL_MS : idleMs);
}
function fail(err) {
  show(el("p", { class: "error" }, String(err && err.message ? err.message : err)));
}

// ---------- runs list ----------
async function renderRuns() {
  crumbs(["runs", null]);
  const data = await api("/api/runs");
  const runs = data.runs;
  if (!runs.length) {
    show(el("h1", {}, "Runs"), el("p", { class: "muted" }, "No runs in this store yet."));
  } else {
    const rows = runs.map((r) =>
      el("tr", { class: "clickable", "data-run": r.id, onclick: () => { location.href = runHref(r.id); } },
        el("td", {}, el("a", { href: runHref(r.id) }, r.name || r.id), r.name ? el("div", { class: "muted run-id" }, r.id) : null),
        el("td", {}, statusBadge(r.status)),
        el("td", {}, r.strategy || "–"),
        el("td", { class: "num" }, fmt.score(r.best_score)),
        el("td", { class: "num" }, fmt.int(r.steps)),
        el("td", { class: "num" }, fmt.int(r.llm_calls)),
        el("td", { class: "num" }, fmt.int(r.tokens)),
        el("td", { class: "num" }, fmt.usd(r.usd)),
        el("td", { class: "num" }, fmt.duration(r.duration_s)),
        el("td", {}, fmt.time(r.started_at))));
    show(
      el("h1", {}, "Runs"),
      el("table", { id: "runs" },
        el("thead", {}, el("tr", {},
          el("th", {}, "run"), el("th", {}, "status"), el("th", {}, "strategy"),
          el("th", { class: "num" }, "best score"), el("th", { class: "num" }, "steps"),
          el("th", { class: "num" }, "LLM calls"), el("th", { class: "num" }, "tokens"),
          el("th", { class: "num" }, "dollars"), el("th", { class: "num" }, "duration"),
          el("th", {}, "started"))),
        el("tbody", {}, rows)));
  }
  poll(() => renderRuns().catch(fail), runs.some((r) => r.status === "running"), 10000);
}

// ---------- charts ----------
function niceTicks(lo, hi) {
  // Round tick values (1, 2 or 5 times a power of ten) covering [lo, hi], about five or six of them.
  const raw = (hi - lo) / 5;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw);
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}
function scoreChart(title, points, xKey, xFmt) {
  // points: [{x, score, best}] ; draws every evaluation as a dot and best-so-far as a step line.
  const W = 420, H = 220, L = 48, R = 12, T = 10, B = 34;
  const root = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", class: "score-chart", "data-x": xKey });
  root.appendChild(svg("title", {}, title));
  const pts = points.filter((p) => p.x !== null && p.x !== undefined && p.score !== null && p.score !== undefined);
  if (!pts.length) {
    root.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#64748b", "font-size": 12 }, "no scores yet"));
    return el("div", { class: "chart" }, el("div", { class: "title" }, title), root);
  }
  const xs = pts.map((p) => Number(p.x)), ys = pts.map((p) => Number(p.score));
  let x0 = Math.min(0, ...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (x1 === x0) {
    x1 = x0 + 1;
    root.appendChild(svg("text", { x: W - R, y: H - B - 6, "text-anchor": "end", "font-size": 11, fill: "#64748b" },
      `every point at ${xFmt(x0)}`));
  }
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const pad = (y1 - y0) * 0.08; y0 -= pad; y1 += pad;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const axis = { stroke: "#94a3b8", "stroke-width": 1 };
  root.appendChild(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, ...axis }));
  root.appendChild(svg("line", { x1: L, y1: T, x2: L, y2: H - B, ...axis }));
  for (const yv of niceTicks(y0, y1)) {
    root.appendChild(svg("line", { x1: L, x2: W - R, y1: sy(yv), y2: sy(yv), stroke: "#f1f5f9" }));
    root.appendChild(svg("text", { x: L - 6, y: sy(yv) + 4, "text-anchor": "end", "font-size": 10, fill: "#64748b" }, +yv.toPrecision(6)));
  }
  for (const xv of niceTicks(x0, x1)) {
    root.appendChild(svg("line", { x1: sx(xv), x2: sx(xv), y1: H - B, y2: H - B + 3, ...axis }));
    root.appendChild(svg("text", { x: sx(xv), y: H - B + 14, "text-anchor": "middle", "font-size": 10, fill: "#64748b" }, xFmt(xv)));
  }
  root.appendChild(svg("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", "font-size": 11, fill: "#334155" }, xKey));
  const sorted = pts.slice().sort((a, b) => a.x - b.x);
  let best = -Infinity, line = "";
  for (const p of sorted) {
    const prev = best;
    best = Math.max(best, Number(p.score));
    if (line === "") line = `M${sx(p.x)},${sy(best)}`;
    else line += ` L${sx(p.x)},${sy(prev)} L${sx(p.x)},${sy(best)}`;
  }
  line += ` L${sx(x1)},${sy(best)}`;
  root.appendChild(svg("path", { d: line, fill: "none", stroke: "#16a34a", "stroke-width": 2 }));
  for (const p of sorted) {
    const c = svg("circle", { cx: sx(p.x), cy: sy(p.score), r: 3.5, fill: "#2563eb", "fill-opacity": 0.75 });
    c.appendChild(svg("title", {}, `${p.label}: score ${fmt.score(p.score)} at ${xFmt(p.x)}`));
    root.appendChild(c);
  }
  return el("div", { class: "chart" }, el("div", { class: "title" }, title), root);
}

// ---------- lineage tree ----------
function lineage(candidates, runId, bestId) {
  const byParent = new Map();
  const ids = new Set(candidates.map((c) => String(c.id)));
  for (const c of candidates) {
    const parent = (c.parents || []).find((p) => ids.has(String(p)));
    const key = parent === undefined ? "" : String(parent);
    if (!byParent.has(key)) byParent.set(key, []);
    byParent.get(key).push(c);
  }
  const seen = new Set();
  function branch(key) {
    const kids = (byParent.get(key) || []).filter((c) => !seen.has(String(c.id)));
    if (!kids.length) return null;
    return el("ul", {}, kids.map((c) => {
      seen.add(String(c.id));
      const label = [el("span", { class: "cand" + (String(c.id) === String(bestId) ? " best" : "") }, String(c.id)),
        " · score " + fmt.score(c.score)];
      if ((c.parents || []).length > 1) label.push(" · merge of " + c.parents.join(" + "));
      if (c.origin === "seed" || c.step === null || c.step === undefined || c.step < 0) label.push(" · seed");
      else label.push(" · ", el("a", { href: stepHref(runId, c.step) }, "step " + c.step));
      if (c.status) label.push(" · ", el("span", { class: "muted" }, c.status));
      return el("li", { "data-candidate": c.id }, label, branch(String(c.id)));
    }));
  }
  const tree = branch("") || el("ul", {});
  tree.className = "tree";
  return tree;
}

// ---------- pareto wins ----------
function paretoTable(pareto, bestId) {
  const examples = pareto.examples || [];
  const cands = Object.keys(pareto.wins || {});
  return el("table", { id: "pareto" },
    el("thead", {}, el("tr", {}, el("th", {}, "candidate"), el("th", { class: "num" }, "wins"),
      examples.map((e) => el("th", { class: "num", title: String(e) }, String(e))))),
    el("tbody", {}, cands.map((c) => {
      const wins = new Set((pareto.wins[c] || []).map(String));
      return el("tr", {},
        el("td", { class: "cand" + (String(c) === String(bestId) ? " best" : "") }, c),
        el("td", { class: "num" }, wins.size),
        examples.map((e) => (wins.has(String(e)) ? el("td", { class: "win" }, "●") : el("td", {}, ""))));
    })));
}

// ---------- a run ----------
function card(k, v) { return el("div", { class: "card" }, el("div", { class: "k" }, k), el("div", { class: "v" }, v)); }

async function renderRun(id, before) {
  // One page of steps: the newest, or those before `before` (?before=N in the address).
  const data = await api(apiRun(id) + (before ? "?before=" + encodeURIComponent(before) : ""));
  const run = data.run;
  crumbs(["runs", "/"], [run.name || String(run.id), null]);
  document.title = "backfeed · " + (run.name || run.id);
  const points = (data.evaluations || []).map((e) => ({ label: e.label, score: e.score, llm: e.llm_calls, usd: e.usd }));
  const steps = data.steps.map((s) => (s.step < 0
    ? el("tr", { "data-step": s.step }, el("td", {}, "seed"), el("td", { class: "cand" }, String(s.candidate ?? "–")),
        el("td", { class: "num" }, fmt.score(s.score)), el("td", {}, "start"), el("td", { colspan: 5 }, "the starting values"))
    : el("tr", { class: "clickable", "data-step": s.step, onclick: () => { location.href = stepHref(run.id, s.step); } },
      el("td", {}, el("a", { href: stepHref(run.id, s.step) }, "step " + s.step)),
      el("td", { class: "cand" }, s.candidate === null || s.candidate === undefined ? "–" : String(s.candidate)),
      el("td", { class: "num" }, fmt.score(s.score)),
      el("td", {}, s.accepted === null || s.accepted === undefined ? "–" : s.accepted ? "accepted" : "not kept"),
      el("td", { class: "num" }, fmt.int(s.applied)),
      el("td", { class: "num" }, fmt.int(s.rejected)),
      el("td", { class: "num" }, fmt.int(s.llm_calls)),
      el("td", { class: "num" }, fmt.usd(s.usd)),
      el("td", {}, s.summary || "–", s.reason ? el("div", { class: "muted" }, s.reason) : null))));
  const best = Object.entries(run.best_params || {}).map(([k, v]) =>
    el("div", { class: "panel" }, el("div", { class: "param-name" }, k), el("pre", { class: "box" }, fmt.value(v))));
  show(
    el("h1", {}, run.name || String(run.id), " ", statusBadge(run.status)),
    el("div", { class: "cards" },
      card("best score", fmt.score(run.best_score)), card("LLM calls", fmt.int(run.llm_calls)),
      card("tokens", fmt.int(run.tokens)), card("dollars", fmt.usd(run.usd)),
      card("duration", fmt.duration(run.duration_s)), card("strategy", run.strategy || "–"),
      ...Object.entries(run.by_role || {}).map(([role, s]) =>
        card(role + " spend", fmt.int(s.calls) + " calls · " + fmt.usd(s.usd)))),
    run.error ? el("p", { class: "error" }, run.error) : null,
    run.verdict ? el("p", { id: "verdict", class: run.verdict.significant ? "verdict" : "verdict muted" }, run.verdict.line) : null,
    el("h2", {}, "Score"),
    el("div", { class: "charts" },
      scoreChart("score vs LLM calls", points.map((p) => ({ ...p, x: p.llm })), "LLM calls", (v) => String(+v.toPrecision(6))),
      scoreChart("score vs dollars", points.map((p) => ({ ...p, x: p.usd })), "dollars", (v) => "$" + +v.toPrecision(4)),
      // objectives=: each measured cost against the score; the step line is the front (the
      // best score at that cost or less)
      ...[...new Set((data.candidates || []).flatMap((c) => Object.keys(c.objectives || {})))].map((name) =>
        scoreChart("score vs " + name + " (the line: the front)",
          data.candidates.filter((c) => c.objectives && c.objectives[name] !== undefined)
            .map((c) => ({ label: "candidate " + c.id, score: c.score, x: c.objectives[name] })),
          name, (v) => String(+v.toPrecision(4))))),
    el("h2", {}, "Steps"),
    data.steps.length
      ? el("table", { id: "steps" }, el("thead", {}, el("tr", {},
          el("th", {}, "step"), el("th", {}, "candidate"), el("th", { class: "num" }, "score"), el("th", {}, "kept"),
          el("th", { class: "num" }, "applied"), el("th", { class: "num" }, "rejected"),
          el("th", { class: "num" }, "LLM calls"), el("th", { class: "num" }, "dollars"), el("th", {}, "what changed, and the decision"))),
        el("tbody", {}, steps))
      : el("p", { class: "muted" }, "No steps yet."),
    pager(run.id, data.page, data.steps),
    el("h2", {}, "Candidate lineage"),
    data.candidates.length ? lineage(data.candidates, run.id, run.best_candidate) : el("p", { class: "muted" }, "No candidates yet."),
    data.pareto ? el("h2", {}, "Pareto front: which candidate wins which examples") : null,
    data.pareto ? paretoTable(data.pareto, run.best_candidate) : null,
    data.pareto && data.pareto.front_size > Object.keys(data.pareto.wins || {}).length
      ? el("p", { class: "muted", id: "pareto-more" }, `the ${Object.keys(data.pareto.wins).length} of ${fmt.int(data.pareto.front_size)} front candidates that win the most examples`)
      : null,
    best.length ? el("h2", {}, "Best parameters") : null,
    ...best);
  poll(() => renderRun(id, before).catch(fail), run.status === "running");
}

function pager(runId, page, steps) {
  // Where this page of steps sits in the run, with links to older and to the newest steps.
  if (!page || !steps.length) return null;
  const shown = `steps ${steps[0].step}–${steps[steps.length - 1].step} of ${fmt.int(page.total_steps)}`;
  return el("p", { id: "pager", class: "muted" }, shown,
    page.before !== null && page.before !== undefined ? ["  ", el("a", { href: runHref(runId), id: "newest-steps" }, "newest steps")] : null,
    page.older !== null && page.older !== undefined
      ? ["  ", el("a", { href: runHref(runId) + "?before=" + encodeURIComponent(page.older), id: "older-steps" }, "older steps →")]
      : null);
}

// ---------- a step ----------
function diffBlock(lines) {
  const pre = el("pre", { class: "diff" });
  for (const line of lines) {
    const cls = line.startsWith("+") && !line.startsWith("+++") ? "add"
      : line.startsWith("-") && !line.startsWith("---") ? "del"
      : line.startsWith("@@") ? "hunk" : "";
    pre.appendChild(el("span", { class: cls }, line));
  }
  return pre;
}

function updatePanel(u) {
  const tag = u.applied ? el("span", { class: "tag tag-applied" }, "applied")
    : u.reason ? el("span", { class: "tag tag-rejected" }, "rejected")
    : el("span", { class: "tag tag-kept" }, "unchanged");
  const parts = [el("div", { class: "param-head" }, el("span", { class: "param-name" }, u.name), tag,
    u.candidate !== null && u.candidate !== undefined ? el("span", { class: "muted" }, ` candidate ${u.candidate}`) : null)];
  if (u.reason) parts.push(el("p", {}, el("span", { class: "reason" }, "reason: "), u.reason));
  parts.push(el("div", { class: "kv" },
    el("div", {}, "before"), el("pre", { class: "box value-old" }, fmt.value(u.old_text)),
    el("div", {}, "proposed"), el("pre", { class: "box value-proposed" }, fmt.value(u.proposed_text)),
    el("div", {}, "applied"), el("pre", { class: "box value-new" }, u.applied ? fmt.value(u.new_text) : "(not applied)")));
  if (u.diff && u.diff.length) parts.push(el("h3", {}, "diff"), diffBlock(u.diff));
  return el("div", { class: "panel update" + (u.applied ? "" : " rejected"), "data-param": u.name, "data-candidate": u.candidate ?? "" }, parts);
}

function rejectedPanel(r) {
  return el("div", { class: "panel rejected rejected-suggestion", "data-param": r.name },
    el("div", { class: "param-head" }, el("span", { class: "param-name" }, r.name), el("span", { class: "tag tag-rejected" }, "rejected")),
    el("p", {}, el("span", { class: "reason" }, "reason: "), el("span", { class: "reason-text" }, r.reason || "(no reason recorded)")),
    el("div", { class: "kv" }, el("div", {}, "suggested"), el("pre", { class: "box" }, fmt.value(r.proposed_text))));
}

function candidatesTable(cands) {
  return el("table", { id: "candidates" },
    el("thead", {}, el("tr", {}, el("th", {}, "candidate"), el("th", {}, "changed"),
      el("th", { class: "num" }, "score"), el("th", {}, "verdict"))),
    el("tbody", {}, cands.map((c) => el("tr", { "data-candidate": c.candidate },
      el("td", { class: "cand" }, String(c.candidate)),
      el("td", {}, (c.changed || []).join(", ") || "–"),
      el("td", { class: "num" }, fmt.score(c.score)),
      el("td", {}, c.accepted === true ? "kept" : c.accepted === false ? "not kept" : "–",
        c.reason ? el("span", { class: "muted" }, " · " + c.reason) : null)))));
}

function messages(prompt) {
  return prompt.map((m) => el("div", {}, el("div", { class: "message-role" }, m.role || "message"),
    el("pre", { class: "box prompt" }, fmt.value(m.content))));
}

async function renderStep(id, step) {
  const d = await api(apiRun(id) + "/steps/" + encodeURIComponent(step));
  crumbs(["runs", "/"], [d.run_name || String(d.run_id), runHref(d.run_id)], [d.step < 0 ? "seed" : "step " + d.step, null]);
  document.title = `backfeed · ${d.run_name || d.run_id} · step ${d.step}`;
  const nav = el("p", {},
    d.prev_step !== null && d.prev_step !== undefined ? el("a", { href: stepHref(d.run_id, d.prev_step) }, "← " + (d.prev_step < 0 ? "seed" : "step " + d.prev_step)) : null,
    "  ",
    d.next_step !== null && d.next_step !== undefined ? el("a", { href: stepHref(d.run_id, d.next_step) }, "step " + d.next_step + " →") : null);
  const feedback = (d.feedback || []).map((f) => el("div", { class: "panel feedback" },
    f.example !== null && f.example !== undefined ? el("div", { class: "muted" }, "example " + f.example + (f.score !== null && f.score !== undefined ? " · score " + fmt.score(f.score) : "")) : null,
    el("pre", {}, fmt.value(f.text))));
  const prompts = (d.prompts || []).map((p, i) => el("div", { class: "panel" }, el("h3", {}, "prompt " + (i + 1)), messages(p),
    d.answers && d.answers[i] !== undefined ? [el("div", { class: "message-role" }, "answer"), el("pre", { class: "box answer" }, d.answers[i])] : null));
  show(
    el("h1", {}, d.step < 0 ? "Seed" : `Step ${d.step}`, d.candidate !== null && d.candidate !== undefined ? ` · candidate ${d.candidate}` : ""),
    nav,
    el("div", { class: "cards" },
      card("score", fmt.score(d.score)), card("applied", fmt.int((d.updates || []).filter((u) => u.applied && (u.candidate === d.candidate || (d.candidates || []).length <= 1)).length)),
      card("rejected", fmt.int((d.rejected || []).length)), card("tokens", fmt.int(d.tokens)), card("dollars", fmt.usd(d.usd))),
    d.error ? el("p", { class: "error" }, "optimizer error: " + d.error) : null,
    el("h2", {}, "Trace graph"),
    d.has_graph
      ? el("div", { class: "graph" }, el("img", { id: "trace-graph", alt: "trace graph of step " + d.step, src: apiRun(d.run_id) + "/steps/" + d.step + "/graph.svg" }))
      : el("p", { class: "muted" }, "No trace graph was recorded for this step."),
    el("h2", {}, "Feedback"),
    feedback.length ? feedback : el("p", { class: "muted" }, "No feedback recorded."),
    (d.decisions || []).length ? [el("h2", {}, "Decision"), el("div", { id: "decisions" }, d.decisions.map((x) =>
      el("div", { class: "panel" + (x.accepted ? "" : " rejected") },
        el("span", { class: "tag " + (x.accepted ? "tag-applied" : "tag-rejected") }, x.accepted ? "kept" : "not kept"),
        x.candidate >= 0 ? ` candidate ${x.candidate}: ` : ` proposal ${-x.candidate}: `, x.reason,
        el("span", { class: "muted" }, ` (score ${fmt.score(x.parent_score)} → ${fmt.score(x.child_score)})`))))] : null,
    (d.candidates || []).length > 1 ? [el("h2", {}, `Candidates (${d.candidates.length})`), candidatesTable(d.candidates)] : null,
    el("h2", {}, "Parameters: proposed and applied"),
    (d.updates || []).length ? el("div", { id: "updates" }, (d.updates || []).map(updatePanel)) : el("p", { class: "muted" }, "No parameter was proposed."),
    el("h2", {}, `Rejected suggestions (${(d.rejected || []).length})`),
    (d.rejected || []).length ? el("div", { id: "rejected" }, d.rejected.map(rejectedPanel)) : el("p", { class: "muted" }, "None."),
    d.reasoning ? [el("h2", {}, "Optimizer reasoning"), el("pre", { class: "box reasoning" }, d.reasoning)] : null,
    el("h2", {}, "Exact prompt and answer"),
    prompts.length ? prompts : el("p", { class: "muted" }, "No LLM call in this step."));
  poll(() => renderStep(id, step).catch(fail), d.run_status === "running");
}

// ---------- routing ----------
async function start() {
  try {
    const meta = await api("/api/meta");
    if (meta.token_required) {
      const n = document.getElementById("notice");
      n.textContent = `Served on ${meta.host}: a token is required to open this dashboard. Do not share this page's address.`;
      n.hidden = false;
    }
  } catch (e) { /* the page routes below report the error */ }
  const parts = location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  let work;
  if (parts[0] === "runs" && parts.length === 4 && parts[2] === "steps") work = renderStep(parts[1], parts[3]);
  else if (parts[0] === "runs" && parts.length === 2) work = renderRun(parts[1], new URLSearchParams(location.search).get("before"));
  else work = renderRuns();
  work.catch(fail);
}
document.addEventListener("DOMContentLoaded", start);
