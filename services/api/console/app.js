// The operator's console: runs, one run as a stages x batches grid, health at a glance (with the stages' workers and
// the versions kept), the audit trail, and the operator's actions (trigger, retry, rollback), each confirmed first.
// It reads only the API, with the operator token, through URLs relative to the page, so it works wherever the
// API is mounted. Routes live in the hash: #/?status=…, #/run/ID, #/health, #/audit.
// Data goes into the DOM through textContent only, never as HTML: errors and log lines are not ours to trust.
"use strict";

const API_ROOT = new URL("../", document.baseURI); // the page is served at <api>/console/
const REQUEST_TIMEOUT_MS = 10000;
const REFRESH_MS = 2000; // while a run is in flight, its view follows it
const RUNS_LISTED = 50;
const TOKEN_KEY = "console-token"; // this tab's session only: closing it forgets the token
const STATUSES = ["queued", "running", "succeeded", "failed"];
const STAGES = ["extract", "archive", "transform", "classify", "publish"];
const RUN_LEVEL = new Set(["publish"]); // one task a run, recorded as batch 0
const TRIGGERS = {beat: "schedule", api: "API", cli: "CLI"};

const main = document.getElementById("main");
let refreshTimer = null;

class ApiError extends Error {
  constructor(status, error, detail) {
    super(detail);
    this.status = status;
    this.error = error;
    this.detail = detail;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

async function api(path, {method = "GET", params = {}, body} = {}) {
  const url = new URL(path, API_ROOT);
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  const headers = {Accept: "application/json", Authorization: `Bearer ${token()}`};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    throw new ApiError(0, "unavailable", err.name === "TimeoutError" ? "the request timed out" : "no answer from the API");
  }
  const answer = await response.json().catch(() => null);
  if (response.ok && answer !== null) return answer;
  throw new ApiError(response.status, (answer && answer.error) || "http_error", (answer && answer.detail) || `HTTP ${response.status}`);
}

// ---------------------------------------------------------------------------- DOM helpers (el: ../common/dom.js)

function badge(status) {
  return el("span", {class: `badge state-${status}`, text: status});
}

function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function when(iso) {
  if (!iso) return "–";
  return new Date(iso).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function count(n) {
  return n === null || n === undefined ? "–" : n.toLocaleString("en-US");
}

function size(bytes) {
  if (bytes === null || bytes === undefined) return "size unknown";
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let n = bytes, unit = 0;
  while (n >= 1000 && unit < units.length - 1) { n /= 1000; unit++; }
  return unit ? `${n.toFixed(1)} ${units[unit]}` : `${n} bytes`;
}

// A retry reopens the same run, whose work keeps its planned mode: "incremental · retry ×2" says both.
function modeOf(job) {
  const mode = job.mode || "–";
  return job.retries ? `${mode} · retry ×${job.retries}` : mode;
}

// An action's answer, said plainly (its status code and what the API said), above the view: it stays while the
// view refreshes.
function answer(ok, text) {
  document.getElementById("answer").replaceChildren(el("p", {class: ok ? "answer ok" : "answer refused", text}));
}

function explained(err) {
  if (err.status === 401 || err.status === 403) return `${err.status}: ${err.detail} Enter the operator token above.`;
  if (err.status === 0) return `The API did not answer: ${err.detail}.`;
  return `${err.status}: ${err.detail}`;
}

function failure(err) {
  return el("section", {class: "panel error"}, el("h2", {text: err.status === 401 || err.status === 403 ? "Operator token needed" : "Could not load"}), el("p", {text: explained(err)}));
}

// ---------------------------------------------------------------------------- runs

function durationBars(jobs) {
  // Each run's duration against the slowest listed; a run slower than twice the mean of the other successful
  // runs of its mode is marked, as the run_duration alert rule would.
  const longest = Math.max(1, ...jobs.map((j) => j.duration_seconds || 0));
  const meanOfOthers = (job) => {
    const others = jobs.filter((j) => j !== job && j.mode === job.mode && j.status === "succeeded" && j.duration_seconds);
    return others.length ? others.reduce((a, j) => a + j.duration_seconds, 0) / others.length : null;
  };
  return (job) => {
    const s = job.duration_seconds || 0;
    const mean = meanOfOthers(job);
    const slow = mean !== null && s > 2 * mean;
    return el("span", {class: `bar${slow ? " slow" : ""}`, title: slow ? "slower than twice the mean of its mode" : `${seconds(s)}`},
      el("span", {style: `width:${Math.max(2, (100 * s) / longest).toFixed(1)}%`}));
  };
}

let triggerPanel = null; // made once: a refresh keeps what the operator typed

function triggerForm() {
  if (triggerPanel) return triggerPanel;
  const mode = el("select", {id: "trigger-mode"}, el("option", {value: "incremental", text: "incremental"}), el("option", {value: "full", text: "full"}));
  const limit = el("input", {id: "trigger-limit", type: "number", min: "1", placeholder: "all"});
  const form = el("form", {class: "action", onsubmit: async (event) => {
    event.preventDefault();
    const body = {full: mode.value === "full"};
    if (limit.value) body.limit = Number(limit.value);
    if (!confirm(`Trigger a ${mode.value} run${body.limit ? ` of at most ${body.limit} reviews` : ""}?`)) return;
    try {
      const accepted = await api("jobs", {method: "POST", body});
      answer(true, `202 Accepted: run ${accepted.job_id} is ${accepted.status}.`);
      setTimeout(route, 300);
    } catch (err) {
      answer(false, explained(err));
    }
  }},
  el("label", {for: "trigger-mode", text: "Mode"}), mode,
  el("label", {for: "trigger-limit", text: "Limit"}), limit,
  el("button", {type: "submit", text: "Trigger a run"}));
  triggerPanel = el("section", {class: "panel"}, el("h2", {text: "Trigger"}), form);
  return triggerPanel;
}

async function runsView(params) {
  const status = params.get("status") || "";
  const filter = el("select", {id: "status-filter", onchange: (e) => { location.hash = e.target.value ? `#/?status=${e.target.value}` : "#/"; }},
    el("option", {value: "", text: "every status"}), ...STATUSES.map((s) => el("option", {value: s, text: s, selected: s === status})));
  let jobs;
  try {
    jobs = (await api("jobs", {params: {limit: RUNS_LISTED}})).jobs;
  } catch (err) {
    return [triggerForm(), failure(err)];
  }
  const shown = jobs.filter((j) => !status || j.status === status);
  const bar = durationBars(jobs);
  const rows = shown.map((j) => el("tr", {class: "run", "data-job-id": j.job_id},
    el("td", {}, badge(j.status)),
    el("td", {}, el("a", {href: `#/run/${encodeURIComponent(j.job_id)}`, text: j.job_id})),
    el("td", {text: TRIGGERS[j.trigger] || j.trigger}),
    el("td", {text: modeOf(j)}),
    el("td", {text: when(j.started_at)}),
    el("td", {class: "num", text: seconds(j.duration_seconds)}),
    el("td", {}, bar(j)),
    el("td", {class: "num", text: count(j.source_rows)}),
    el("td", {class: "num", text: count(j.curated_rows)}),
    el("td", {class: "num", text: count(j.stages.transform ? j.stages.transform.rejects : null)})));
  const inFlight = jobs.some((j) => j.status === "queued" || j.status === "running");
  if (inFlight) scheduleRefresh();
  return [
    triggerForm(),
    el("section", {class: "panel"},
      el("div", {class: "panel-head"}, el("h1", {text: "Runs"}),
        el("label", {for: "status-filter", text: "Status"}), filter,
        inFlight ? el("span", {class: "live", text: "following the run in flight"}) : null),
      shown.length
        ? el("table", {class: "runs"},
            el("thead", {}, el("tr", {}, ...["Status", "Run", "Trigger", "Mode", "Started", "Duration", "", "Rows in", "Rows out", "Rejects"].map((h) => el("th", {text: h})))),
            el("tbody", {}, ...rows))
        : el("p", {class: "muted", text: status ? `No ${status} run among the last ${RUNS_LISTED}.` : "No run yet."})),
  ];
}

// ---------------------------------------------------------------------------- one run

function cellDetails(b) {
  const parts = [`${b.stage} batch ${b.batch}: ${b.status}`, `rows ${count(b.rows_in)} → ${count(b.rows_out)}`,
    `rejects ${count(b.rejects)}`, `attempts ${b.attempts}`, `time ${seconds(b.seconds)}`];
  if (b.error) parts.push(`error: ${b.error}`);
  return parts.join(" · ");
}

function grid(job, batches) {
  const byStage = Object.fromEntries(STAGES.map((s) => [s, new Map()]));
  for (const b of batches) byStage[b.stage].set(b.batch, b);
  const numbers = new Set(); // batch 0 of extract is its task's retries, shown while it has any
  for (const b of batches) if (!RUN_LEVEL.has(b.stage)) numbers.add(b.batch);
  for (let n = 1; n <= (job.batches || 0); n++) numbers.add(n); // extracted, not yet reached by every stage
  const ordered = [...numbers].sort((a, b) => a - b);
  const details = el("p", {class: "cell-details muted", id: "cell-details", text: "Point at or click a cell for its batch."});
  // Thousands of cells: one listener on the grid, and a cell's details written when it is pointed at.
  const shown = [];
  const rows = STAGES.map((stage) => {
    const wanted = RUN_LEVEL.has(stage) ? [0] : ordered;
    const cells = wanted.map((n) => {
      const b = byStage[stage].get(n) || {stage, batch: n, status: "queued", attempts: 0, rows_in: null, rows_out: null, rejects: null, seconds: null, error: null};
      shown.push(b);
      return el("button", {type: "button", class: `cell state-${b.status}`, "aria-label": `${stage} batch ${n}: ${b.status}`,
        "data-stage": stage, "data-batch": n, "data-i": shown.length - 1});
    });
    return el("div", {class: "grid-row"}, el("span", {class: "grid-stage", text: stage}), el("div", {class: "cells"}, ...cells));
  });
  const show = (event) => {
    const cell = event.target.closest("button.cell");
    if (!cell) return;
    const text = cellDetails(shown[Number(cell.dataset.i)]);
    details.textContent = text;
    cell.title = text;
  };
  const cellGrid = el("div", {class: "grid", onmouseover: show, onfocusin: show, onclick: show}, ...rows);
  const legend = el("p", {class: "legend"}, ...["queued", "running", "retrying", "lost", "dead", "succeeded"].map((s) => el("span", {}, el("span", {class: `swatch state-${s}`}), s)));
  return el("section", {class: "panel"}, el("h2", {text: "Stages × batches"}), legend, cellGrid, details);
}

function stageTotals(job) {
  const head = ["Stage", "Succeeded", "Running", "Retrying", "Dead", "Rows in", "Rows out", "Rejects", "Attempts", "Busy"];
  const rows = STAGES.filter((s) => job.stages[s]).map((s) => {
    const t = job.stages[s];
    return el("tr", {}, el("td", {text: s}), ...[t.succeeded, t.running, t.retrying, t.dead, t.rows_in, t.rows_out, t.rejects, t.attempts].map((n) => el("td", {class: "num", text: count(n)})), el("td", {class: "num", text: seconds(t.busy_seconds)}));
  });
  return el("section", {class: "panel"}, el("h2", {text: "Stage totals"}),
    el("table", {class: "totals"}, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {text: h})))), el("tbody", {}, ...rows)));
}

function summary(job) {
  const facts = [
    ["Status", badge(job.status)], ["Trigger", TRIGGERS[job.trigger] || job.trigger], ["Mode", job.mode ? `${modeOf(job)} (${job.mode_reason || ""})` : job.retries ? modeOf(job) : "not planned yet"],
    ["Created", when(job.created_at)], ["Started", when(job.started_at)], ["Finished", when(job.finished_at)],
    ["Duration", seconds(job.duration_seconds)], ["Rows in (source)", count(job.source_rows)],
    ["Published", job.curated_key ? `${job.curated_key} (${count(job.curated_rows)} reviews, ${size(job.curated_bytes)})` : "nothing yet"],
    ["Built on", job.base_version || "–"],
  ];
  const changes = job.changes ? Object.entries(job.changes).map(([k, v]) => el("li", {}, el("b", {text: count(v)}), ` ${k.replaceAll("_", " ")}`)) : [];
  return el("section", {class: "panel"},
    el("h1", {}, "Run ", el("code", {text: job.job_id})),
    el("dl", {class: "facts"}, ...facts.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {}, v)])),
    job.error ? el("p", {class: "run-error", text: `Error: ${job.error}`}) : null,
    el("h2", {text: "What the run changed"}),
    changes.length ? el("ul", {class: "changes"}, ...changes) : el("p", {class: "muted", text: "Known once it publishes."}));
}

function failedBatches(job, batches) {
  const failed = batches.filter((b) => b.status === "dead" || (b.status === "retrying" && b.error));
  if (!failed.length && job.status !== "failed") return null;
  const logs = el("div", {class: "logs"});
  const loadLogs = async () => {
    logs.replaceChildren(el("p", {class: "muted", text: "Reading the logs…"}));
    try {
      const found = (await api(`jobs/${encodeURIComponent(job.job_id)}/logs`, {params: {last: 100}})).components;
      const names = Object.keys(found);
      logs.replaceChildren(...(names.length ? names.map((c) => el("details", {open: true}, el("summary", {text: `${c} (${found[c].length} lines)`}), el("pre", {text: found[c].join("\n")})))
        : [el("p", {class: "muted", text: "No log line of this run on the API's host (read them in the log platform)."})]));
    } catch (err) {
      logs.replaceChildren(el("p", {class: "answer refused", text: explained(err)}));
    }
  };
  const retry = job.status === "failed" ? el("button", {type: "button", class: "danger", text: "Retry the failed batches", onclick: async () => {
    if (!confirm(`Retry run ${job.job_id}: clear its failed batches and re-run them and what follows?`)) return;
    try {
      const retried = await api(`jobs/${encodeURIComponent(job.job_id)}/retry`, {method: "POST", body: {}});
      answer(true, `202 Accepted: ${retried.cleared.length} batch(es) cleared, announced: ${retried.announced.join(", ") || "nothing yet"}.`);
      setTimeout(route, 300);
    } catch (err) {
      answer(false, explained(err));
    }
  }}) : null;
  return el("section", {class: "panel"}, el("h2", {text: "Failed batches"}),
    failed.length ? el("ul", {class: "failed"}, ...failed.map((b) => el("li", {}, badge(b.status), ` ${b.stage} batch ${b.batch} after ${b.attempts} attempt(s): `, el("code", {text: b.error || "no error recorded"})))) : null,
    el("div", {class: "action"}, retry, el("button", {type: "button", text: "Show the run's log lines", onclick: loadLogs})), logs);
}

async function runView(jobId) {
  let job, grid_;
  try {
    [job, grid_] = await Promise.all([api(`jobs/${encodeURIComponent(jobId)}`), api(`jobs/${encodeURIComponent(jobId)}/batches`)]);
  } catch (err) {
    return [failure(err)];
  }
  if (job.status === "queued" || job.status === "running") scheduleRefresh();
  return [summary(job), failedBatches(job, grid_.batches), grid(job, grid_.batches), stageTotals(job),
    grid_.truncated ? el("p", {class: "muted", text: "The grid shows the first batches only: the run has more than one answer holds."}) : null];
}

// ---------------------------------------------------------------------------- health

const DAILY_CHECKS = [
  ["The last run succeeded", "last_run"],
  ["The curated file is fresh", "curated_age"],
  ["Rejects are within bounds", "reject_share"],
];

function rollbackButton(version, served) {
  return el("button", {type: "button", class: "danger", text: `Roll back to ${version.version}`, onclick: async () => {
    if (!confirm(`Serve ${version.version} instead of ${served.version}?`)) return;
    try {
      const accepted = await api("curated/rollback", {method: "POST", body: {to: version.version}});
      answer(true, `202 Accepted: rollback to ${accepted.to} ${accepted.status}; the API serves it within seconds, the audit trail says how it ended.`);
    } catch (err) {
      answer(false, explained(err));
    }
  }});
}

function keptVersions(health) {
  // Every version the publisher keeps may be served again, each with its own guarded button.
  const rows = health.kept.map((v) => el("tr", {"data-version": v.version},
    el("td", {}, el("code", {text: v.version})), el("td", {class: "num", text: count(v.rows)}), el("td", {class: "num", text: size(v.bytes)}),
    el("td", {text: when(v.finished_at)}), el("td", {}, v.served ? badge("served") : rollbackButton(v, health.served))));
  return el("section", {class: "panel"}, el("h2", {text: "Kept versions"}),
    rows.length
      ? el("table", {class: "kept"}, el("thead", {}, el("tr", {}, ...["Version", "Reviews", "Size", "Published", ""].map((h) => el("th", {text: h})))), el("tbody", {}, ...rows))
      : el("p", {class: "muted", text: "No published version in the run history."}));
}

// Each stage's workers from their heartbeats; a stage without a live worker is said plainly: its work waits.
function workerList(workers) {
  return workers.stages.map((s) => {
    const stale = s.workers.filter((w) => !w.live).map((w) => `${w.worker} silent for ${seconds(w.age_seconds)}`);
    const live = s.workers.filter((w) => w.live).map((w) => w.worker);
    const said = s.live ? `${s.live} live (${live.join(", ")})` : "no live worker: its work waits";
    return el("li", {"data-stage": s.stage}, badge(s.live ? "ok" : "critical"), ` ${s.stage}: ${said}`,
      stale.length ? el("span", {class: "muted", text: ` · stale: ${stale.join(", ")}`}) : null);
  });
}

async function healthView() {
  let health, workers;
  try {
    [health, workers] = await Promise.all([api("console/health"), api("console/workers")]);
  } catch (err) {
    return [failure(err)];
  }
  const served = health.served;
  const rule = Object.fromEntries(health.rules.map((r) => [r.name, r]));
  const checks = [["/health answers and the API is ready", served.ready ? "ok" : "critical", served.ready ? "ready" : served.reasons.join("; ")],
    ...DAILY_CHECKS.map(([label, name]) => [label, rule[name].severity, rule[name].value])];
  const previous = health.previous;
  const servedSize = health.served_version ? `, ${size(health.served_version.bytes)}` : "";
  return [
    el("section", {class: "panel"}, el("h1", {text: "Health at a glance"}),
      health.size_warning ? el("p", {class: "answer refused size-warning", text: `Size: ${health.size_warning}`}) : null,
      el("div", {class: "cards"},
        el("div", {class: "card"}, el("h2", {text: "Served version"}), el("p", {class: "big", text: served.version || "none"}),
          el("p", {text: served.version ? `${count(served.rows)} reviews of ${count(served.products)} products${servedSize}, published ${seconds(served.age_seconds)} ago` : "nothing published yet"})),
        el("div", {class: "card"}, el("h2", {text: "Previous version"}), el("p", {class: "big", text: previous ? previous.version : "none"}),
          el("p", {text: previous ? `${count(previous.rows)} reviews, ${size(previous.bytes)}, published ${when(previous.finished_at)}` : "no earlier published run"})),
        el("div", {class: "card"}, el("h2", {text: "Components"}),
          el("ul", {class: "plain"}, el("li", {}, badge(served.redis ? "ok" : "critical"), " Redis"), el("li", {}, badge(served.s3 ? "ok" : "critical"), " S3"), el("li", {}, badge("ok"), " API"))),
        el("div", {class: "card"}, el("h2", {text: "Workers"}),
          el("ul", {class: "plain workers"}, ...workerList(workers)),
          el("p", {class: "muted", text: `Stale: no heartbeat for ${seconds(workers.stale_after_seconds)}.`})))),
    keptVersions(health),
    el("section", {class: "panel"}, el("h2", {text: "Daily checks"}),
      el("ul", {class: "checks"}, ...checks.map(([label, severity, value]) => el("li", {"data-check": label}, badge(severity), ` ${label}: `, el("span", {class: "muted", text: value}))))),
    el("section", {class: "panel"}, el("h2", {text: "Alert rules"}),
      el("table", {class: "rules"}, el("thead", {}, el("tr", {}, ...["State", "Rule", "Value", "Alerts when"].map((h) => el("th", {text: h})))),
        el("tbody", {}, ...health.rules.map((r) => el("tr", {"data-rule": r.name}, el("td", {}, badge(r.severity)), el("td", {text: r.name}), el("td", {text: r.value}), el("td", {class: "muted", text: r.threshold}))))),
      el("p", {class: "muted", text: `Evaluated by reviews doctor only: ${health.doctor_only.join(", ")}.`})),
  ];
}

// ---------------------------------------------------------------------------- audit

async function auditView() {
  let actions;
  try {
    actions = (await api("audit", {params: {limit: 200}})).actions;
  } catch (err) {
    return [failure(err)];
  }
  return [el("section", {class: "panel"}, el("h1", {text: "Audit trail"}),
    actions.length
      ? el("table", {class: "audit"}, el("thead", {}, el("tr", {}, ...["When", "Who", "Via", "Action", "Target", "Outcome"].map((h) => el("th", {text: h})))),
          el("tbody", {}, ...actions.map((a) => el("tr", {}, el("td", {text: when(a.at)}), el("td", {text: a.actor}), el("td", {text: a.via}), el("td", {text: a.action}), el("td", {}, el("code", {text: a.target || "–"})), el("td", {text: a.outcome})))))
      : el("p", {class: "muted", text: "No operator action yet."}))];
}

// ---------------------------------------------------------------------------- routing

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => route({quiet: true}), REFRESH_MS);
}

let routing = 0;
async function route({quiet = false} = {}) {
  clearTimeout(refreshTimer);
  const mine = ++routing;
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  if (!quiet) main.replaceChildren(el("p", {class: "muted", text: "Loading…"}));
  let nodes;
  if (!token()) nodes = [el("section", {class: "panel error"}, el("h2", {text: "Operator token needed"}),
    el("p", {text: "The run history and the actions are for operators: enter the operator token (API_TOKEN) above. It is kept in this tab only."}))];
  else if (path.startsWith("/run/")) nodes = await runView(decodeURIComponent(path.slice(5)));
  else if (path === "/health") nodes = await healthView();
  else if (path === "/audit") nodes = await auditView();
  else nodes = await runsView(params);
  if (mine !== routing) return; // a newer route started meanwhile: its view wins
  const open = new Set([...main.querySelectorAll("details[open] summary")].map((s) => s.textContent));
  main.replaceChildren(...nodes.filter(Boolean));
  for (const s of main.querySelectorAll("details summary")) if (open.has(s.textContent)) s.parentElement.open = true;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("current", a.getAttribute("href") === `#${path === "/" ? "/" : path.split("/").slice(0, 2).join("/")}`);
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token-input");
  sessionStorage.setItem(TOKEN_KEY, input.value);
  input.value = "";
  input.placeholder = "token set for this tab";
  route();
});
document.getElementById("token-forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("token-input").placeholder = "API_TOKEN";
  route();
});
if (token()) document.getElementById("token-input").placeholder = "token set for this tab";
window.addEventListener("hashchange", () => route());
route();
