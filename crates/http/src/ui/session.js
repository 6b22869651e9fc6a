// The session view: the node grid, the timeline against the budgets, the
// messages and the controls, kept live from the session's event stream.
// Events are queued and applied once per animation frame, so a burst of
// thousands of node changes costs one redraw.

import { ApiError, follow, request } from "./api.js";
import { NodeGrid, PHASES, describeNode, lookOf } from "./grid.js";
import { progressOf, renderProgress } from "./sessions.js";

const OUT_OF_SERVICE = new Set(["draining", "drained", "booting", "verifying", "resuming", "failing", "releasing"]);
const FINISHED = new Set(["done", "failed", "skipped", "reverted"]);
/** Session events after which the status (counts, phase, messages) is re-read. */
const STATUS_EVENTS = new Set(["state", "paused", "resumed", "halted", "gated", "gates_cleared", "message", "step_started", "step_finished", "deleted", "gap"]);
const SVG = "http://www.w3.org/2000/svg";

/** Shows session `upgradeId`; returns what to do when leaving it. */
export function showSession(upgradeId, context) {
  const view = new SessionView(upgradeId, context);
  view.start();
  return () => view.stop();
}

class SessionView {
  constructor(upgradeId, context) {
    this.upgradeId = upgradeId;
    this.context = context;
    this.abort = new AbortController();
    this.nodes = new Map();
    this.queue = [];
    // Node events that came while the nodes were being read (see `load`),
    // and how many reads are in flight.
    this.held = [];
    this.loading = 0;
    this.frame = 0;
    this.status = null;
    this.latest = 0;
    this.statusTimer = null;
    this.statusPending = false;
    this.timelineAt = 0;
    // How the page keeps up with the events, for the Performance panel and
    // the browser tests (window.crusDashboard): frames that applied events,
    // events applied, the most applied in one frame and the longest frame.
    this.keepingUp = { frames: 0, events: 0, largestBatch: 0, longestFrameMs: 0 };
    window.crusDashboard = this.keepingUp;
    this.grid = new NodeGrid(document.getElementById("grid"), document.getElementById("tooltip"), (node) => describeNode(node));
    this.controls = {
      pause: document.getElementById("pause"),
      resume: document.getElementById("resume"),
      delete: document.getElementById("delete"),
    };
    this.onPause = () => this.command("pause");
    this.onResume = () => this.command("resume");
    this.onDelete = () => this.confirmDelete();
    this.onResize = () => this.relayout();
  }

  start() {
    document.getElementById("session-title").textContent = this.upgradeId;
    document.getElementById("session-error").textContent = "";
    document.getElementById("messages").replaceChildren();
    document.getElementById("timeline").replaceChildren();
    renderLegend(new Map());
    this.controls.pause.addEventListener("click", this.onPause);
    this.controls.resume.addEventListener("click", this.onResume);
    this.controls.delete.addEventListener("click", this.onDelete);
    window.addEventListener("resize", this.onResize);
    // The stream is opened before the nodes are read; events older than a
    // node's record are ignored when applied, so none is lost or replayed.
    follow(`session/${this.upgradeId}/events`, {
      signal: this.abort.signal,
      onMessage: (message) => this.enqueue(message),
      onStatus: (text) => this.context.setConnection(`events: ${text}`),
      onEnd: () => this.context.setConnection("events: session finished"),
      onAuthError: (error) => this.context.onAuthError(error),
    });
    this.load();
  }

  stop() {
    this.abort.abort();
    cancelAnimationFrame(this.frame);
    clearTimeout(this.statusTimer);
    this.controls.pause.removeEventListener("click", this.onPause);
    this.controls.resume.removeEventListener("click", this.onResume);
    this.controls.delete.removeEventListener("click", this.onDelete);
    window.removeEventListener("resize", this.onResize);
    this.context.setConnection("");
  }

  // Reads the session and its nodes. Node events that arrive meanwhile are
  // held, not applied: the records read may be older than them (the server
  // read the nodes before it sent them), and would undo them. Once the
  // records are in, the held events are applied after them; those the
  // records already hold are skipped (see `applyPhase`).
  async load() {
    this.loading += 1;
    try {
      const [status, nodes] = await Promise.all([
        request("GET", `session/${this.upgradeId}`),
        request("GET", `session/${this.upgradeId}/nodes`),
      ]);
      for (const node of nodes) {
        node.loaded = true;
        this.nodes.set(node.id, node);
        this.notice(node.since);
        this.notice(node.finished_at);
      }
      this.setStatus(status);
      this.relayout();
      // When the session's nodes were first drawn, from the page's start.
      performance.mark("crus-session-drawn", { detail: { nodes: this.nodes.size } });
    } catch (error) {
      this.fail(error);
    } finally {
      this.loading -= 1;
      if (this.loading === 0 && this.held.length > 0) {
        this.queue = this.held.concat(this.queue);
        this.held = [];
      }
      this.schedule();
    }
  }

  fail(error) {
    if (error instanceof ApiError && error.status === 401) {
      this.context.onAuthError(error);
      return;
    }
    const text = error instanceof ApiError && error.status === 404
      ? "This session does not exist (it may have been deleted)."
      : error.message;
    document.getElementById("session-error").textContent = text;
  }

  /** Remembers the newest time the rollout's clock was seen at (the simulator's runs ahead of ours). */
  notice(time) {
    if (time) this.latest = Math.max(this.latest, Date.parse(time));
  }

  enqueue(message) {
    this.queue.push(message);
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flush());
  }

  // Applies every queued event, then redraws once.
  flush() {
    const started = performance.now();
    this.frame = 0;
    const queue = this.queue;
    this.queue = [];
    let relayout = false;
    let statusChanged = false;
    let held = 0;
    for (const message of queue) {
      const { event, data } = message;
      if (data && data.at) this.notice(data.at);
      if (event === "node_phase") {
        if (this.loading > 0) {
          this.held.push(message);
          held += 1;
        } else {
          relayout = this.applyPhase(data) || relayout;
        }
      }
      if (STATUS_EVENTS.has(event)) statusChanged = true;
      if (event === "gap") this.load();
      if (event === "message") appendMessage(data.text);
    }
    if (statusChanged) this.readStatus();
    if (relayout) {
      this.relayout();
    } else {
      this.grid.draw();
      this.grid.refreshTooltip();
    }
    this.renderCounts();
    // The timeline is O(nodes); at most a few times a second.
    const now = performance.now();
    if (now - this.timelineAt > 300 || queue.length === 0) {
      this.timelineAt = now;
      this.renderTimeline();
    } else {
      this.schedule();
    }
    // Events held for a read in flight are counted when they are applied.
    const applied = queue.length - held;
    if (applied > 0) {
      const stats = this.keepingUp;
      stats.frames += 1;
      stats.events += applied;
      stats.largestBatch = Math.max(stats.largestBatch, applied);
      stats.longestFrameMs = Math.max(stats.longestFrameMs, performance.now() - started);
    }
  }

  // One node_phase event; true when the node was not known (the grid must be laid out again).
  applyPhase(data) {
    const known = this.nodes.get(data.node);
    // A record read from the server already holds every transition up to its
    // `since`, including those in that same millisecond (drained and booting
    // often share one): only later events are news. Events apply in order.
    if (known) {
      const since = Date.parse(known.since);
      const at = Date.parse(data.at);
      if (known.loaded ? at <= since : at < since) return false;
    }
    const node = known || { id: data.node, attempts: 0, reason: null, taken_at: null, finished_at: null };
    // A boot counts when the node enters booting, not when it was already there.
    if (data.to === "booting" && node.phase !== "booting") node.attempts += 1;
    node.phase = data.to;
    node.since = data.at;
    node.loaded = false;
    if (data.from === "pending" && !node.taken_at) node.taken_at = data.at;
    if (FINISHED.has(data.to)) node.finished_at = data.at;
    if (data.reason) node.reason = data.reason;
    this.nodes.set(node.id, node);
    return !known;
  }

  // Re-reads the status soon, at most one request at a time.
  readStatus() {
    if (this.statusPending) return;
    this.statusPending = true;
    this.statusTimer = setTimeout(async () => {
      try {
        this.setStatus(await request("GET", `session/${this.upgradeId}`));
      } catch (error) {
        this.fail(error);
      } finally {
        this.statusPending = false;
      }
    }, 100);
  }

  setStatus(status) {
    this.status = status;
    this.notice(status.finished_at);
    document.getElementById("session-state").textContent = `state ${status.state}`;
    document.getElementById("session-phase").textContent = `phase ${status.phase || "unknown"}`;
    const finished = status.completed || status.state === "DELETING";
    this.controls.pause.disabled = finished || status.phase === "paused" || status.phase === "halted";
    this.controls.resume.disabled = finished || !(status.phase === "paused" || status.phase === "halted");
    const text = renderProgress(document.getElementById("session-progress"), progressOf(status));
    const budget = failureBudget(status);
    document.getElementById("session-summary").textContent =
      `${status.starting_label} → template ${status.upgrade_template_id}; steps of at most ${status.upgrade_step_size}; ` +
      `failure budget ${budget === null ? "none" : budget}; ${text}.`;
    renderGateHold(document.getElementById("gate-hold"), status.gate_hold, Date.now());
    renderRevert(document.getElementById("revert"), status.reverting);
    const messages = document.getElementById("messages");
    messages.replaceChildren(...(status.messages || []).map((line) => {
      const item = document.createElement("li");
      item.textContent = line;
      return item;
    }));
    this.renderTimeline();
  }

  relayout() {
    const wrap = document.querySelector(".grid-wrap");
    this.grid.layout([...this.nodes.values()], wrap.clientWidth - 4);
    this.renderCounts();
  }

  renderCounts() {
    const counts = new Map();
    for (const node of this.nodes.values()) counts.set(lookOf(node), (counts.get(lookOf(node)) || 0) + 1);
    renderLegend(counts);
  }

  async command(name) {
    document.getElementById("session-error").textContent = "";
    try {
      this.setStatus(await request("POST", `session/${this.upgradeId}/${name}`));
    } catch (error) {
      this.fail(error);
    }
  }

  confirmDelete() {
    const dialog = document.getElementById("confirm-delete");
    dialog.returnValue = "";
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "delete") return;
      try {
        await request("DELETE", `session/${this.upgradeId}`);
        window.location.hash = "#/";
      } catch (error) {
        this.fail(error);
      }
    }, { once: true });
    dialog.showModal();
    document.getElementById("confirm-cancel").focus();
  }

  // Nodes out of service against the step budget, and failures against the
  // failure budget, over the rollout's clock, rebuilt from the node records.
  renderTimeline() {
    const svg = document.getElementById("timeline");
    const status = this.status;
    if (!status) return;
    const changes = [];
    const failures = [];
    let start = status.started_at ? Date.parse(status.started_at) : Infinity;
    for (const node of this.nodes.values()) {
      if (node.taken_at) {
        const taken = Date.parse(node.taken_at);
        start = Math.min(start, taken);
        changes.push([taken, 1]);
        if (node.finished_at) changes.push([Date.parse(node.finished_at), -1]);
      }
      if (node.phase === "failed" && node.finished_at) failures.push(Date.parse(node.finished_at));
    }
    const end = Math.max(this.latest, start + 1000);
    if (!Number.isFinite(start)) start = end - 60000;
    changes.sort((a, b) => a[0] - b[0]);
    failures.sort((a, b) => a - b);
    const width = svg.clientWidth || 900;
    const height = 260;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    const left = 44;
    const right = width - 12;
    const x = (time) => left + ((right - left) * (time - start)) / Math.max(end - start, 1);
    const children = [];
    const stepBudget = status.upgrade_step_size;
    const failBudget = failureBudget(status);
    // Top panel: nodes out of service.
    const top = { y0: 24, y1: 140 };
    let peak = stepBudget;
    let level = 0;
    for (const [, delta] of changes) { level += delta; peak = Math.max(peak, level); }
    const yTop = (value) => top.y1 - ((top.y1 - top.y0) * value) / Math.max(peak, 1);
    let path = `M ${x(start)} ${yTop(0)}`;
    level = 0;
    for (const [time, delta] of changes) {
      path += ` L ${x(time)} ${yTop(level)}`;
      level += delta;
      path += ` L ${x(time)} ${yTop(level)}`;
    }
    path += ` L ${x(end)} ${yTop(level)} L ${x(end)} ${yTop(0)} Z`;
    children.push(svgElement("path", { d: path, class: "out" }));
    children.push(svgElement("line", { x1: left, x2: right, y1: yTop(stepBudget), y2: yTop(stepBudget), class: "budget" }));
    children.push(svgText(left, 14, `Out of service: ${level} now (dashed: step budget ${stepBudget})`));
    children.push(svgText(4, yTop(peak) + 4, String(peak)), svgText(4, yTop(0), "0"));
    children.push(svgElement("line", { x1: left, x2: right, y1: top.y1, y2: top.y1, class: "axis" }));
    // Bottom panel: failures so far.
    const bottom = { y0: 170, y1: 236 };
    const failPeak = Math.max(failBudget || 0, failures.length, 1);
    const yBottom = (value) => bottom.y1 - ((bottom.y1 - bottom.y0) * value) / failPeak;
    let failPath = `M ${x(start)} ${yBottom(0)}`;
    failures.forEach((time, index) => {
      failPath += ` L ${x(time)} ${yBottom(index)} L ${x(time)} ${yBottom(index + 1)}`;
    });
    failPath += ` L ${x(end)} ${yBottom(failures.length)}`;
    children.push(svgElement("path", { d: failPath, class: "fails" }));
    if (failBudget !== null) {
      children.push(svgElement("line", { x1: left, x2: right, y1: yBottom(failBudget), y2: yBottom(failBudget), class: "budget" }));
    }
    children.push(svgText(left, 160, `Failed: ${failures.length}` + (failBudget === null ? " (no failure budget)" : ` (dashed: failure budget ${failBudget})`)));
    children.push(svgText(4, yBottom(failPeak) + 4, String(failPeak)), svgText(4, yBottom(0), "0"));
    children.push(svgElement("line", { x1: left, x2: right, y1: bottom.y1, y2: bottom.y1, class: "axis" }));
    const minutes = Math.round((end - start) / 60000);
    children.push(svgText(left, 254, "start"), svgText(right - 150, 254, `${minutes} min of rollout time`));
    svg.replaceChildren(...children);
    svg.setAttribute("aria-label", `${level} nodes out of service of a step budget of ${stepBudget}; ${failures.length} failed`);
  }
}

/** The failure budget as a node count, or null when the session has none. */
function failureBudget(status) {
  const budget = status.policy && status.policy.max_failures;
  if (budget === undefined || budget === null) return null;
  if (typeof budget === "number") return budget;
  const percent = Number(String(budget).replace("%", ""));
  const total = (status.nodes && status.nodes.total) || 0;
  return Math.floor((total * percent) / 100);
}

/** Shows the alert gates' hold, if any: which gates say what, since when, and `max_hold` left. */
function renderGateHold(box, hold, now) {
  box.hidden = !hold;
  if (!hold) {
    box.replaceChildren();
    return;
  }
  const since = Date.parse(hold.since);
  let head = `Held by alert gates since ${hold.since} (${minutes(now - since)})`;
  if (hold.halts_at) {
    const left = Date.parse(hold.halts_at) - now;
    head += `; max_hold halts the session at ${hold.halts_at} (${left > 0 ? `${minutes(left)} left` : "due now"})`;
  }
  head += ". No new node is taken; nodes in flight finish.";
  const list = document.createElement("ul");
  list.replaceChildren(...(hold.reasons || []).map((reason) => {
    const item = document.createElement("li");
    item.textContent = reason;
    return item;
  }));
  box.replaceChildren(document.createTextNode(head), list);
}

/** Shows a halted session's revert of its upgrades, if under way. */
function renderRevert(box, revert) {
  box.hidden = !revert;
  box.textContent = revert
    ? `Reverting since ${revert.since}: the upgraded nodes are booted back to template '${revert.template}' (revert_upgraded_on_halt) because ${revert.reason}.`
    : "";
}

/** A span of milliseconds in whole minutes, for people. */
function minutes(ms) {
  const total = Math.max(0, Math.round(ms / 60000));
  return total < 60 ? `${total} min` : `${Math.floor(total / 60)} h ${total % 60} min`;
}

function renderLegend(counts) {
  const legend = document.getElementById("legend");
  legend.replaceChildren(...PHASES.map(([phase, colour, label]) => {
    const item = document.createElement("li");
    item.dataset.phase = phase;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour;
    const text = document.createElement("span");
    text.textContent = `${label} ${counts.get(phase) || 0}`;
    item.append(swatch, text);
    return item;
  }));
}

function appendMessage(text) {
  const item = document.createElement("li");
  item.textContent = text;
  document.getElementById("messages").append(item);
}

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function svgText(x, y, text) {
  const element = svgElement("text", { x, y });
  element.textContent = text;
  return element;
}
