// obsd dashboard: reads /v1/stats/* with the admin token kept in sessionStorage (this tab only).
// Data is always written with textContent, never as HTML: error messages and paths come from browsers.
const TOKEN_KEY = "obsd.token";
const REFRESH_MS = 30000;
const LIVE_MS = 5000;
const $ = (sel) => document.querySelector(sel);
const fmt = (n) => (n == null ? "–" : Number(n).toLocaleString("en-US"));
const state = { project: null, since: "24h", filters: [], compare: false, timer: 0, liveTimer: 0, liveSeq: 0, seq: 0,
  by: { utm: "utm_campaign", locations: "country" } }; // the tab each tabbed card shows
const pct = (v) => (v == null ? "–" : `${Number(v).toFixed(1)}%`);
const secs = (v) => (v == null ? "–" : v >= 60 ? `${Math.floor(v / 60)}m ${String(Math.round(v % 60)).padStart(2, "0")}s` : `${Math.round(v)}s`);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, String(v));
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

// The token may arrive once in the URL fragment (#token=…): fragments are never sent to the server or
// logged; it moves to sessionStorage and the address bar is cleaned at once.
function takeTokenFromFragment() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

class Unauthorized extends Error {}

async function api(path, params = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new Unauthorized("enter the admin token");
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of [].concat(v)) if (x != null) q.append(k, x);
  const qs = q.toString();
  const r = await fetch(path + (qs ? "?" + qs : ""), { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  const body = await r.json().catch(() => ({}));
  if (r.status === 401) throw new Unauthorized(body.reason || "wrong admin token");
  if (!r.ok) throw new Error(body.reason || `HTTP ${r.status}`);
  return body;
}

function showLogin(message) {
  $("#main").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#token").focus();
}

function showProblem(message) {
  const p = $("#problem");
  p.hidden = !message;
  p.textContent = message || "";
}

function bucketLabel(iso, bucket) {
  const d = new Date(iso);
  const date = d.toISOString().slice(5, 10);
  return bucket === "hour" ? `${date} ${d.toISOString().slice(11, 16)}` : date;
}

function renderChart(overview) {
  const box = $("#chart");
  box.replaceChildren();
  const series = overview.series;
  const W = Math.max(box.clientWidth, 300), H = box.clientHeight || 220;
  const pad = { l: 44, r: 10, t: 10, b: 22 };
  const prev = overview.compare ? overview.compare.series : null;
  const max = Math.max(1, ...series.map((r) => r.pageviews), ...(prev || []).map((r) => r.pageviews));
  const n = series.length;
  const x = (i) => pad.l + (n <= 1 ? 0 : (i * (W - pad.l - pad.r)) / (n - 1));
  const y = (v) => H - pad.b - (v * (H - pad.t - pad.b)) / max;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Visitors and pageviews over time",
    "data-buckets": n, "data-max": max });
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    root.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: y(v), y2: y(v), stroke: "#e5e7eb" }));
    const t = svg("text", { x: pad.l - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7280",
      class: frac === 1 ? "ymax" : "" });
    t.textContent = fmt(v);
    root.append(t);
  }
  const pts = (key) => series.map((r, i) => `${x(i).toFixed(1)},${y(r[key]).toFixed(1)}`).join(" ");
  if (n) {
    root.append(svg("polygon", { points: `${x(0)},${y(0)} ${pts("pageviews")} ${x(n - 1)},${y(0)}`,
      fill: "#3b6fd8", "fill-opacity": 0.15 }));
    root.append(svg("polyline", { points: pts("pageviews"), fill: "none", stroke: "#3b6fd8", "stroke-width": 2,
      class: "pageviews" }));
    root.append(svg("polyline", { points: pts("visitors"), fill: "none", stroke: "#16a34a", "stroke-width": 2,
      class: "visitors" }));
    if (prev && prev.length) {
      // The earlier period, bucket by bucket under the current one (the same length, so the same count).
      const p = prev.slice(0, n).map((r, i) => `${x(i).toFixed(1)},${y(r.pageviews).toFixed(1)}`).join(" ");
      root.append(svg("polyline", { points: p, fill: "none", stroke: "#9ca3af", "stroke-width": 2,
        "stroke-dasharray": "5 4", class: "previous" }));
    }
    for (const i of [0, Math.floor((n - 1) / 2), n - 1]) {
      const t = svg("text", { x: x(i), y: H - 6, "text-anchor": i === 0 ? "start" : i === n - 1 ? "end" : "middle",
        "font-size": 11, fill: "#6b7280" });
      t.textContent = bucketLabel(series[i].bucket, overview.bucket);
      root.append(t);
    }
  }
  const cursor = svg("line", { y1: pad.t, y2: H - pad.b, stroke: "#1d2330", "stroke-opacity": 0, class: "cursor" });
  root.append(cursor);
  const tip = el("div", { class: "tip", hidden: true });
  root.addEventListener("mousemove", (ev) => {
    if (!n) return;
    const rect = root.getBoundingClientRect();
    const px = ((ev.clientX - rect.left) * W) / rect.width;
    const i = Math.min(n - 1, Math.max(0, Math.round(((px - pad.l) * (n - 1)) / (W - pad.l - pad.r))));
    const r = series[i];
    cursor.setAttribute("x1", x(i));
    cursor.setAttribute("x2", x(i));
    cursor.setAttribute("stroke-opacity", 0.3);
    tip.hidden = false;
    tip.textContent = `${bucketLabel(r.bucket, overview.bucket)} · ${fmt(r.pageviews)} pageviews · ${fmt(r.visitors)} visitors`;
    tip.dataset.bucket = r.bucket;
    tip.style.left = `${Math.min((x(i) * rect.width) / W + 8, rect.width - 260)}px`;
  });
  root.addEventListener("mouseleave", () => { tip.hidden = true; cursor.setAttribute("stroke-opacity", 0); });
  box.append(root, tip);
}

function filterRow(tr, key, value) {
  if (value == null) return tr;
  tr.dataset.filter = `${key}=${value}`;
  tr.classList.add("filterable");
  tr.title = `Filter the page by ${key} = ${value}`;
  tr.addEventListener("click", (ev) => {
    if (ev.target.closest("details")) return;
    addFilter(`${key}=${value}`);
  });
  return tr;
}

function renderTable(id, rows, keyCol, labelOf = (r) => r[keyCol], filterKey = null) {
  const body = $(`#${id} tbody`);
  body.replaceChildren();
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { class: "empty", colSpan: 3 }, "nothing in this range")));
    return;
  }
  const max = Math.max(...rows.map((r) => r.pageviews), 1);
  for (const r of rows) {
    const bar = el("span", { class: "bar" });
    bar.style.width = `${(100 * r.pageviews) / max}%`;
    body.append(filterRow(el("tr", { "data-key": r[keyCol] },
      el("td", { title: labelOf(r) }, bar, el("span", { class: "txt" }, labelOf(r))),
      el("td", { class: "num", "data-col": "visitors" }, fmt(r.visitors)),
      el("td", { class: "num", "data-col": "pageviews" }, fmt(r.pageviews))), filterKey, filterKey && r[keyCol]));
  }
}

function renderDevices(rep) {
  const box = $("#devices");
  box.replaceChildren();
  for (const [dim, title] of [["device", "Device"], ["browser", "Browser"], ["os", "Operating system"]]) {
    const rows = rep.rows.filter((r) => r.dimension === dim);
    const table = el("table", { "data-dimension": dim });
    const body = el("tbody");
    for (const r of rows) {
      const bar = el("span", { class: "bar" });
      bar.style.width = `${100 * r.share}%`;
      body.append(filterRow(el("tr", { "data-key": r.value },
        el("td", {}, bar, el("span", { class: "txt" }, r.value)),
        el("td", { class: "num", "data-col": "visitors" }, fmt(r.visitors)),
        el("td", { class: "num", "data-col": "share" }, `${(100 * r.share).toFixed(1)}%`)), dim,
        r.value === "(unknown)" ? null : r.value));
    }
    if (!rows.length) body.append(el("tr", {}, el("td", { class: "empty" }, "nothing in this range")));
    table.append(body);
    box.append(el("div", { class: "dim" }, el("h3", {}, title), table));
  }
}

export function formatVital(metric, v) {
  if (v == null) return "–";
  if (metric === "CLS") return v.toFixed(2);
  return v >= 10000 ? `${(v / 1000).toFixed(1)} s` : `${fmt(Math.round(v))} ms`;
}

function renderVitals(rep) {
  const box = $("#vitals");
  box.replaceChildren();
  if (!rep.rows.length) box.append(el("p", { class: "empty" }, "no Web Vitals in this range"));
  for (const r of rep.rows) {
    const shares = el("div", { class: "shares", title: "good / needs improvement / poor" });
    for (const [cls, v] of [["good", r.good], ["ni", r.needs_improvement], ["poor", r.poor]]) {
      const s = el("span", { class: cls, "data-share": v ?? "" });
      s.style.width = `${100 * (v || 0)}%`;
      shares.append(s);
    }
    const pct = (v) => (v == null ? "–" : `${Math.round(100 * v)}%`);
    box.append(el("div", { class: `vital ${r.rating}`, "data-metric": r.metric, "data-rating": r.rating, "data-p75": r.p75 },
      el("div", { class: "name" }, r.metric),
      el("div", { class: "p75" }, formatVital(r.metric, r.p75)),
      shares,
      el("div", { class: "n" }, `${fmt(r.samples)} samples · ${pct(r.good)} good · ${pct(r.poor)} poor`)));
  }
}

function renderErrors(rep) {
  const body = $("#errors tbody");
  body.replaceChildren();
  if (!rep.rows.length) body.append(el("tr", {}, el("td", { class: "empty", colSpan: 6 }, "no errors in this range")));
  for (const r of rep.rows) {
    const details = el("details", {}, el("summary", {}, r.message || "(no message)"),
      el("pre", {}, [r.path && `page: ${r.path}`, r.source && `source: ${r.source}`, r.stack].filter(Boolean).join("\n")));
    body.append(el("tr", { "data-key": r.fingerprint },
      el("td", {}, details),
      el("td", { "data-col": "protocols" }, (r.protocols || []).join(", ")),
      el("td", { "data-col": "releases" }, (r.releases || []).slice(-3).join(", ")),
      el("td", { class: "num", "data-col": "events" }, fmt(r.events)),
      el("td", { class: "num", "data-col": "sessions" }, fmt(r.sessions)),
      el("td", { class: "num", "data-col": "last_seen", title: r.last_seen }, r.last_seen.slice(5, 16).replace("T", " "))));
  }
}

function renderLive(rep) {
  const list = $("#live");
  list.replaceChildren();
  if (!rep.rows.length) list.append(el("li", { class: "empty" }, "no events in the last hour"));
  for (const r of rep.rows) {
    list.append(el("li", { "data-type": r.type, title: `${r.ts} ${r.path}` },
      el("span", { class: "t" }, r.ts.slice(11, 19)),
      el("span", { class: `type ${r.type}` }, r.type),
      r.type === "pageview" ? r.path : r.detail || r.path));
  }
}

// The page's range, filters and comparison, then `extra` (which may set compare: undefined to leave it out).
function params(extra = {}) {
  return { project: state.project, since: state.since, filter: state.filters,
    ...(state.compare ? { compare: "previous" } : {}), ...extra };
}

// A table of visit rows (entry/exit pages, sources, campaigns, locations): a bar for visits, click to filter.
function renderVisits(id, rows, cells, filterOf) {
  const body = $(`#${id} tbody`);
  body.replaceChildren();
  const cols = $(`#${id} thead tr`).children.length;
  if (!rows.length) {
    body.append(el("tr", {}, el("td", { class: "empty", colSpan: cols }, "nothing in this range")));
    return;
  }
  const max = Math.max(...rows.map((r) => r.visits), 1);
  for (const r of rows) {
    const [label, ...rest] = cells(r);
    const bar = el("span", { class: "bar" });
    bar.style.width = `${(100 * r.visits) / max}%`;
    const [key, value] = filterOf(r);
    body.append(filterRow(el("tr", { "data-key": label },
      el("td", { title: label }, bar, el("span", { class: "txt" }, label)),
      ...rest.map(([col, text]) => el("td", { class: col === "channel" || col === "value" ? "" : "num",
        "data-col": col }, text))), key, value));
  }
}

function renderFunnel(rep) {
  const box = $("#funnel");
  box.replaceChildren();
  $("#funnel-name").textContent = rep.rows.length ? rep.rows.map((r) => r.name).join(" → ") : "";
  if (!rep.rows.length) {
    box.append(el("p", { class: "empty" }, (rep.notes || [])[0] || "no funnel in this range"));
    return;
  }
  const first = Math.max(rep.rows[0].visits, 1);
  for (const r of rep.rows) {
    const bar = el("span", { class: "fbar" });
    bar.style.width = `${(100 * r.visits) / first}%`;
    box.append(el("div", { class: "step", "data-step": r.step, "data-visits": r.visits },
      el("div", { class: "label" }, `${r.step}. ${r.name}`), el("div", { class: "track" }, bar),
      el("div", { class: "n" }, `${fmt(r.visits)} visits · ${r.of_first_step}% · ${fmt(r.dropoff)} dropped`)));
  }
}

function renderReleases(rep) {
  const body = $("#releases tbody");
  body.replaceChildren();
  if (!rep.rows.length) body.append(el("tr", {}, el("td", { class: "empty", colSpan: 6 }, "no releases in this range")));
  for (const r of rep.rows) {
    const share = (v) => (v == null ? "–" : `${(100 * v).toFixed(1)}%`);
    body.append(filterRow(el("tr", { "data-key": r.release },
      el("td", {}, r.release || "(none)"), el("td", {}, r.environment),
      el("td", { class: "num", "data-col": "sessions" }, fmt(r.sessions)),
      el("td", { class: "num", "data-col": "crash_free" }, share(r.crash_free)),
      el("td", { class: "num", "data-col": "unhandled_free" }, share(r.unhandled_free)),
      el("td", { class: "num", "data-col": "errors" }, fmt(r.errors))), "release", r.release || null));
  }
}

function renderKpis(overview) {
  for (const node of document.querySelectorAll("[data-kpi]")) {
    const k = node.dataset.kpi;
    const v = overview.summary[k];
    node.textContent = node.dataset.unit === "s" ? secs(v) : node.dataset.unit === "%" ? pct(v) : fmt(v);
  }
  for (const node of document.querySelectorAll("[data-change]")) {
    const c = overview.change ? overview.change[node.dataset.change] : undefined;
    node.textContent = c == null ? (overview.change ? "new" : "") : `${c > 0 ? "▲" : c < 0 ? "▼" : "="} ${Math.abs(c)}%`;
    const better = node.dataset.lowerBetter ? c < 0 : c > 0;
    node.className = `change ${c == null || c === 0 ? "" : better ? "up" : "down"}`;
    node.title = overview.compare ? `previous: ${overview.compare.summary[node.dataset.change]}` : "";
  }
}

function renderFilters() {
  const box = $("#filters");
  box.replaceChildren();
  box.hidden = !state.filters.length;
  for (const f of state.filters) {
    const chip = el("button", { type: "button", class: "chip", "data-filter": f, title: "Remove this filter" }, f, " ×");
    chip.addEventListener("click", () => { state.filters = state.filters.filter((x) => x !== f); syncUrl(); refresh(); });
    box.append(chip);
  }
}

function addFilter(f) {
  const key = f.split(/!=|=|~/)[0];
  state.filters = [...state.filters.filter((x) => x.split(/!=|=|~/)[0] !== key), f];
  syncUrl();
  refresh();
}

// The report as CSV, from the API with the page's range and filters: built here, saved by the browser.
async function downloadCsv(report) {
  const rep = await api(`/v1/stats/${report}`, params({ compare: undefined, limit: 1000,
    ...(state.by[report] ? { by: state.by[report] } : {}) }));
  const cell = (v) => {
    const t = v == null ? "" : Array.isArray(v) ? v.join(" ") : String(v);
    return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
  };
  const lines = [rep.columns.join(","), ...rep.rows.map((r) => rep.columns.map((c) => cell(r[c])).join(","))];
  const url = URL.createObjectURL(new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" }));
  const a = el("a", { href: url, download: `${state.project}-${report}-${state.since}.csv` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function refresh() {
  clearTimeout(state.timer);
  const seq = ++state.seq;
  renderFilters();
  try {
    const names = ["overview", "pages", "referrers", "devices", "vitals", "errors", "entry-pages", "exit-pages",
      "sources", "utm", "locations", "goals", "funnel", "releases"];
    const limits = { pages: 10, referrers: 10, devices: 5, errors: 10, "entry-pages": 10, "exit-pages": 10, sources: 10,
      utm: 10, locations: 10, releases: 10 };
    const own = (n) => (n === "releases" ? { filter: state.filters.filter((f) => /^(release|environment)[!=~]/.test(f)) }
      : state.by[n] ? { by: state.by[n] } : {});
    const docs = await Promise.all(names.map((n) => api(`/v1/stats/${n}`, params({
      ...(limits[n] ? { limit: limits[n] } : {}), ...(n === "overview" ? {} : { compare: undefined }), ...own(n) }))));
    if (seq !== state.seq) return; // a newer refresh (another filter, range or project) is under way
    const r = Object.fromEntries(names.map((n, i) => [n, docs[i]]));
    renderKpis(r.overview);
    renderChart(r.overview);
    renderTable("pages", r.pages.rows, "path", undefined, "page");
    renderTable("referrers", r.referrers.rows, "referrer", undefined, "referrer");
    renderDevices(r.devices);
    renderVitals(r.vitals);
    renderErrors(r.errors);
    renderVisits("entry", r["entry-pages"].rows, (x) => [x.path, ["visits", fmt(x.visits)], ["bounce_rate", pct(x.bounce_rate)],
      ["visit_duration", secs(x.visit_duration)]], (x) => ["entry_page", x.path]);
    renderVisits("exit", r["exit-pages"].rows, (x) => [x.path, ["visits", fmt(x.visits)], ["bounce_rate", pct(x.bounce_rate)],
      ["visit_duration", secs(x.visit_duration)]], (x) => ["exit_page", x.path]);
    renderVisits("sources", r.sources.rows, (x) => [x.source, ["channel", x.channel], ["visits", fmt(x.visits)],
      ["bounce_rate", pct(x.bounce_rate)]], (x) => (x.source === "(direct)" ? ["channel", "direct"] : ["source", x.source]));
    renderVisits("utm", r.utm.rows, (x) => [x.value, ["visits", fmt(x.visits)], ["bounce_rate", pct(x.bounce_rate)]],
      (x) => [x.key, x.value]);
    const place = state.by.locations;
    renderVisits("locations", r.locations.rows, (x) => [x[place], ["visits", fmt(x.visits)], ["visitors", fmt(x.visitors)]],
      (x) => [place, x[place]]);
    renderVisits("goals", r.goals.rows.map((x) => ({ ...x, visits: x.visitors })), (x) => [x.goal,
      ["visitors", fmt(x.visitors)], ["conversions", fmt(x.conversions)], ["conversion_rate", pct(x.conversion_rate)]],
      (x) => ["goal", x.goal]);
    renderFunnel(r.funnel);
    renderReleases(r.releases);
    $("#updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    showProblem("");
    document.body.dataset.ready = "1";
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin(e.message);
    showProblem(`Could not load the reports: ${e.message}`);
  }
  state.timer = setTimeout(refresh, REFRESH_MS);
}

async function refreshLive() {
  clearTimeout(state.liveTimer);
  const seq = ++state.liveSeq;
  try {
    // Ranges are whole hours: 2h is the current and the previous hour, so always at least the last 60 minutes.
    const [rep, now] = await Promise.all([api("/v1/stats/recent", { project: state.project, since: "2h", limit: 20 }),
      api("/v1/stats/realtime", { project: state.project })]);
    if (seq === state.liveSeq) {
      renderLive(rep);
      document.querySelector("[data-current]").textContent = fmt(now.summary.current_visitors);
      document.body.dataset.liveReady = "1";
    }
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin(e.message);
  }
  state.liveTimer = setTimeout(refreshLive, LIVE_MS);
}

// The whole view lives in the address (project, range, filters, comparison): a link reproduces it.
function syncUrl() {
  const q = new URLSearchParams({ project: state.project, since: state.since });
  for (const f of state.filters) q.append("filter", f);
  if (state.compare) q.set("compare", "previous");
  history.replaceState(null, "", `${location.pathname}?${q}`);
  for (const b of document.querySelectorAll("#ranges button")) b.setAttribute("aria-pressed", String(b.dataset.since === state.since));
  $("#compare").setAttribute("aria-pressed", String(state.compare));
}

async function start() {
  let index;
  try {
    index = await api("/v1/stats");
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin(sessionStorage.getItem(TOKEN_KEY) ? e.message : "");
    return showProblem(`Could not reach obsd: ${e.message}`);
  }
  $("#login").hidden = true;
  $("#main").hidden = false;
  const q = new URLSearchParams(location.search);
  const select = $("#project");
  select.replaceChildren(...index.projects.map((p) => el("option", { value: p }, p)));
  state.project = index.projects.includes(q.get("project")) ? q.get("project") : index.projects[0];
  state.since = ["24h", "7d", "30d"].includes(q.get("since")) ? q.get("since") : "24h";
  state.filters = q.getAll("filter").filter((f) => /^[a-z_]+(:[^=!~]+)?(!=|=|~)/.test(f)).slice(0, 10);
  state.compare = q.get("compare") === "previous";
  select.value = state.project;
  syncUrl();
  if (!state.project) return showProblem("No project is configured: add a [[projects]] section to obsd.toml.");
  await Promise.all([refresh(), refreshLive()]);
}

function wire() {
  takeTokenFromFragment();
  $("#login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#token").value = "";
    start();
  });
  $("#project").addEventListener("change", (ev) => {
    state.project = ev.target.value;
    state.filters = [];
    syncUrl();
    refresh();
    refreshLive();
  });
  for (const b of document.querySelectorAll("#ranges button")) {
    b.addEventListener("click", () => { state.since = b.dataset.since; syncUrl(); refresh(); });
  }
  $("#compare").addEventListener("click", () => { state.compare = !state.compare; syncUrl(); refresh(); });
  for (const b of document.querySelectorAll(".tabs button")) {
    const card = b.parentElement.dataset.tabs;
    b.addEventListener("click", () => {
      state.by[card] = b.dataset.by;
      for (const o of b.parentElement.children) o.setAttribute("aria-pressed", String(o === b));
      $(`#${card} th[data-label]`).textContent = b.textContent;
      refresh();
    });
  }
  for (const b of document.querySelectorAll("button.csv")) {
    b.addEventListener("click", () => downloadCsv(b.dataset.report).catch((e) => showProblem(`CSV: ${e.message}`)));
  }
  start();
}

wire();
