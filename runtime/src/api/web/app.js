// wasp's web page: the playbooks, the executions, and one execution's graph with each
// step's inputs, outputs and logs. No build step and nothing from outside the server:
// plain modules, DOM and SVG. Everything an app produced is shown as text (never as
// HTML): outputs and logs come from sandboxed code and may be hostile.

const $ = (selector, root = document) => root.querySelector(selector);

/** An element with attributes (`on*` functions become listeners) and children. */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attributes);
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element, as `el`. */
function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  setAttributes(node, attributes);
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function setAttributes(node, attributes) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
}

// ---------------------------------------------------------------------------------
// The API

let token = sessionStorage.getItem("wasp-token");

/** Ask for the server's token (once at a time). */
let asking = null;
function askToken() {
  if (asking) return asking;
  const dialog = $("#token-dialog");
  asking = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const given = dialog.returnValue === "ok" ? $("#token-input").value.trim() : "";
        token = given || null;
        if (token) sessionStorage.setItem("wasp-token", token);
        asking = null;
        resolve(token);
      },
      { once: true },
    );
    dialog.returnValue = "";
    $("#token-input").value = "";
    dialog.showModal();
  });
  return asking;
}

function authorized(headers = {}) {
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Call the API; the parsed JSON body, or an ApiError carrying the server's message. */
async function api(path, { method = "GET", body, raw = false } = {}) {
  for (;;) {
    const response = await fetch(path, {
      method,
      headers: authorized(body === undefined ? {} : { "Content-Type": "application/json" }),
      body,
    });
    if (response.status === 401) {
      // A token the server refuses is forgotten, and a new one asked for.
      sessionStorage.removeItem("wasp-token");
      token = null;
      if (await askToken()) continue;
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const error = await response.json();
        message = error.message || error.error || message;
      } catch {
        // Not JSON: the status line says it.
      }
      throw new ApiError(response.status, message);
    }
    return raw ? response : response.json();
  }
}

/** Save what `path` answers as `file`. */
async function downloadPath(path, file) {
  try {
    const response = await api(path, { raw: true });
    saveBlob(await response.blob(), file);
  } catch (e) {
    alertIn($("#view"), `The download of ${file} failed: ${e.message}`);
  }
}

function saveBlob(blob, file) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: file });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * Follow the Server-Sent Events at `path` (read with fetch, so that the token goes in a
 * header), calling `handle(name, data)` for each; the returned function stops it.
 */
function follow(path, handle, onEnd = () => {}) {
  const abort = new AbortController();
  (async () => {
    const response = await fetch(path, { headers: authorized(), signal: abort.signal });
    if (!response.ok || !response.body) throw new Error(`${response.status}`);
    setConnection("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) {
          try {
            handle(name, JSON.parse(data.join("\n")));
          } catch (e) {
            console.error("a bad event", name, e);
          }
        }
      }
    }
  })()
    .catch((e) => {
      if (e.name !== "AbortError") console.warn("event stream ended", e);
    })
    .finally(() => {
      setConnection("");
      if (!abort.signal.aborted) onEnd();
    });
  return () => abort.abort();
}

function setConnection(state) {
  $("#connection").textContent = state === "live" ? "● Live updates" : "";
}

// ---------------------------------------------------------------------------------
// Words, times and statuses

/** The class that colours a status word, for executions and nodes alike. */
function statusClass(status) {
  switch (status) {
    case "Completed":
    case "Succeeded":
    case "succeeded":
      return "s-ok";
    case "Partially Failed":
    case "Partially failed":
      return "s-partial";
    case "Failed":
    case "TimedOut":
    case "failed":
    case "timed_out":
      return "s-failed";
    case "Killed":
    case "killed":
      return "s-killed";
    case "Running":
    case "Queued":
      return "s-running";
    default:
      return "s-grey";
  }
}

function statusWord(status) {
  return { TimedOut: "Timed out", Pending: "Pending" }[status] || status || "Not executed";
}

function badge(status) {
  return el("span", { class: `status ${statusClass(status)}`, "data-status": status }, statusWord(status));
}

function time(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

function elapsed(us) {
  if (us === null || us === undefined) return "—";
  if (us < 1000) return `${us} µs`;
  if (us < 1_000_000) return `${(us / 1000).toFixed(1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

const running = (status) => status === "Running" || status === "Queued";

// ---------------------------------------------------------------------------------
// Routing: #/ is the list, #/executions/{id} one execution.

let leave = () => {};
let generation = 0;

/** Whether the view started as generation `mine` is still the one shown. */
const current = (mine) => mine === generation;

async function route() {
  // An in-page anchor (the skip link) is not a route.
  if (location.hash && !location.hash.startsWith("#/")) return;
  leave();
  leave = () => {};
  const mine = ++generation;
  const view = $("#view");
  const match = location.hash.match(/^#\/executions\/([^/?]+)(?:\?node=([^&]+))?/);
  try {
    if (match) {
      await executionView(view, decodeURIComponent(match[1]), match[2] && decodeURIComponent(match[2]), mine);
    } else {
      await homeView(view, mine);
    }
    if (current(mine) && !document.querySelector("dialog[open]") && !view.contains(document.activeElement)) view.focus();
  } catch (e) {
    if (!current(mine)) return;
    view.replaceChildren(el("h1", {}, "Something went wrong"), el("p", { class: "error", role: "alert" }, e.message));
  }
}

/** Follow `path` for the view of generation `mine`, stopped when the view is left. */
function followFor(mine, path, handle, onEnd) {
  if (!current(mine)) return;
  const stop = follow(path, handle, onEnd);
  const previous = leave;
  leave = () => {
    previous();
    stop();
  };
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);

// ---------------------------------------------------------------------------------
// The list: playbooks with a Run button, executions filtered by TQL.

const PAGE = 25;

async function homeView(view, mine) {
  document.title = "wasp — playbooks and executions";
  const playbooks = el("tbody");
  const rows = el("tbody");
  const tql = el("input", {
    id: "tql",
    type: "search",
    placeholder: 'status = "Failed" AND completedTime > "NOW() - 1 DAY"',
    "aria-describedby": "tql-error",
    value: sessionStorage.getItem("wasp-tql") || "",
  });
  // The query the list shows: what was last applied, not what is being typed.
  let applied = tql.value.trim();
  const tqlError = el("p", { id: "tql-error", class: "error", role: "alert" });
  const summary = el("span", { class: "muted", id: "executions-summary" });
  const previous = el("button", { type: "button", id: "previous-page" }, "Previous");
  const next = el("button", { type: "button", id: "next-page" }, "Next");
  let offset = 0;

  view.replaceChildren(
    el("h1", {}, "Playbooks"),
    el(
      "table",
      { id: "playbooks" },
      el("thead", {}, el("tr", {}, ["Name", "ID", "Description", "Trigger", "Last run", ""].map((h) => el("th", { scope: "col" }, h)))),
      playbooks,
    ),
    el("h2", {}, "Executions"),
    el(
      "form",
      { class: "toolbar tql", id: "tql-form", role: "search" },
      el("label", { for: "tql", class: "inline" }, "TQL"),
      el("div", { class: "grow" }, tql),
      el("button", { type: "submit", class: "primary" }, "Filter"),
      el("button", { type: "button", id: "tql-clear", onclick: () => ((tql.value = ""), apply()) }, "Clear"),
    ),
    tqlError,
    el(
      "table",
      { id: "executions" },
      el(
        "thead",
        {},
        el("tr", {}, ["Status", "Execution", "Playbook", "Started", "Duration", "Log level", "Trigger"].map((h) => el("th", { scope: "col" }, h))),
      ),
      rows,
    ),
    el("div", { class: "pager" }, previous, next, summary),
  );
  const apply = () => {
    applied = tql.value.trim();
    load(0);
  };
  $("#tql-form").addEventListener("submit", (e) => {
    e.preventDefault();
    apply();
  });
  previous.addEventListener("click", () => load(Math.max(0, offset - PAGE)));
  next.addEventListener("click", () => load(offset + PAGE));

  const list = await api("/api/v1/playbooks");
  if (!current(mine)) return;
  playbooks.replaceChildren(
    ...list.data
      .filter((p) => !p.is_deleted)
      .map((p) =>
        el(
          "tr",
          {},
          el("td", {}, p.name),
          el("td", { class: "mono" }, p.xid),
          el("td", {}, p.description || ""),
          el("td", { class: "trigger" }, triggerText(p)),
          el("td", {}, p.last_run_id ? el("a", { href: `#/executions/${encodeURIComponent(p.last_run_id)}` }, time(p.last_run_at)) : "never"),
          el("td", {}, el("button", { type: "button", class: "run", "data-playbook": p.xid, disabled: !p.enabled, title: p.enabled ? null : "disabled", onclick: () => runDialog(p) }, `Run ${p.name}`)),
        ),
      ),
  );
  if (!list.data.length) playbooks.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No playbooks are loaded.")));

  async function load(at) {
    const text = applied;
    sessionStorage.setItem("wasp-tql", text);
    const query = new URLSearchParams({ limit: PAGE, offset: at, count: "true" });
    if (text) query.set("tql", text);
    let page;
    try {
      page = await api(`/api/v1/executions?${query}`);
      if (!current(mine)) return;
    } catch (e) {
      // The parser's message names the position and what it expected.
      tqlError.textContent = e.message;
      tql.setAttribute("aria-invalid", "true");
      return;
    }
    tqlError.textContent = "";
    tql.removeAttribute("aria-invalid");
    offset = at;
    rows.replaceChildren(
      ...page.data.map((x) => {
        const link = `#/executions/${encodeURIComponent(x.id)}`;
        return el(
          "tr",
          { class: "clickable", "data-id": x.id },
          el("td", {}, badge(x.status)),
          el("td", { class: "mono" }, el("a", { href: link }, x.id)),
          el("td", {}, x.playbook_name),
          el("td", {}, time(x.started_at || x.queued_at)),
          el("td", {}, x.duration_ms === null ? "—" : elapsed(x.duration_ms * 1000)),
          el("td", {}, x.log_level),
          el("td", {}, x.trigger_type),
        );
      }),
    );
    if (!page.data.length) rows.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, text ? "No execution matches." : "No executions yet.")));
    const total = page.count ?? page.data.length;
    summary.textContent = total ? `${at + 1}–${at + page.data.length} of ${total}` : "";
    previous.disabled = at === 0;
    next.disabled = !page.more;
  }
  await load(0);

  // New and ended executions show up on the first page without a reload.
  let pending = null;
  followFor(mine, "/api/v1/events?types=node_started,execution_ended", () => {
    if (offset !== 0 || pending) return;
    pending = setTimeout(() => {
      pending = null;
      if (current(mine) && !tqlError.textContent) load(0);
    }, 1000);
  });
  const stopStream = leave;
  leave = () => {
    stopStream();
    clearTimeout(pending);
  };
}

/** What starts playbook `p`, in words: its trigger, and whether it is switched off. */
function triggerText(p) {
  const trigger = p.trigger || {};
  let text = trigger.type || "manual";
  if (trigger.type === "webhook") text += trigger.signed ? " (signed)" : "";
  if (trigger.type === "timer") {
    text += trigger.cron ? ` ${trigger.cron}${trigger.timezone && trigger.timezone !== "UTC" ? ` ${trigger.timezone}` : ""}` : ` every ${trigger.every}`;
    if (trigger.next_runs?.length) text += `, next ${time(trigger.next_runs[0])}`;
  }
  if (trigger.type === "event") text += p.auto_execute ? ` when ${(trigger.conditions || []).join(" AND ") || "any event arrives"}` : " (not automatic)";
  return p.enabled === false ? `${text} — disabled` : text;
}

/** The Run dialog for playbook `p`: a JSON payload and a log level. */
function runDialog(p) {
  const dialog = $("#run-dialog");
  const payload = $("#run-payload");
  const error = $("#run-error");
  $("#run-title").textContent = `Run ${p.name}`;
  payload.value = payload.dataset.playbook === p.xid ? payload.value : "{\n  \n}";
  payload.dataset.playbook = p.xid;
  error.textContent = "";
  const form = $("#run-form");
  const submit = async (e) => {
    e.preventDefault();
    let body;
    try {
      body = JSON.stringify(JSON.parse(payload.value || "{}"));
    } catch (parse) {
      error.textContent = `The payload is not JSON: ${parse.message}`;
      payload.focus();
      return;
    }
    const query = new URLSearchParams();
    if ($("#run-level").value) query.set("log_level", $("#run-level").value);
    const button = $("#run-submit");
    if (button.disabled) return;
    button.disabled = true;
    try {
      const started = await api(`/api/v1/playbooks/${encodeURIComponent(p.xid)}/run?${query}`, { method: "POST", body });
      close();
      location.hash = `#/executions/${encodeURIComponent(started.execution_id)}`;
    } catch (failure) {
      error.textContent = failure.message;
    } finally {
      button.disabled = false;
    }
  };
  const close = () => {
    form.removeEventListener("submit", submit);
    dialog.close();
  };
  form.addEventListener("submit", submit);
  $("#run-cancel").onclick = close;
  dialog.addEventListener("close", () => form.removeEventListener("submit", submit), { once: true });
  dialog.showModal();
  payload.focus();
}

/** Ask `question`; true on Yes. */
function confirmDialog(title, question) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = question;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    $("#confirm-no").focus();
  });
}

// ---------------------------------------------------------------------------------
// One execution: facts, the graph, and the selected node's details.

async function executionView(view, id, selectedNode, mine) {
  let record = await api(`/api/v1/executions/${encodeURIComponent(id)}`);
  if (!current(mine)) return;
  id = record.id;
  document.title = `wasp — ${record.playbook_name} ${record.id}`;
  const states = new Map();
  let selected = selectedNode || null;
  let iteration = 0;

  const header = el("div");
  const graphBox = el("div", { class: "graph-box", id: "graph" });
  const details = el("section", { class: "pane", id: "details", "aria-label": "Execution details" });
  view.replaceChildren(
    header,
    el(
      "div",
      { class: "panes" },
      el(
        "section",
        { class: "pane", "aria-label": "Execution graph" },
        el(
          "div",
          { class: "toolbar" },
          el("h2", { class: "inline" }, "Execution graph"),
          el("span", { class: "grow" }),
          el("button", { type: "button", id: "zoom-in", "aria-label": "Zoom in", onclick: () => graph.zoom(1 / 1.25) }, "+"),
          el("button", { type: "button", id: "zoom-out", "aria-label": "Zoom out", onclick: () => graph.zoom(1.25) }, "−"),
          el("button", { type: "button", id: "zoom-fit", onclick: () => graph.fit() }, "Fit"),
        ),
        graphBox,
      ),
      details,
    ),
  );

  function setStates(nodes) {
    states.clear();
    for (const node of nodes || []) states.set(node.id ?? node.node, node);
  }
  setStates(record.nodes);
  // The playbook may have changed since: what ran is drawn even when its graph lacks it.
  record.graph ||= { nodes: [], edges: [] };
  for (const id of new Set([...(record.nodes || []).map((n) => n.id), ...(record.steps || []).map((s) => s.node)])) {
    if (!record.graph.nodes.some((n) => n.id === id)) record.graph.nodes.push({ id, kind: "app", app: null, action: null, for_each: false });
  }
  const graph = drawGraph(graphBox, record.graph, (node) => select(node));

  function refresh() {
    renderHeader();
    graph.paint((nodeId) => nodeStatus(record, states, nodeId), (nodeId) => itemCount(states.get(nodeId)));
    graph.mark(selected);
    renderDetails();
  }

  function select(nodeId) {
    selected = nodeId;
    iteration = 0;
    history.replaceState(null, "", `#/executions/${encodeURIComponent(id)}?node=${encodeURIComponent(nodeId)}`);
    graph.mark(selected);
    renderDetails();
  }

  function renderHeader() {
    const live = running(record.status);
    const facts = [
      ["Session", el("span", { class: "mono" }, record.id)],
      ["Status", badge(record.status)],
      ["Playbook", `${record.playbook_name} (${record.playbook_id})`],
      ["Started", time(record.started_at)],
      ["Completed", live ? "—" : time(record.completed_at)],
      ["Duration", live ? "running" : elapsed(record.duration_us)],
      ["Log level", record.log_level],
      ["Trigger", record.trigger_type],
    ];
    if (record.message) facts.push(["Message", record.message]);
    // The playbook's declared result (`output:`), kept at every level.
    if (record.output !== undefined) facts.push(["Output", el("pre", { class: "result", id: "result" }, clip(JSON.stringify(record.output, null, 2), 4000))]);
    if (record.output_error) facts.push(["Output", el("span", { class: "error", id: "result-error" }, `none: ${record.output_error}`)]);
    if (record.parent_id) facts.push(["Parent", el("a", { href: `#/executions/${encodeURIComponent(record.parent_id)}` }, record.parent_id)]);
    if (record.replay_of) facts.push(["Replay of", el("a", { href: `#/executions/${encodeURIComponent(record.replay_of)}` }, record.replay_of)]);
    header.replaceChildren(
      el(
        "h1",
        {},
        el("span", {}, `${record.playbook_name}`),
        badge(record.status),
        live
          ? el("button", { type: "button", id: "kill", class: "danger", onclick: kill }, "Kill")
          // stdout and stderr are kept at DEBUG and TRACE only.
          : capturesData(record)
            ? el("button", { type: "button", id: "os-logs", onclick: () => downloadPath(`/api/v1/executions/${encodeURIComponent(id)}/oslogs.zip`, `${id}-os-logs.zip`) }, "Download OS logs")
            : null,
      ),
      el("dl", { class: "facts", id: "facts" }, facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    );
  }

  async function kill() {
    const yes = await confirmDialog("Kill this execution?", `Stop ${record.playbook_name} (${id}) now? Steps in flight are interrupted and the execution ends Killed.`);
    if (!yes) return;
    try {
      await api(`/api/v1/executions/${encodeURIComponent(id)}/kill`, { method: "POST" });
    } catch (e) {
      alertIn(header, e.message);
    }
  }

  function renderDetails() {
    // Re-rendering must not lose the keyboard's place.
    const focused = details.contains(document.activeElement) && document.activeElement.id;
    renderNodeDetails(details, record, states, selected, iteration, (i) => {
      iteration = i;
      renderDetails();
    });
    const again = focused && document.getElementById(focused);
    if (again && !again.disabled) again.focus();
    else if (focused && focused.startsWith("iteration-")) document.getElementById("iteration-index")?.focus();
  }

  refresh();
  if (selected) graph.mark(selected);

  // While it runs, the graph follows its events, and the record (with the steps that
  // ended so far, stored as they end) is read again after steps end, at most one read
  // at a time and one every half second; at its end the whole record is read.
  if (running(record.status)) {
    let reloading = false;
    let again = false;
    let soon = null;
    const reload = async () => {
      if (reloading) {
        again = true;
        return;
      }
      reloading = true;
      try {
        const latest = await api(`/api/v1/executions/${encodeURIComponent(id)}`);
        if (!current(mine)) return;
        record = latest;
        setStates(record.nodes);
        refresh();
      } finally {
        reloading = false;
        if (again) {
          again = false;
          reload();
        }
      }
    };
    const reloadSoon = () => {
      soon ??= setTimeout(() => {
        soon = null;
        if (current(mine)) reload();
      }, 500);
    };
    followFor(mine, `/api/v1/executions/${encodeURIComponent(id)}/events`, (name, data) => {
      if (name === "snapshot") {
        setStates(data.nodes);
        if (data.execution) record.status = data.execution.status;
        if (!running(record.status)) reload();
        else refresh();
      } else if (name === "node_started") {
        states.set(data.node, { ...(states.get(data.node) || {}), id: data.node, status: "Running", started_at: data.at });
        refresh();
      } else if (name === "node_ended") {
        states.set(data.node, { ...(states.get(data.node) || {}), id: data.node, status: data.status, duration_us: data.duration_us, pathway: data.pathway, error: data.error, iterations: data.iterations, succeeded: data.succeeded });
        refresh();
        reloadSoon();
      } else if (name === "step_ended") {
        reloadSoon();
      } else if (name === "execution_ended" || name === "lagged") {
        reload();
      }
    }, reload);
  }
}

function alertIn(parent, message) {
  parent.append(el("p", { class: "error", role: "alert" }, message));
}

/** The status a node shows: its own, orange when some iterations failed but it went on. */
function nodeStatus(record, states, nodeId) {
  const state = states.get(nodeId);
  // The trigger fired when the execution began.
  if (!state && (record.graph?.nodes || []).some((n) => n.id === nodeId && n.kind === "trigger")) return "Succeeded";
  if (!state) return running(record.status) ? "Pending" : "Not executed";
  if (state.status === "Succeeded") {
    const steps = (record.steps || []).filter((s) => s.node === nodeId);
    const finals = lastAttempts(steps);
    if (finals.some((s) => s.report.status !== "succeeded")) return "Partially failed";
  }
  if (state.status === "Pending" && !running(record.status)) return "Not executed";
  // Killed before it started (a kill or the reaper): it never ran, so it is grey.
  if (state.status === "Killed" && !state.started_at && !(record.steps || []).some((s) => s.node === nodeId)) return "Not started";
  return state.status;
}

/** `3 of 4` for a `for_each` node that ended: its items that succeeded, of all. */
function itemCount(state) {
  if (!state || state.iterations == null || state.succeeded == null) return "";
  return `${state.succeeded} of ${state.iterations}`;
}

/** The last attempt of each iteration of a node's steps, by iteration. */
function lastAttempts(steps) {
  const byIteration = new Map();
  for (const step of steps) byIteration.set(step.iteration ?? 0, step);
  return [...byIteration.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s);
}

// ---------------------------------------------------------------------------------
// The graph: layered left to right, drawn in SVG, with zoom, pan and keyboard.

/** How much Fit may shrink the graph: text of 12px stays 9px. */
const MAX_FIT_SHRINK = 1 / 0.75;
const NODE_W = 156;
const NODE_H = 58;
const GAP_X = 56;
const GAP_Y = 26;

/** Lay out `graph` and draw it into `box`; `onSelect(nodeId)` on click or Enter. */
function drawGraph(box, graph, onSelect) {
  const nodes = graph.nodes.map((n) => ({ ...n, layer: 0, order: 0, ins: [], outs: [] }));
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const edge of graph.edges) {
    const from = byId.get(edge.from);
    const to = byId.get(edge.to);
    if (from && to) {
      from.outs.push(to);
      to.ins.push(from);
    }
  }
  // Layer: the longest path from a source (Kahn's order, so each node once).
  const waiting = new Map(nodes.map((n) => [n, n.ins.length]));
  const queue = nodes.filter((n) => n.ins.length === 0);
  while (queue.length) {
    const node = queue.shift();
    for (const next of node.outs) {
      next.layer = Math.max(next.layer, node.layer + 1);
      waiting.set(next, waiting.get(next) - 1);
      if (waiting.get(next) === 0) queue.push(next);
    }
  }
  const layers = [];
  for (const node of nodes) (layers[node.layer] ||= []).push(node);
  // Order within a layer by the mean position of a node's parents, to uncross edges.
  layers.forEach((layer, i) => {
    if (i > 0) {
      for (const node of layer) {
        node.weight = node.ins.length ? node.ins.reduce((sum, p) => sum + p.order, 0) / node.ins.length : 0;
      }
      layer.sort((a, b) => a.weight - b.weight);
    }
    layer.forEach((node, order) => (node.order = order));
  });
  const tallest = Math.max(1, ...layers.map((l) => l.length));
  for (const layer of layers) {
    const offset = ((tallest - layer.length) * (NODE_H + GAP_Y)) / 2;
    for (const node of layer) {
      node.x = 20 + node.layer * (NODE_W + GAP_X);
      node.y = 20 + offset + node.order * (NODE_H + GAP_Y);
    }
  }
  const width = 40 + layers.length * (NODE_W + GAP_X) - GAP_X;
  const height = 40 + tallest * (NODE_H + GAP_Y) - GAP_Y;

  const root = svg("svg", { role: "group", "aria-label": "Execution graph: Tab to a node, Enter to open it, arrows to move along edges", id: "graph-svg" });
  const edges = svg("g", { class: "edges" });
  const layer = svg("g", { class: "nodes" });
  root.append(
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#8c959f" }))),
    edges,
    layer,
  );
  for (const edge of graph.edges) {
    const from = byId.get(edge.from);
    const to = byId.get(edge.to);
    if (!from || !to) continue;
    const [x1, y1, x2, y2] = [from.x + NODE_W, from.y + NODE_H / 2, to.x, to.y + NODE_H / 2];
    const bend = Math.max(24, (x2 - x1) / 2);
    edges.append(
      svg("path", { class: "edge", d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)", "data-from": edge.from, "data-to": edge.to }),
    );
    if (edge.on && edge.on !== "success") {
      edges.append(svg("text", { class: "edge-label", x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, edge.on));
    }
  }
  const shapes = new Map();
  for (const node of nodes) {
    const kind = node.kind === "app" ? node.app : node.kind === "playbook" ? `playbook ${node.app}` : node.kind === "operator" ? `${node.app} (operator)` : node.kind;
    const state = svg("text", { class: "state", x: 10, y: 50 }, "");
    const group = svg(
      "g",
      { class: "node s-grey", tabindex: -1, role: "button", transform: `translate(${node.x} ${node.y})`, "data-node": node.id },
      svg("rect", { width: NODE_W, height: NODE_H }),
      svg("text", { x: 10, y: 18, "font-weight": 600 }, clip(node.id, 22)),
      svg("text", { x: 10, y: 34, class: "kind" }, clip(`${kind}${node.for_each ? " ⟳ each" : ""}`, 24)),
      state,
    );
    group.addEventListener("click", () => onSelect(node.id));
    group.addEventListener("keydown", (e) => {
      const move = (target) => {
        if (!target) return;
        rove(target.id);
        shapes.get(target.id).group.focus();
      };
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        onSelect(node.id);
      } else if (e.key === "ArrowRight") move(node.outs[0]);
      else if (e.key === "ArrowLeft") move(node.ins[0]);
      else if (e.key === "ArrowDown") move(layers[node.layer][node.order + 1]);
      else if (e.key === "ArrowUp") move(layers[node.layer][node.order - 1]);
      else return;
      e.preventDefault();
    });
    shapes.set(node.id, { group, state, node });
    layer.append(group);
  }
  box.replaceChildren(root);
  // One Tab stop for the whole graph (the selected node, else the first); arrows move.
  const rove = (nodeId) => {
    for (const shape of shapes.values()) shape.group.tabIndex = shape.node.id === nodeId ? 0 : -1;
  };
  if (nodes.length) rove(nodes[0].id);

  // The view box is the camera: zoom scales it, dragging moves it.
  let view = { x: 0, y: 0, w: width, h: height };
  const apply = () => root.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  // A small graph is drawn at its size (never blown up), a large one scaled to fit, but
  // never so small that its words cannot be read: past that, Fit shows the part around
  // the selected node (else the start) and says how to see the rest.
  box.style.height = `${Math.min(Math.max(height + 24, 240), Math.round(window.innerHeight * 0.6))}px`;
  const hint = el("p", { class: "muted graph-hint", id: "graph-hint", hidden: true }, "");
  box.after(hint);
  let focus = null;
  const fit = () => {
    const [bw, bh] = [Math.max(box.clientWidth, 1), Math.max(box.clientHeight, 1)];
    const whole = Math.max(1, width / bw, height / bh);
    const scale = Math.min(whole, MAX_FIT_SHRINK);
    const [w, h] = [bw * scale, bh * scale];
    const centre = whole > scale && focus ? shapes.get(focus)?.node : null;
    // Within the graph where it is larger than the view, centred where it is not.
    const clamp = (at, size, total) => (size >= total ? (total - size) / 2 : Math.min(Math.max(at, 0), total - size));
    view = centre
      ? { x: clamp(centre.x + NODE_W / 2 - w / 2, w, width), y: clamp(centre.y + NODE_H / 2 - h / 2, h, height), w, h }
      : { x: whole > scale ? 0 : (width - w) / 2, y: (height - h) / 2, w, h };
    hint.hidden = whole <= scale;
    hint.textContent = hint.hidden ? "" : `Part of the graph (${nodes.length} nodes) is shown, so that it stays readable: drag to move, − or the wheel to zoom out.`;
    apply();
  };
  const zoom = (factor) => {
    const cx = view.x + view.w / 2;
    const cy = view.y + view.h / 2;
    view = { w: view.w * factor, h: view.h * factor, x: cx - (view.w * factor) / 2, y: cy - (view.h * factor) / 2 };
    apply();
  };
  root.addEventListener("wheel", (e) => {
    e.preventDefault();
    zoom(e.deltaY > 0 ? 1.1 : 1 / 1.1);
  }, { passive: false });
  let drag = null;
  root.addEventListener("pointerdown", (e) => {
    if (e.target.closest(".node")) return;
    drag = { x: e.clientX, y: e.clientY, view: { ...view } };
    root.setPointerCapture(e.pointerId);
  });
  root.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const scale = view.w / root.clientWidth;
    view = { ...drag.view, x: drag.view.x - (e.clientX - drag.x) * scale, y: drag.view.y - (e.clientY - drag.y) * scale };
    apply();
  });
  root.addEventListener("pointerup", () => (drag = null));
  fit();

  return {
    fit,
    zoom,
    /** Colour and label each node by `statusOf(nodeId)`, with `countOf(nodeId)` (a
     *  `for_each` node's `3 of 4`) after the status word. */
    paint(statusOf, countOf = () => "") {
      for (const { group, state, node } of shapes.values()) {
        const status = statusOf(node.id);
        const count = countOf(node.id);
        const cls = statusClass(status);
        group.setAttribute("class", `node ${cls}${group.classList.contains("selected") ? " selected" : ""}`);
        group.setAttribute("data-status", status);
        const items = count ? `, ${count} items succeeded` : "";
        group.setAttribute("aria-label", `${node.id}, ${node.kind}${node.app ? ` ${node.app}` : ""}: ${statusWord(status)}${items}`);
        const icon = { "s-ok": "✔", "s-partial": "◐", "s-failed": "✖", "s-killed": "■", "s-running": "◌" }[cls] || "○";
        state.textContent = `${icon} ${statusWord(status)}${count ? ` · ${count}` : ""}`;
        state.setAttribute("data-items", count);
      }
    },
    mark(nodeId) {
      // The first node marked is the one Fit shows when the whole cannot be read.
      if (focus === null && shapes.has(nodeId)) {
        focus = nodeId;
        fit();
      }
      for (const { group, node } of shapes.values()) {
        group.classList.toggle("selected", node.id === nodeId);
        if (node.id === nodeId) group.setAttribute("aria-current", "true");
        else group.removeAttribute("aria-current");
      }
      if (shapes.has(nodeId)) rove(nodeId);
    },
  };
}

function clip(text, length) {
  const value = String(text ?? "");
  return value.length > length ? `${value.slice(0, length - 1)}…` : value;
}

// ---------------------------------------------------------------------------------
// The details of a node: facts, and the tabs Inputs, Outputs, App Logs and OS Logs.

let tab = "inputs";

function renderNodeDetails(pane, record, states, nodeId, iteration, setIteration) {
  const node = nodeId && (record.graph?.nodes || []).find((n) => n.id === nodeId);
  if (!node) {
    pane.replaceChildren(el("h2", {}, "Execution details"), el("p", { class: "muted" }, "Select a node in the graph (click it, or Tab to it and press Enter) to see its inputs, outputs and logs."));
    return;
  }
  const state = states.get(nodeId) || {};
  const status = nodeStatus(record, states, nodeId);
  const steps = (record.steps || []).filter((s) => s.node === nodeId);
  const iterations = lastAttempts(steps);
  const index = Math.min(iteration, Math.max(0, iterations.length - 1));
  const step = iterations[index];
  const attempts = step ? steps.filter((s) => (s.iteration ?? 0) === (step.iteration ?? 0)) : [];
  const started = step?.started_at || state.started_at;
  const duration = node.for_each ? state.duration_us : step?.report?.duration_us ?? state.duration_us;
  const error = step?.report?.error || state.error;
  const type = { app: "App", operator: "Operator", trigger: "Trigger", playbook: "Playbook (sub-playbook)" }[node.kind] || node.kind;
  const facts = [
    ["Name", node.id],
    ["Type", `${type}${node.for_each ? ", for each item" : ""}`],
  ];
  if (node.app) facts.push([node.kind === "playbook" ? "Playbook" : "App / action", node.kind === "playbook" ? node.app : `${node.app} / ${node.action}`]);
  facts.push(["Status", badge(status)]);
  facts.push(["Started", time(started)]);
  facts.push(["Ended", started && duration !== undefined && !running(status) ? time(new Date(new Date(started).getTime() + duration / 1000)) : "—"]);
  facts.push(["Elapsed", elapsed(duration)]);
  facts.push(["Log level", record.log_level]);
  if (state.pathway || step?.report?.pathway) facts.push(["Pathway", state.pathway || step.report.pathway]);
  if (attempts.length > 1) facts.push(["Attempts", `${attempts.length} (the last is shown)`]);
  if (error) facts.push(["Message", `${error.kind ? `${error.kind}: ` : ""}${error.message || ""}`]);

  const actions = el("div", { class: "toolbar" });
  const child = step?.child || (state.children || [])[index];
  // A child execution is stored with its parent's record, when the parent ends.
  if (child && running(record.status)) actions.append(el("span", { class: "muted", id: "child-later" }, `Child execution ${child}: viewable when this one ends.`));
  else if (child) actions.append(el("a", { href: `#/executions/${encodeURIComponent(child)}`, id: "open-child" }, "View child execution →"));
  // Replay runs the step again on its logged input: offered only where there is one.
  const replayable = step?.capture?.data && step.input !== null && step.input !== undefined && !(step.capture.truncated || []).includes("input");
  if (replayable && !running(record.status) && node.kind !== "trigger" && node.kind !== "playbook") {
    actions.append(
      el("button", {
        type: "button",
        id: "replay",
        onclick: async (e) => {
          e.target.disabled = true;
          const query = step.iteration === null || step.iteration === undefined ? "" : `?iteration=${step.iteration}`;
          try {
            const started = await api(`/api/v1/executions/${encodeURIComponent(record.id)}/steps/${encodeURIComponent(nodeId)}/replay${query}`, { method: "POST" });
            location.hash = `#/executions/${encodeURIComponent(started.execution_id)}`;
          } catch (failure) {
            e.target.disabled = false;
            alertIn(actions, failure.message);
          }
        },
      }, "Replay this step"),
    );
  }

  const stepper = iterations.length > 1 || node.for_each
    ? el(
        "div",
        { class: "iterations", role: "group", "aria-label": "Iterations", id: "iterations" },
        el("button", { type: "button", id: "iteration-previous", "aria-label": "Previous iteration", disabled: index === 0, onclick: () => setIteration(index - 1) }, "‹"),
        el("span", { id: "iteration-index", "aria-live": "polite" }, iterations.length ? `Iteration ${(step.iteration ?? 0) + 1} of ${iterations.length}` : "No iterations"),
        step ? badge(step.report.status === "succeeded" ? "Succeeded" : statusWordOfStep(step)) : null,
        el("button", { type: "button", id: "iteration-next", "aria-label": "Next iteration", disabled: index >= iterations.length - 1, onclick: () => setIteration(index + 1) }, "›"),
      )
    : null;

  const tabs = [
    ["inputs", "Inputs", () => inputsPanel(record, node, step)],
    ["outputs", "Outputs", () => outputsPanel(record, node, step, state)],
    ["logs", "App Logs", () => logsPanel(record, node, step)],
    ["oslogs", "OS Logs", () => osLogsPanel(record, node, step)],
  ];
  const panel = el("div", { role: "tabpanel", id: "tab-panel", tabindex: 0 });
  const list = el("div", { role: "tablist", "aria-label": "Step details" });
  const show = (name, focus = false) => {
    tab = name;
    for (const button of list.children) {
      const on = button.dataset.tab === name;
      button.setAttribute("aria-selected", String(on));
      button.tabIndex = on ? 0 : -1;
      if (on && focus) button.focus();
    }
    panel.setAttribute("aria-labelledby", `tab-${name}`);
    panel.replaceChildren(tabs.find(([n]) => n === name)[2]());
  };
  for (const [name, label] of tabs) {
    list.append(
      el("button", {
        role: "tab",
        type: "button",
        id: `tab-${name}`,
        "data-tab": name,
        "aria-controls": "tab-panel",
        onclick: () => show(name),
        onkeydown: (e) => {
          const at = tabs.findIndex(([n]) => n === name);
          if (e.key === "ArrowRight") show(tabs[(at + 1) % tabs.length][0], true);
          else if (e.key === "ArrowLeft") show(tabs[(at + tabs.length - 1) % tabs.length][0], true);
          else return;
          e.preventDefault();
        },
      }, label),
    );
  }
  pane.replaceChildren(
    ...[
      el("h2", {}, "Execution details"),
      el("dl", { class: "facts", id: "node-facts" }, facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      actions,
      stepper,
      list,
      panel,
    ].filter(Boolean),
  );
  show(tab);
}

function statusWordOfStep(step) {
  return { failed: "Failed", timed_out: "TimedOut", killed: "Killed", succeeded: "Succeeded" }[step.report.status] || step.report.status;
}

/** Whether the execution's level keeps inputs, outputs, stdout and stderr. */
function capturesData(record) {
  return record.log_level === "debug" || record.log_level === "trace";
}

/** Why nothing was captured at this execution's level. */
function notCaptured(record, what) {
  return el(
    "p",
    { class: "notice", "data-empty": "not-captured" },
    `${what} were not recorded: this execution ran at log level ${record.log_level.toUpperCase()}, and wasp keeps step inputs and outputs only at DEBUG and TRACE (they may hold sensitive data). Run it again at debug to see them.`,
  );
}

function inputsPanel(record, node, step) {
  if (node.kind === "trigger") return el("p", { class: "notice", "data-empty": "trigger" }, "Trigger inputs not available: a trigger takes no inputs. Its payload is under Outputs.");
  if (!step) return el("p", { class: "notice", "data-empty": "not-run" }, running(record.status) ? "The execution is still running: each step's inputs appear here when it ends." : "This step did not run, so it has no inputs.");
  if (step.input === null || step.input === undefined) return step.capture?.data ? el("p", { class: "muted" }, "This step had no input.") : notCaptured(record, "Inputs");
  return jsonView(step.input, `${record.id}-${node.id}-input.json`);
}

function outputsPanel(record, node, step, state) {
  if (node.kind === "trigger") {
    if (record.trigger === null || record.trigger === undefined) return notCaptured(record, "The trigger payload and outputs");
    return jsonView(record.trigger, `${record.id}-trigger.json`);
  }
  if (!step) {
    if (state.output !== null && state.output !== undefined) return jsonView(state.output, `${record.id}-${node.id}-output.json`);
    return el("p", { class: "notice", "data-empty": "not-run" }, running(record.status) ? "The execution is still running: each step's outputs appear here when it ends." : "This step did not run, so it has no outputs.");
  }
  const output = step.report.output;
  if (output === null || output === undefined) {
    if (step.report.error) return el("p", { class: "notice" }, `No output: the step failed (${step.report.error.kind}: ${step.report.error.message}).`);
    return step.capture?.data ? el("p", { class: "muted" }, "This step returned no output.") : notCaptured(record, "Outputs");
  }
  return jsonView(output, `${record.id}-${node.id}-output.json`);
}

/** Pretty JSON; past LIMIT characters, the start of it and a download of the whole. */
const LIMIT = 100_000;
function jsonView(value, file) {
  const text = JSON.stringify(value, null, 2);
  if (text.length <= LIMIT) return el("pre", { class: "json" }, text);
  return el(
    "div",
    {},
    el(
      "p",
      { class: "notice", id: "truncated" },
      `Showing the first ${size(LIMIT)} of ${size(new Blob([text]).size)}. `,
      el("button", { type: "button", id: "download-whole", onclick: () => saveBlob(new Blob([text], { type: "application/json" }), file) }, "Download it whole"),
    ),
    el("pre", { class: "json" }, `${text.slice(0, LIMIT)}\n…`),
  );
}

const LOG_PAGE = 500;

function logsPanel(record, node, step) {
  const box = el("div");
  if (node.kind === "trigger") {
    box.append(el("p", { class: "notice", "data-empty": "trigger" }, "A trigger has no app logs."));
    return box;
  }
  if (running(record.status)) {
    box.append(el("p", { class: "notice", id: "logs-running" }, "The execution is still running: these are the lines of the steps that have ended; open this tab again for more."));
  }
  const level = el("select", { id: "log-level", "aria-label": "Lowest level shown" }, ["trace", "debug", "info", "warn", "error"].map((l) => el("option", { value: l }, l)));
  const search = el("input", { id: "log-search", type: "search", placeholder: "Search the messages", "aria-label": "Search the messages" });
  const rows = el("tbody");
  const counter = el("span", { class: "muted", id: "log-count", "aria-live": "polite" });
  const more = el("button", { type: "button", id: "log-more", hidden: true }, "Show more");
  const query = (offset) => {
    const q = new URLSearchParams({ node: node.id, level: level.value, limit: LOG_PAGE, offset });
    if (search.value.trim()) q.set("q", search.value.trim());
    if (node.for_each && step && step.iteration !== null && step.iteration !== undefined) q.set("iteration", step.iteration);
    return q;
  };
  let shown = 0;
  let asked = 0;
  const load = async (offset) => {
    const mine = ++asked;
    more.disabled = true;
    let page;
    try {
      page = await api(`/api/v1/executions/${encodeURIComponent(record.id)}/logs?${query(offset)}`);
    } catch (e) {
      if (mine === asked) counter.textContent = e.message;
      return;
    } finally {
      more.disabled = false;
    }
    // A later search or page has been asked for: this answer is stale.
    if (mine !== asked) return;
    if (offset === 0) rows.replaceChildren();
    for (const line of page.data) {
      const fields = line.fields && Object.keys(line.fields).length ? ` ${JSON.stringify(line.fields)}` : "";
      rows.append(el("tr", {}, el("td", { class: "ts mono" }, line.ts), el("td", { class: `level ${line.level}` }, line.level), el("td", { class: "mono" }, `${line.message}${fields}`)));
    }
    shown = offset + page.data.length;
    const term = search.value.trim();
    counter.textContent = page.count
      ? `${shown} of ${page.count} lines`
      : term
        ? `No log line at ${level.value.toUpperCase()} or above matches “${term}”.`
        : `No log lines at ${level.value.toUpperCase()} or above.`;
    more.hidden = shown >= page.count;
  };
  level.value = "trace";
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => load(0), 250);
  });
  level.addEventListener("change", () => load(0));
  more.addEventListener("click", () => load(shown));
  box.append(
    el(
      "div",
      { class: "toolbar" },
      el("label", { for: "log-level", class: "inline" }, "Level"),
      level,
      search,
      el("button", {
        type: "button",
        id: "log-csv",
        onclick: () => {
          const q = query(0);
          q.delete("limit");
          q.delete("offset");
          q.set("format", "csv");
          downloadPath(`/api/v1/executions/${encodeURIComponent(record.id)}/logs?${q}`, `${record.id}-${node.id}-logs.csv`);
        },
      }, "Download CSV"),
    ),
    el("div", { class: "logs-box" }, el("table", { class: "logs", id: "logs" }, el("thead", {}, el("tr", {}, el("th", {}, "Time"), el("th", {}, "Level"), el("th", {}, "Message"))), rows)),
    el("div", { class: "pager" }, more, counter),
  );
  load(0);
  return box;
}

function osLogsPanel(record, node, step) {
  const box = el("div");
  if (!step || node.kind === "trigger") {
    box.append(el("p", { class: "notice", "data-empty": "none" }, "OS Logs not available for this selection."));
    return box;
  }
  const { stdout = "", stderr = "", truncated = {} } = step.report;
  if (!stdout && !stderr && !step.capture?.data) {
    box.append(notCaptured(record, "OS logs (stdout and stderr)"));
  } else if (!stdout && !stderr) {
    box.append(el("p", { class: "notice", "data-empty": "none" }, "OS Logs not available for this selection: the step wrote nothing to stdout or stderr."));
  }
  for (const [name, text, dropped] of [["stdout", stdout, truncated.stdout_bytes_dropped], ["stderr", stderr, truncated.stderr_bytes_dropped]]) {
    if (!text) continue;
    box.append(el("h3", {}, name), el("pre", { class: name }, text.length > LIMIT ? `${text.slice(0, LIMIT)}\n…` : text));
    if (dropped) box.append(el("p", { class: "muted" }, `${size(dropped)} more were cut at the capture limit.`));
  }
  if (!running(record.status)) {
    box.append(
      el("div", { class: "toolbar" }, el("button", { type: "button", id: "download-os-logs", onclick: () => downloadPath(`/api/v1/executions/${encodeURIComponent(record.id)}/oslogs.zip`, `${record.id}-os-logs.zip`) }, "Download all OS logs (ZIP)")),
    );
  }
  return box;
}
