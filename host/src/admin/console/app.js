// weir web console: plain DOM and SVG over the public /v1 admin API.
// Every value from the server is set as text (never as HTML).
"use strict";

const TOKEN_KEY = "weir.admin.token";
const REFRESH_MS = 5000;
const WINDOW_MS = 15 * 60 * 1000;
const COUNTERS = [
  ["records_in", "in"],
  ["records_out", "out"],
  ["records_filtered", "filtered"],
  ["records_dead_lettered", "dlq"],
];

const $ = (id) => document.getElementById(id);
let timer = null;
let pipelineNames = [];
let dlqKinds = new Set();

/** An element with attributes (`class`, `data-*`, properties) and children (nodes or text). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-") || key === "title" || key === "type") node.setAttribute(key, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

/** An API error: the HTTP status and the server's `error` text, unchanged. */
class ApiError extends Error {
  constructor(status, statusText, message) {
    super(`${status} ${statusText}: ${message}`);
    this.status = status;
  }
}

async function api(method, path, body, contentType) {
  // Without a token the API refuses state changes that lack this header
  // (a cross-site page cannot send it without a preflight the API never grants).
  const headers = { "X-Weir-Request": "console" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = contentType || "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : contentType ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = text;
  }
  if (response.status === 401) {
    needToken("The token was refused (401); enter it again.");
    throw new ApiError(401, response.statusText, (data && data.error) || text);
  }
  if (!response.ok) throw new ApiError(response.status, response.statusText, (data && data.error) || text);
  return { status: response.status, statusText: response.statusText, data };
}

function showBanner(message) {
  const banner = $("banner");
  banner.textContent = message || "";
  banner.hidden = !message;
}

// ---- health and token ----------------------------------------------------

async function probes() {
  try {
    const health = await (await fetch("/healthz")).json();
    $("health").textContent = `process ${health.status}`;
    $("health").className = "badge ok";
    const readyResponse = await fetch("/readyz");
    const ready = await readyResponse.json();
    const failing = Object.entries(ready.pipelines || {})
      .filter(([, r]) => !(r.running && r.partitions_assigned && r.broker_reachable))
      .map(([name]) => name);
    $("ready").textContent = ready.ready ? "ready" : `not ready: ${failing.join(", ") || "no pipelines"}`;
    $("ready").className = ready.ready ? "badge ok" : "badge warn";
    return health;
  } catch (error) {
    $("health").textContent = "unreachable";
    $("health").className = "badge bad";
    return null;
  }
}

function needToken(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(timer);
  timer = null;
  $("main").hidden = true;
  $("logout").hidden = true;
  $("auth").hidden = false;
  $("auth-message").textContent = message || "";
  $("token-input").focus();
}

function openConsole() {
  $("auth").hidden = true;
  $("main").hidden = false;
  $("logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  refreshAll();
  loadPlugins();
  if (!timer) timer = setInterval(refreshAll, REFRESH_MS);
}

// ---- pipelines -----------------------------------------------------------

function formatRate(value) {
  if (value === undefined || value === null) return "–";
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** A sparkline of `values` (`[at_ms, value]`) over the last 15 minutes. */
function sparkline(values, label) {
  const width = 240, height = 44, pad = 2;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "spark", role: "img", "aria-label": label });
  chart.append(svg("rect", { x: 0, y: 0, width, height, class: "spark-bg" }));
  if (values.length === 0) return chart;
  const now = values[values.length - 1][0];
  const max = Math.max(...values.map((v) => v[1]), 1e-9);
  const x = (at) => pad + ((at - (now - WINDOW_MS)) / WINDOW_MS) * (width - 2 * pad);
  const y = (v) => height - pad - (v / max) * (height - 2 * pad);
  const points = values.map(([at, v]) => `${x(at).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  if (values.length > 1) {
    const area = `${x(values[0][0]).toFixed(1)},${height - pad} ${points} ${x(now).toFixed(1)},${height - pad}`;
    chart.append(svg("polygon", { points: area, class: "spark-area" }));
  }
  chart.append(svg("polyline", { points, class: "spark-line" }));
  const [lastAt, lastValue] = values[values.length - 1];
  chart.append(svg("circle", { cx: x(lastAt).toFixed(1), cy: y(lastValue).toFixed(1), r: 2, class: "spark-dot" }));
  const title = svg("title", {});
  title.textContent = `${label}: max ${formatRate(max)} over the last ${Math.round((now - values[0][0]) / 60000)} min`;
  chart.append(title);
  return chart;
}

function stateText(state) {
  return state.reason ? `${state.state}: ${state.reason}` : state.state;
}

async function control(name, action) {
  try {
    await api("POST", `/v1/pipelines/${encodeURIComponent(name)}/${action}`);
    showBanner("");
    setTimeout(refreshAll, 300);
  } catch (error) {
    showBanner(`${action} ${name}: ${error.message}`);
  }
}

function pipelineCard(status, rates) {
  const s = status.status;
  const points = rates.points || [];
  const last = points[points.length - 1];
  const paused = s.state.state === "paused";
  const rateCells = COUNTERS.map(([key, label]) => {
    const series = points.map((p) => [p.at_ms, p[`${key}_per_s`]]);
    const current = last ? last[`${key}_per_s`] : undefined;
    return el("div", { class: "rate", "data-counter": key, "data-value": current === undefined ? "" : String(current) },
      el("div", { class: "rate-label" }, `${label} `, el("span", { class: "rate-value" }, formatRate(current)), " /s"),
      sparkline(series, `${status.name} ${label} per second`),
      el("div", { class: "rate-total" }, `total ${s[key].toLocaleString()}`));
  });
  const partitions = el("table", { class: "partitions" },
    el("thead", {}, el("tr", {}, el("th", {}, "topic"), el("th", {}, "partition"), el("th", {}, "committed"), el("th", {}, "high watermark"), el("th", {}, "lag"))),
    el("tbody", {}, (s.partitions || []).map((p) => el("tr", {},
      el("td", {}, p.topic), el("td", {}, p.partition), el("td", {}, p.committed ?? "–"),
      el("td", {}, p.high_watermark ?? "–"), el("td", { class: p.lag > 0 ? "lag" : "" }, p.lag ?? "–")))));
  const callKeys = new Set(points.flatMap((p) => Object.keys(p.call_ms || {})));
  for (const [operator, version] of Object.entries(s.plugin_versions || {})) callKeys.add(`${operator}@${version}`);
  const calls = el("table", { class: "calls" },
    el("thead", {}, el("tr", {}, el("th", {}, "operator@version"), el("th", {}, "mean call (last 5 s)"), el("th", {}, "last 15 min"))),
    el("tbody", {}, [...callKeys].sort().map((key) => {
      const series = points.filter((p) => p.call_ms && key in p.call_ms).map((p) => [p.at_ms, p.call_ms[key]]);
      const current = last && last.call_ms ? last.call_ms[key] : undefined;
      return el("tr", { "data-call": key }, el("td", {}, key),
        el("td", {}, current === undefined ? "–" : `${current.toFixed(3)} ms`), el("td", {}, sparkline(series, `${key} ms per call`)));
    })));
  return el("article", { class: "pipeline", "data-pipeline": status.name },
    el("div", { class: "pipeline-head" },
      el("h3", {}, status.name),
      el("span", { class: `badge state-${s.state.state}` , "data-state": s.state.state }, stateText(s.state)),
      el("span", { class: "muted" }, `${status.operators.join(" → ")}  ·  DLQ ${status.dead_letter_topic}`),
      el("span", { class: "spacer" }),
      el("button", { type: "button", class: "pause", disabled: paused, onclick: () => control(status.name, "pause") }, "pause"),
      el("button", { type: "button", class: "resume", disabled: !paused, onclick: () => control(status.name, "resume") }, "resume")),
    el("div", { class: "rates" }, rateCells),
    el("div", { class: "details" }, el("div", {}, el("h4", {}, "partitions"), partitions), el("div", {}, el("h4", {}, "operator call time"), calls)));
}

async function refreshAll() {
  try {
    const list = (await api("GET", "/v1/pipelines")).data;
    const cards = await Promise.all(list.map(async (p) => {
      const name = encodeURIComponent(p.name);
      const [status, rates] = await Promise.all([api("GET", `/v1/pipelines/${name}`), api("GET", `/v1/pipelines/${name}/rates`)]);
      return { status: status.data, rates: rates.data };
    }));
    $("pipelines").replaceChildren(...cards.map((c) => pipelineCard(c.status, c.rates)));
    if (cards.length === 0) $("pipelines").append(el("p", { class: "muted" }, "no pipelines"));
    updateDlqControls(cards.map((c) => c.status));
    showBanner("");
    probes();
  } catch (error) {
    if (error.status !== 401) showBanner(`refreshing pipelines: ${error.message}`);
  }
}

// ---- dead letters --------------------------------------------------------

function updateDlqControls(statuses) {
  const select = $("dlq-pipeline");
  const names = statuses.map((s) => s.name);
  const first = pipelineNames.length === 0;
  if (names.join("\n") !== pipelineNames.join("\n")) {
    const selected = select.value;
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(selected)) select.value = selected;
    pipelineNames = names;
  }
  const current = statuses.find((s) => s.name === select.value);
  const kinds = Object.keys((current && current.status.dead_letters_by_kind) || {});
  const kindSelect = $("dlq-kind");
  for (const kind of kinds) {
    if (!dlqKinds.has(kind)) {
      dlqKinds.add(kind);
      kindSelect.append(el("option", { value: kind }, kind));
    }
  }
  if (first && names.length > 0) loadDeadLetters();
}

function shorten(text, n) {
  return text.length > n ? `${text.slice(0, n)}…` : text;
}

function deadLetterRow(letter) {
  const h = letter.headers || {};
  const when = letter.timestamp_ms ? new Date(letter.timestamp_ms).toISOString().replace("T", " ").slice(0, 19) : "";
  const operator = h["weir.error.operator"] ? `${h["weir.error.operator"]}${h["weir.error.plugin.version"] ? "@" + h["weir.error.plugin.version"] : ""}` : "";
  const source = `${h["weir.source.topic"] || "?"}/${h["weir.source.partition"] || "?"}@${h["weir.source.offset"] || "?"}`;
  const value = letter.value ?? "";
  const headers = Object.entries(h).map(([k, v]) => el("div", {}, el("b", {}, k), ": ", v));
  return el("tr", { "data-offset": String(letter.offset) },
    el("td", { class: "nowrap" }, when),
    el("td", { class: "kind" }, h["weir.error.kind"] || ""),
    el("td", {}, operator),
    el("td", { class: "nowrap" }, source),
    el("td", {}, h["weir.attempts"] || ""),
    el("td", { class: "message" }, h["weir.error.message"] || ""),
    el("td", { class: "value" }, el("span", { class: "badge" }, letter.value_encoding === "hex" ? "hex" : "text"), " ",
      el("code", { title: value }, shorten(value, 160))),
    el("td", {}, el("details", {}, el("summary", {}, `${Object.keys(h).length} headers`), headers)));
}

async function loadDeadLetters(event) {
  if (event) event.preventDefault();
  const name = $("dlq-pipeline").value;
  if (!name) return;
  const params = new URLSearchParams({ limit: $("dlq-limit").value || "50" });
  if ($("dlq-kind").value) params.set("kind", $("dlq-kind").value);
  $("dlq-status").textContent = "reading…";
  try {
    const letters = (await api("GET", `/v1/pipelines/${encodeURIComponent(name)}/dlq?${params}`)).data;
    letters.reverse(); // newest first
    $("dlq-table").tBodies[0].replaceChildren(...letters.map(deadLetterRow));
    $("dlq-status").textContent = `${letters.length} dead letter(s), newest first`;
  } catch (error) {
    $("dlq-status").textContent = error.message;
  }
}

async function redrive() {
  const name = $("dlq-pipeline").value;
  if (!name || !confirm(`Replay the dead letters of ${name} through its current chain?`)) return;
  $("dlq-status").textContent = "redriving…";
  try {
    const report = (await api("POST", `/v1/pipelines/${encodeURIComponent(name)}/dlq/redrive`, {})).data;
    $("dlq-status").textContent = `redrive read ${report.read}, delivered ${report.delivered}, filtered ${report.filtered}, dead-lettered again ${report.dead_lettered}`;
  } catch (error) {
    $("dlq-status").textContent = `redrive: ${error.message}`;
  }
}

// ---- plugins -------------------------------------------------------------

function formatBytes(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

async function rollback(name, version) {
  if (!confirm(`Make ${name} v${version} live in every pipeline using it?`)) return;
  try {
    const outcome = (await api("POST", `/v1/plugins/${encodeURIComponent(name)}/rollback`, { version })).data;
    showBanner("");
    $("upload-result").className = "ok";
    $("upload-result").textContent = `rollback: ${name} v${outcome.version ?? version} live`;
  } catch (error) {
    showBanner(`rollback ${name}: ${error.message}`);
  }
  loadPlugins();
  refreshAll();
}

/** The last deploy of a plugin (it goes on when its request is gone): state and, on hover, the error. */
function deployBadge(deploy) {
  if (!deploy) return null;
  const tone = { live: "ok", unchanged: "ok", reverted: "bad", refused: "bad" }[deploy.state] || "warn";
  const version = deploy.version ? ` v${deploy.version}` : "";
  return el("div", {}, el("span", { class: `badge ${tone}`, title: deploy.error || deploy.finished_at || "in progress", "data-deploy": deploy.state },
    `last ${deploy.action}${version}: ${deploy.state}`));
}

async function loadPlugins() {
  try {
    const plugins = (await api("GET", "/v1/plugins")).data;
    const rows = [];
    for (const plugin of plugins) {
      const versions = [...plugin.versions].reverse();
      versions.forEach((v, i) => {
        const live = v.version === plugin.live;
        rows.push(el("tr", { class: live ? "live" : "", "data-plugin": plugin.name, "data-version": String(v.version) },
          el("td", {}, i === 0 ? plugin.name : "", i === 0 ? deployBadge(plugin.last_deploy) : null),
          el("td", {}, `v${v.version}`, live ? el("span", { class: "badge ok" }, "live") : null),
          el("td", { title: v.sha256 }, el("code", {}, v.sha256.slice(0, 12))),
          el("td", {}, v.kind),
          el("td", {}, formatBytes(v.size_bytes)),
          el("td", { class: "nowrap" }, v.uploaded_at),
          el("td", {}, v.origin),
          el("td", {}, live ? plugin.used_by.join(", ") : ""),
          el("td", {}, live ? null : el("button", { type: "button", onclick: () => rollback(plugin.name, v.version) }, "make live"))));
      });
    }
    $("plugins-table").tBodies[0].replaceChildren(...rows);
    $("plugin-names").replaceChildren(...plugins.map((p) => el("option", { value: p.name })));
  } catch (error) {
    if (error.status !== 401) showBanner(`plugins: ${error.message}`);
  }
}

async function upload(event) {
  event.preventDefault();
  const name = $("upload-name").value.trim();
  const file = $("upload-file").files[0];
  const result = $("upload-result");
  if (!name || !file) return;
  result.className = "";
  result.textContent = `uploading ${file.name} (${formatBytes(file.size)})…`;
  const query = $("upload-mode").value === "shadow" ? "?mode=shadow" : "";
  try {
    const answer = await api("PUT", `/v1/plugins/${encodeURIComponent(name)}${query}`, file, "application/wasm");
    result.className = "ok";
    result.textContent = `${answer.status} ${answer.statusText}\n${JSON.stringify(answer.data, null, 2)}`;
  } catch (error) {
    result.className = "error";
    result.textContent = error.message;
  }
  loadPlugins();
  refreshAll();
}

// ---- start ---------------------------------------------------------------

async function start() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value);
    $("token-input").value = "";
    openConsole();
  });
  $("logout").addEventListener("click", () => needToken(""));
  $("dlq-form").addEventListener("submit", loadDeadLetters);
  $("dlq-pipeline").addEventListener("change", () => loadDeadLetters());
  $("dlq-kind").addEventListener("change", () => loadDeadLetters());
  $("dlq-redrive").addEventListener("click", redrive);
  $("upload-form").addEventListener("submit", upload);
  await boot();
}

/** Without a token (when one is needed) only the probes are shown. */
async function boot() {
  const health = await probes();
  if (health && health.auth && !sessionStorage.getItem(TOKEN_KEY)) needToken("");
  else if (health) openConsole();
  else setTimeout(boot, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", start);
