// The dagger UI: one page that reads the JSON API under /api/ and draws
// runs, steps and tasks from it. Every string that comes from a run (step
// names, prints, artifact values, errors) goes into the page as text, with
// textContent or createTextNode, never as markup.

const main = document.getElementById("main");
const liveNote = document.getElementById("live");
const SVG = "http://www.w3.org/2000/svg";

// The page's timers and event streams, stopped when the route changes.
let cleanups = [];
function onLeave(fn) { cleanups.push(fn); }
function leave() { for (const fn of cleanups) fn(); cleanups = []; }

// el makes an element: el("a", {href: "#/"}, "text", child, ...). Strings
// become text nodes, whatever they hold.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  append(e, children);
  return e;
}
function append(e, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}
function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  return e;
}
function replace(e, ...children) { e.replaceChildren(); return append(e, children); }

// api fetches JSON from the API; a reply that is not 2xx throws its error.
async function api(path) {
  const resp = await fetch(path, {headers: {Accept: "application/json"}});
  const body = await resp.json().catch(() => null);
  if (!resp.ok) throw new Error((body && body.error) || resp.status + " " + resp.statusText);
  return body;
}
const enc = encodeURIComponent;

// Formatting.
function fmtTime(t) { return t ? new Date(t).toLocaleString() : "-"; }
function fmtDur(ns) {
  if (ns === null || ns === undefined) return "-";
  const ms = ns / 1e6;
  if (ms < 1) return "<1ms";
  if (ms < 1000) return Math.round(ms) + "ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m" + Math.round(s % 60) + "s";
  return Math.floor(m / 60) + "h" + (m % 60) + "m";
}
function between(a, b) { return a && b ? (new Date(b) - new Date(a)) * 1e6 : null; }
// A task recorded running in a dead run will never end: it shows "died".
const labels = {died: "running when the run died"};
function badge(status) { return el("span", {class: "badge " + status, "data-status": status}, labels[status] || status); }
function taskStatus(t, dead) {
  if (dead && t.status === "running") return "died";
  return t.status === "succeeded" && t.error ? "caught" : t.status;
}
function fail(err) { replace(main, el("h1", {}, "Error"), el("pre", {class: "error"}, String(err.message || err))); }

// drawn marks the page drawn: body's data-drawn names it, and drawnAt is
// when, in milliseconds since the navigation began (for the benchmarks).
function drawn(name) {
  if (document.body.dataset.drawn) return;
  window.drawnAt = performance.now();
  document.body.dataset.drawn = name;
}

// Routes: #/ runs; #/runs/RUN a run; #/runs/RUN/STEP a step's tasks;
// #/runs/RUN/task/TASK a task.
async function route() {
  leave();
  liveNote.textContent = "";
  delete document.body.dataset.drawn;
  const parts = location.hash.replace(/^#\/?/, "").split("?")[0].split("/").map(decodeURIComponent);
  try {
    if (parts[0] === "runs" && parts.length === 2) await runPage(parts[1]);
    else if (parts[0] === "runs" && parts.length === 3) await stepPage(parts[1], parts[2]);
    else if (parts[0] === "runs" && parts[2] === "task" && parts.length === 4) await taskPage(parts[1], parts[3]);
    else await runsPage();
  } catch (err) { fail(err); }
}
window.addEventListener("hashchange", route);

// every runs fn now and every ms until the page is left.
function every(ms, fn) {
  const id = setInterval(fn, ms);
  onLeave(() => clearInterval(id));
}

// ---- Runs ----

async function runsPage() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const flow = el("input", {placeholder: "flow", value: params.get("flow") || "", id: "flow-filter"});
  const status = el("select", {id: "status-filter"},
    ["", "running", "succeeded", "failed", "cancelled", "dead"].map(s => el("option", {value: s}, s || "any status")));
  status.value = params.get("status") || "";
  const body = el("tbody");
  const count = el("span", {class: "muted"});
  const refresh = async () => {
    const q = new URLSearchParams({limit: "200"});
    if (flow.value) q.set("flow", flow.value);
    if (status.value) q.set("status", status.value);
    try {
      const runs = await api("/api/runs?" + q);
      replace(body, runs.map(runRow));
      count.textContent = runs.length + (runs.length === 1 ? " run" : " runs");
      if (!runs.length) append(body, el("tr", {}, el("td", {colspan: 6, class: "muted"}, "No runs.")));
    } catch (err) { count.textContent = String(err.message); }
  };
  flow.addEventListener("input", refresh);
  status.addEventListener("change", refresh);
  replace(main,
    el("h1", {}, "Runs"),
    el("div", {class: "filters"}, flow, status, count),
    el("table", {id: "runs"},
      el("thead", {}, el("tr", {}, ["ID", "Flow", "Status", "Started", "Duration", "Origin"].map(h => el("th", {}, h)))),
      body));
  await refresh();
  drawn("runs");
  every(2000, refresh);
  liveNote.textContent = "live: refreshed every 2s";
}

function runRow(r) {
  return el("tr", {"data-run": r.id},
    el("td", {class: "mono"}, el("a", {href: "#/runs/" + enc(r.id)}, r.id)),
    el("td", {}, r.flow),
    el("td", {}, badge(r.status)),
    el("td", {}, fmtTime(r.created)),
    el("td", {class: "num"}, r.ended ? fmtDur(between(r.created, r.ended)) : "-"),
    el("td", {class: "mono"}, r.origin ? el("a", {href: "#/runs/" + enc(r.origin)}, r.origin) : ""));
}

// ---- A run ----

async function runPage(ref) {
  // The statistics hold the run's record: one pass over its tasks.
  const [first, graph, source] = await Promise.all([
    api("/api/stats/" + enc(ref)),
    api("/api/graph/" + enc(ref)).catch(() => null),
    api("/api/source/" + enc(ref)).catch(() => null),
  ]);
  const run = first.run, id = run.id;
  const facts = el("dl", {class: "facts"});
  const graphBox = el("div", {class: "graph", id: "graph"});
  const statsBody = el("tbody");
  const errorBox = el("div");
  const title = el("h1", {});
  replace(main,
    title, facts,
    el("h2", {}, "Steps"),
    el("div", {class: "legend"}, ["pending", "running", "succeeded", "failed", "cancelled", "reused"].map(s => el("span", {}, badge(s)))),
    graphBox,
    el("table", {id: "stats"},
      el("thead", {}, el("tr", {}, ["Step", "Tasks", "Statuses", "Progress", "Retries", "Min", "Median", "p95", "Max"].map(h => el("th", {}, h)))),
      statsBody),
    errorBox,
    el("h2", {}, "Params"), paramsTable(run.params),
    el("h2", {}, "Source"), sourceView(source));
  const nodes = graph ? drawGraph(graphBox, graph, id) : new Map();
  if (!graph) append(graphBox, el("p", {class: "muted"}, "The flow's code could not be read."));

  let stats = first;
  const draw = async () => {
    if (!stats) stats = await api("/api/stats/" + enc(id));
    const r = stats.run;
    replace(title, "Run ", el("span", {class: "mono"}, r.id), " of ", r.flow, " ", badge(r.status));
    replace(facts,
      el("dt", {}, "flow"), el("dd", {class: "mono"}, r.flow_path || r.flow),
      el("dt", {}, "started"), el("dd", {}, fmtTime(r.created)),
      el("dt", {}, "ended"), el("dd", {}, r.ended ? fmtTime(r.ended) + " (" + fmtDur(between(r.created, r.ended)) + ")" : "-"),
      r.origin ? [el("dt", {}, "resumes"), el("dd", {}, el("a", {href: "#/runs/" + enc(r.origin)}, r.origin))] : [],
      r.datastore ? [el("dt", {}, "datastore"), el("dd", {class: "mono"}, r.datastore)] : []);
    const running = r.status === "running", dead = r.status === "dead";
    replace(statsBody, stats.steps.map(s => statsRow(id, s, running, dead)));
    for (const s of stats.steps) {
      const n = nodes.get(s.name);
      if (n) n.update(s, running, dead);
    }
    replace(errorBox,
      dead ? el("p", {class: "dead-note", id: "dead-note"}, "The process that ran this run is gone: it will not go on, and tasks it left running show ",
        badge("died"), ". ", el("span", {class: "mono"}, "dagger resume " + r.id), " continues it.") : [],
      r.error ? [el("h2", {}, "Error"), errorView(r.error, source)] : []);
    stats = null;
    return r.status;
  };
  const status = await draw();
  drawn("run");
  // A dead run will not change: only a running one is followed.
  if (status === "running") follow(id, draw);
}

// follow redraws the page as the run's events arrive, at most every
// 300ms, and every 3s anyway, until the run finishes.
function follow(id, draw) {
  let pending = null, done = false;
  const redraw = () => {
    if (pending) return;
    pending = setTimeout(async () => { pending = null; try { await draw(); } catch (e) { /* next time */ } }, 300);
  };
  const es = new EventSource("/api/events?output=0&run=" + enc(id));
  es.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    if (ev.event === "run_finished") { done = true; es.close(); liveNote.textContent = ev.status === "dead" ? "the run died" : "run finished"; }
    redraw();
  };
  es.onerror = () => { if (!done) liveNote.textContent = "live: reconnecting…"; };
  es.onopen = () => { liveNote.textContent = "live"; };
  every(3000, () => { if (!done) redraw(); });
  onLeave(() => { es.close(); clearTimeout(pending); });
}

// stepState is the colour of a step: how its tasks stand.
function stepState(s, running, dead) {
  const st = s.statuses || {};
  if (!s.tasks) return "pending";
  if (st.running) return dead ? "died" : "running";
  if (st.failed) return "failed";
  if (st.cancelled) return "cancelled";
  if (running && s.expected > s.tasks) return "running";
  if (st.reused === s.tasks) return "reused";
  return "succeeded";
}

// statusCounts shows how many tasks have each status.
function statusCounts(s, dead) {
  return Object.entries(s.statuses).sort().map(([k, v]) => el("span", {}, badge(dead && k === "running" ? "died" : k), " " + v + " "));
}

function statsRow(run, s, running, dead) {
  const st = statusCounts(s, dead);
  if (s.caught) st.push(el("span", {}, badge("caught"), " " + s.caught));
  const d = s.duration_ns || {};
  return el("tr", {"data-step": s.name, "data-state": stepState(s, running, dead)},
    el("td", {}, el("a", {href: "#/runs/" + enc(run) + "/" + enc(s.name)}, s.name)),
    el("td", {class: "num"}, String(s.tasks)),
    el("td", {}, st),
    el("td", {}, s.expected ? progress(s) : ""),
    el("td", {class: "num"}, String(s.retries)),
    ["min", "median", "p95", "max"].map(k => el("td", {class: "num"}, s.duration_ns ? fmtDur(d[k]) : "-")));
}

// progress is the bar of a foreach: the tasks that ended of those asked.
function progress(s) {
  const ended = s.tasks - (s.statuses.running || 0);
  const frac = s.expected ? Math.min(1, ended / s.expected) : 0;
  const bar = el("div");
  bar.style.width = (frac * 100).toFixed(1) + "%";
  return el("span", {class: "progress-cell", "data-ended": ended, "data-expected": s.expected},
    el("span", {class: "progress" + (frac >= 1 ? " done" : "")}, bar), " " + ended + " / " + s.expected);
}

function paramsTable(params) {
  const names = Object.keys(params || {}).sort();
  if (!names.length) return el("p", {class: "muted"}, "No params.");
  return el("table", {id: "params"}, el("tbody", {}, names.map(n =>
    el("tr", {}, el("td", {class: "mono"}, n), el("td", {class: "mono"}, JSON.stringify(params[n]))))));
}

// sourceView shows the files of the run's code package, each line with an
// id that errors link to: src-FILE-LINE.
function sourceView(source) {
  if (!source) return el("p", {class: "muted"}, "The flow's code could not be read.");
  const names = Object.keys(source.files).sort((a, b) => (a === source.flow ? -1 : b === source.flow ? 1 : a < b ? -1 : 1));
  return el("div", {id: "source"}, names.map(name => [
    el("h3", {class: "mono"}, name),
    el("pre", {class: "source"}, source.files[name].replace(/\n$/, "").split("\n").map((line, i) =>
      el("span", {class: "line", id: "src-" + name + "-" + (i + 1)}, line + "\n"))),
  ]));
}

// errorView shows an error with its backtrace, each file:line:col of the
// run's code a link to that line of the source.
function errorView(text, source) {
  const pre = el("pre", {class: "error"});
  const re = /([\w./-]+\.star):(\d+):(\d+)/g;
  let last = 0;
  for (const m of text.matchAll(re)) {
    append(pre, [text.slice(last, m.index)]);
    const file = source && Object.keys(source.files).find(f => m[1] === f || m[1].endsWith("/" + f));
    if (file) {
      const target = "src-" + file + "-" + m[2];
      append(pre, [el("a", {href: "#" + target, onclick: (e) => { e.preventDefault(); jumpTo(target); }}, m[0])]);
    } else append(pre, [m[0]]);
    last = m.index + m[0].length;
  }
  append(pre, [text.slice(last)]);
  return pre;
}
function jumpTo(id) {
  const line = document.getElementById(id);
  if (!line) return;
  document.querySelectorAll(".source .hl").forEach(l => l.classList.remove("hl"));
  line.classList.add("hl");
  line.scrollIntoView({block: "center"});
}

// ---- The step graph ----

// drawGraph draws the steps of graph (the JSON of dagger show --json) in
// layers from start, each step at the layer after its deepest
// predecessor, and returns each step's node, to colour as its tasks run.
// Split edges are plain, foreach edges thick, switch edges dashed; joins
// have a thick border, and the steps a foreach fans out to a stack.
function drawGraph(box, graph, run) {
  const steps = graph.steps, byName = new Map(steps.map((s, i) => [s.name, {s, i}]));
  const edges = [];
  for (const s of steps) for (const t of (s.next ? s.next.targets : [])) {
    if (byName.has(t.step)) edges.push({from: s.name, to: t.step, kind: s.next.kind});
  }
  // Layers: the longest path from a step without predecessors.
  const layer = new Map(steps.map(s => [s.name, 0]));
  for (let changed = true, rounds = 0; changed && rounds < steps.length; rounds++) {
    changed = false;
    for (const e of edges) if (layer.get(e.to) < layer.get(e.from) + 1) { layer.set(e.to, layer.get(e.from) + 1); changed = true; }
  }
  const layers = [];
  for (const s of steps) (layers[layer.get(s.name)] ||= []).push(s.name);
  const W = 170, H = 46, GX = 36, GY = 58, PAD = 20;
  const pos = new Map();
  layers.forEach((names, li) => {
    // Order each layer by where its predecessors are, then source order.
    if (li > 0) {
      const key = n => {
        const xs = edges.filter(e => e.to === n && pos.has(e.from)).map(e => pos.get(e.from).x);
        return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
      };
      names.sort((a, b) => key(a) - key(b) || byName.get(a).i - byName.get(b).i);
    }
    names.forEach((n, i) => pos.set(n, {x: i * (W + GX), y: PAD + li * (H + GY)}));
  });
  const widest = Math.max(...layers.map(l => l.length));
  const width = widest * (W + GX) - GX + 2 * PAD;
  layers.forEach(names => {
    const shift = (width - (names.length * (W + GX) - GX)) / 2;
    for (const n of names) pos.get(n).x += shift;
  });
  const height = layers.length * (H + GY) - GY + 2 * PAD;
  const root = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "step graph"});
  root.appendChild(svg("defs", {}, svg("marker", {id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse"},
    svg("path", {d: "M0,0 L10,5 L0,10 z", fill: "#6b7385"}))));
  const fanned = new Set(edges.filter(e => e.kind === "foreach").map(e => e.to));
  for (const e of edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    const x1 = a.x + W / 2, y1 = a.y + H, x2 = b.x + W / 2, y2 = b.y - (fanned.has(e.to) ? 6 : 0);
    const my = (y1 + y2) / 2;
    root.appendChild(svg("path", {class: "edge " + e.kind, d: `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`, "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to, "data-kind": e.kind}));
    if (e.kind !== "linear") {
      const label = svg("text", {class: "label", x: (x1 + x2) / 2 + 4, y: my - 2});
      label.textContent = e.kind;
      root.appendChild(label);
    }
  }
  const nodes = new Map();
  for (const s of steps) {
    const p = pos.get(s.name);
    const g = svg("g", {class: "node pending" + (s.join ? " join" : ""), "data-step": s.name, "data-state": "pending", transform: `translate(${p.x},${p.y})`, tabindex: 0});
    if (fanned.has(s.name)) {
      g.appendChild(svg("rect", {class: "stack", x: 6, y: -6, width: W, height: H, rx: 6}));
      g.appendChild(svg("rect", {class: "stack", x: 3, y: -3, width: W, height: H, rx: 6}));
    }
    g.appendChild(svg("rect", {class: "box", width: W, height: H, rx: 6}));
    const bar = svg("rect", {class: "bar", x: 0, y: H - 5, width: 0, height: 5, rx: 2});
    g.appendChild(bar);
    const name = svg("text", {class: "name", x: 10, y: 19});
    name.textContent = s.name.length > 20 ? s.name.slice(0, 19) + "…" : s.name;
    const detail = svg("text", {class: "detail", x: 10, y: 35});
    const title = svg("title", {});
    title.textContent = s.name + (s.join ? " (join)" : "") + (s.next ? " → " + s.next.kind : "");
    g.append(title, name, detail);
    g.addEventListener("click", () => { location.hash = "#/runs/" + enc(run) + "/" + enc(s.name); });
    root.appendChild(g);
    nodes.set(s.name, {update(st, running, dead) {
      const state = stepState(st, running, dead);
      g.setAttribute("class", "node " + state + (s.join ? " join" : ""));
      g.setAttribute("data-state", state);
      detail.textContent = nodeDetail(st, dead);
      bar.setAttribute("width", st.expected ? Math.min(1, (st.tasks - (st.statuses.running || 0)) / st.expected) * W : 0);
    }});
  }
  replace(box, root);
  return nodes;
}

// nodeDetail says in a few words how the tasks of a step stand: "not
// run", "1 succeeded", or for a foreach "22/40 · 2 running".
function nodeDetail(st, dead) {
  if (!st.tasks) return "not run";
  const counts = Object.entries(st.statuses).sort().map(([k, v]) => [dead && k === "running" ? "died" : k, v]);
  if (!st.expected) return counts.map(([k, v]) => v + " " + k).join(", ");
  const ended = st.tasks - (st.statuses.running || 0);
  const others = counts.filter(([k]) => k !== "succeeded").map(([k, v]) => v + " " + k);
  return [`${ended}/${st.expected}`, ...others].join(" · ");
}

// ---- A step ----

async function stepPage(run, step) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  let offset = 0, sort = "index";
  const limit = 100;
  const sortSel = el("select", {id: "sort"}, ["index", "status", "duration"].map(s => el("option", {value: s}, "by " + s)));
  const prev = el("button", {id: "prev"}, "← previous"), next = el("button", {id: "next"}, "next →");
  const where = el("span", {class: "muted", id: "where"});
  const body = el("tbody");
  const head = el("p", {});
  replace(main,
    el("h1", {}, "Step ", el("span", {class: "mono"}, step), " of run ", el("a", {href: "#/runs/" + enc(run), class: "mono"}, run)),
    head,
    el("div", {class: "pager"}, sortSel, prev, next, where),
    el("table", {id: "tasks"},
      el("thead", {}, el("tr", {}, ["Task", "Status", "Attempt", "Started", "Duration", "Artifacts"].map(h => el("th", {}, h)))),
      body));
  let running = false, dead = false;
  const load = async () => {
    const [page, stats] = await Promise.all([
      api(`/api/runs/${enc(run)}/${enc(step)}?` + new URLSearchParams({offset, limit, sort})),
      api("/api/stats/" + enc(run)),
    ]);
    const s = stats.steps.find(x => x.name === step);
    dead = stats.run.status === "dead";
    if (s) {
      const d = s.duration_ns;
      replace(head, s.tasks + " tasks: ", statusCounts(s, dead),
        s.retries ? " · " + s.retries + " retries" : "",
        d ? ` · duration min ${fmtDur(d.min)}, median ${fmtDur(d.median)}, p95 ${fmtDur(d.p95)}, max ${fmtDur(d.max)}` : "",
        s.expected ? [" · ", progress(s)] : "");
    }
    // Only a running run's tasks change.
    running = stats.run.status === "running" && (s ? (s.statuses.running > 0 || s.expected > s.tasks) : true);
    replace(body, page.tasks.map(t => el("tr", {"data-task": t.id},
      el("td", {class: "mono"}, el("a", {href: `#/runs/${enc(run)}/task/${enc(t.id)}`}, t.id)),
      el("td", {}, badge(taskStatus(t, dead))),
      el("td", {class: "num"}, String(t.attempt)),
      el("td", {}, fmtTime(t.started)),
      el("td", {class: "num"}, fmtDur(between(t.started, t.ended))),
      el("td", {class: "mono"}, Object.keys(t.artifacts).sort().join(", ")))));
    if (!page.tasks.length) append(body, el("tr", {}, el("td", {colspan: 6, class: "muted"}, "No tasks yet.")));
    where.textContent = page.total ? `${page.offset + 1}–${page.offset + page.tasks.length} of ${page.total}` : "0 tasks";
    prev.disabled = offset === 0;
    next.disabled = offset + limit >= page.total;
  };
  sortSel.addEventListener("change", () => { sort = sortSel.value; offset = 0; load().catch(fail); });
  prev.addEventListener("click", () => { offset = Math.max(0, offset - limit); load().catch(fail); });
  next.addEventListener("click", () => { offset += limit; load().catch(fail); });
  if (params.get("sort")) { sort = params.get("sort"); sortSel.value = sort; }
  await load();
  drawn("step");
  every(2000, () => { if (running) load().catch(() => {}); });
}

// ---- A task ----

async function taskPage(run, id) {
  const t = await api(`/api/tasks/${enc(run)}/${enc(id)}`);
  const source = await api("/api/source/" + enc(run)).catch(() => null);
  const facts = el("dl", {class: "facts"});
  const attempts = el("tbody");
  const logs = el("pre", {class: "logs", id: "logs"});
  const artifacts = el("div", {id: "artifacts"});
  const errorBox = el("div");
  const title = el("h1", {});
  replace(main, title, facts,
    el("h2", {}, "Attempts"),
    el("table", {id: "attempts"}, el("thead", {}, el("tr", {}, ["#", "Status", "Started", "Duration", "Error"].map(h => el("th", {}, h)))), attempts),
    errorBox,
    el("h2", {}, "Logs"), logs,
    el("h2", {}, "Artifacts"), artifacts);
  const stepLink = s => el("a", {href: `#/runs/${enc(run)}/${enc(s)}`, class: "mono"}, s);
  const taskLink = p => el("a", {href: `#/runs/${enc(run)}/task/${enc(p)}`, class: "mono"}, p);
  // dead says the run died, as its event stream tells.
  let dead = false, last = t;
  const draw = async (t) => {
    last = t;
    const kids = await api(`/api/children/${enc(run)}/${enc(t.id)}?limit=${maxChildren}`).catch(() => null);
    replace(title, "Task ", el("span", {class: "mono"}, t.id), " of run ", el("a", {href: "#/runs/" + enc(run), class: "mono"}, run), " ", badge(taskStatus(t, dead)));
    replace(facts,
      el("dt", {}, "step"), el("dd", {}, stepLink(t.step)),
      el("dt", {}, "started"), el("dd", {}, fmtTime(t.started)),
      el("dt", {}, "ended"), el("dd", {}, t.ended ? fmtTime(t.ended) + " (" + fmtDur(between(t.started, t.ended)) + ")" : "-"),
      el("dt", {}, "parents"), el("dd", {id: "parents"}, t.parents.length ? listLinks(t.parents, taskLink) : "-"),
      el("dt", {}, "next"), el("dd", {id: "next"}, t.next.length ? listLinks(t.next, stepLink) : "-",
        t.foreach ? " (fanned out to " + t.foreach + " tasks)" : ""),
      el("dt", {}, "children"), el("dd", {id: "children"}, childLinks(kids, taskLink, stepLink)),
      t.origin ? [el("dt", {}, "reused from"), el("dd", {}, el("a", {href: "#/runs/" + enc(t.origin)}, t.origin))] : []);
    replace(attempts, t.attempts.map(a => el("tr", {},
      el("td", {class: "num"}, String(a.n)), el("td", {}, badge(a.status)),
      el("td", {}, fmtTime(a.started)), el("td", {class: "num"}, fmtDur(between(a.started, a.ended))),
      el("td", {}, a.error ? errorView(a.error, source) : ""))));
    replace(errorBox, t.error ? [el("h2", {}, "Error"), errorView(t.error, source)] : []);
    await drawArtifacts(artifacts, run, t);
  };
  await draw(t);
  drawn("task");
  // The task's events: its lines as it prints them, then its end.
  let done = false;
  const es = new EventSource(`/api/events?run=${enc(run)}&task=${enc(id)}`);
  es.onmessage = async (m) => {
    const ev = JSON.parse(m.data);
    if (ev.event === "task_output") append(logs, [el("span", {class: "line", "data-attempt": ev.attempt}, ev.line + "\n")]);
    if (ev.event === "task_started" && ev.attempt > 1) append(logs, [el("span", {class: "muted"}, `— attempt ${ev.attempt} —\n`)]);
    if (ev.event === "task_finished" || ev.event === "task_retrying") draw(await api(`/api/tasks/${enc(run)}/${enc(id)}`)).catch(() => {});
    if (ev.event === "run_finished") {
      done = true;
      es.close();
      if (!logs.childNodes.length) logs.textContent = "(no output)";
      liveNote.textContent = ev.status === "dead" ? "the run died" : "";
      if (ev.status === "dead") { dead = true; draw(last).catch(() => {}); }
    }
  };
  es.onerror = () => { if (!done) liveNote.textContent = "live: reconnecting…"; };
  es.onopen = () => { liveNote.textContent = "live"; };
  onLeave(() => es.close());
}

// maxChildren is how many children a task's page links to; the others
// are counted, with a link to their step.
const maxChildren = 20;

// childLinks links to the children of a task (a page of
// /api/children), and says how many more there are and where.
function childLinks(kids, taskLink, stepLink) {
  if (!kids) return "?";
  if (!kids.total) return "-";
  const links = kids.tasks.flatMap((c, i) => i ? [", ", taskLink(c.id)] : [taskLink(c.id)]);
  if (kids.total <= kids.tasks.length) return links;
  const steps = [...new Set(kids.tasks.map(c => c.step))];
  return [links, el("span", {class: "muted", id: "more-children"}, ` … and ${kids.total - kids.tasks.length} more, of ${kids.total}, in step `),
    listLinks(steps, stepLink)];
}

function listLinks(names, link) {
  if (names.length > 7) return [link(names[0]), ", …, ", link(names[names.length - 1]), ` (${names.length} tasks)`];
  return names.flatMap((n, i) => i ? [", ", link(n)] : [link(n)]);
}

async function drawArtifacts(box, run, t) {
  const names = Object.keys(t.artifacts).sort();
  if (!names.length) { replace(box, el("p", {class: "muted"}, "No artifacts.")); return; }
  const views = await Promise.all(names.map(n =>
    api(`/api/tasks/${enc(run)}/${enc(t.id)}/${enc(n)}?view=1`).catch(err => ({name: n, type: "?", text: String(err.message)}))));
  replace(box, views.map(v => el("div", {class: "artifact", "data-artifact": v.name},
    el("div", {class: "head"},
      el("strong", {class: "mono"}, v.name), el("span", {class: "muted"}, v.type + (v.json === null && !v.download ? " (Starlark form)" : "")),
      v.download ? el("a", {href: `/api/tasks/${enc(run)}/${enc(t.id)}/${enc(v.name)}`, download: "", class: "download"}, `download (${v.size} bytes)`) : null,
      el("span", {class: "muted mono"}, t.artifacts[v.name].slice(0, 19))),
    el("pre", {class: "value"}, v.text + (v.truncated ? "\n… (cut)" : "")))));
}

route();
