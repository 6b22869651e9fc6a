// The sessions view: every session with its progress, and the new-session
// form whose preview shows the dry-run plan before anything is started.

import { ApiError, request } from "./api.js";

/** How often the list is re-read while it is on screen. */
const REFRESH_MS = 2000;

const IN_FLIGHT = ["draining", "drained", "booting", "verifying", "resuming", "failing", "releasing"];

/** Shows the sessions view; returns what to do when leaving it. */
export function showSessions(context) {
  let timer = null;
  let left = false;
  const refresh = async () => {
    try {
      const sessions = await request("GET", "session");
      if (!left) {
        renderList(sessions);
        document.getElementById("sessions-error").textContent = "";
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        context.onAuthError(error);
        return;
      }
      document.getElementById("sessions-error").textContent = `Cannot read the sessions: ${error.message}`;
    }
    if (!left) {
      timer = setTimeout(refresh, REFRESH_MS);
    }
  };
  context.setConnection("");
  refresh();
  return () => {
    left = true;
    clearTimeout(timer);
  };
}

/** `{done, failed, flight, total}` of a session status's node counts. */
export function progressOf(status) {
  const counts = status.nodes || {};
  const flight = IN_FLIGHT.reduce((sum, phase) => sum + (counts[phase] || 0), 0);
  return {
    done: counts.done || 0,
    failed: counts.failed || 0,
    flight,
    total: counts.total || 0,
  };
}

/** Fills `element` with a done / failed / in-flight bar of `progress`. */
export function renderProgress(element, progress) {
  element.replaceChildren();
  const total = Math.max(progress.total, 1);
  for (const part of ["done", "failed", "flight"]) {
    const span = document.createElement("span");
    span.className = part;
    span.style.width = `${(100 * progress[part]) / total}%`;
    element.append(span);
  }
  const text = `${progress.done} done, ${progress.failed} failed, ${progress.flight} in flight of ${progress.total}`;
  element.setAttribute("aria-label", text);
  element.title = text;
  return text;
}

/** A short age ("3 min", "2 h") of an RFC 3339 time; the server's clock may run ahead (simulation). */
export function age(since) {
  const seconds = Math.max(0, (Date.now() - Date.parse(since)) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function renderList(sessions) {
  const body = document.getElementById("sessions-body");
  document.getElementById("sessions-empty").hidden = sessions.length > 0;
  document.getElementById("sessions-table").hidden = sessions.length === 0;
  const rows = sessions.map((status) => {
    const row = document.createElement("tr");
    row.dataset.upgradeId = status.upgrade_id;
    const link = document.createElement("a");
    link.href = `#/session/${status.upgrade_id}`;
    link.textContent = status.upgrade_id;
    const id = cell(row, "");
    id.className = "id";
    id.append(link);
    const label = document.createElement("div");
    label.className = "muted";
    label.textContent = `${status.starting_label} → ${status.upgrade_template_id}`;
    id.append(label);
    cell(row, status.state);
    cell(row, status.phase || "");
    const progressCell = cell(row, "");
    const bar = document.createElement("div");
    bar.className = "progress";
    const text = document.createElement("div");
    text.className = "progress-text";
    text.textContent = renderProgress(bar, progressOf(status));
    progressCell.append(bar, text);
    cell(row, String(status.upgrade_step_size));
    const ageCell = cell(row, status.created_at ? age(status.created_at) : "");
    ageCell.title = status.created_at || "";
    return row;
  });
  body.replaceChildren(...rows);
}

function cell(row, text) {
  const element = document.createElement("td");
  element.textContent = text;
  row.append(element);
  return element;
}

// The request body of the form: CRUS's fields, and a policy of the fields filled in.
function bodyOf(form) {
  const data = new FormData(form);
  const text = (name) => String(data.get(name) || "").trim();
  const body = {
    starting_label: text("starting_label"),
    upgrading_label: text("upgrading_label"),
    failed_label: text("failed_label"),
    upgrade_step_size: Number(text("upgrade_step_size") || "0"),
    upgrade_template_id: text("upgrade_template_id"),
    workload_manager_type: text("workload_manager_type"),
  };
  const policy = {};
  for (const name of ["strategy", "order", "spread", "align", "drain_timeout", "on_drain_timeout", "boot_timeout"]) {
    if (text(name)) policy[name] = text(name);
  }
  if (text("step_percent")) policy.step_percent = Number(text("step_percent"));
  if (text("retries")) policy.retries = Number(text("retries"));
  const maxFailures = text("max_failures");
  if (maxFailures) policy.max_failures = /^\d+$/.test(maxFailures) ? Number(maxFailures) : maxFailures;
  if (text("canary_size")) {
    policy.canary = { size: Number(text("canary_size")), pause_after: data.get("canary_pause_after") === "on" };
  }
  if (data.get("escalate_power_cycle") === "on") policy.escalate_power_cycle = true;
  if (Object.keys(policy).length > 0) body.policy = policy;
  return body;
}

function problemText(error) {
  const errors = error.problem && error.problem.errors;
  if (!errors) return error.message;
  const fields = Object.entries(errors).map(([field, messages]) => `${field}: ${messages.join(" ")}`);
  return `${error.message} ${fields.join("; ")}`;
}

function renderPlan(plan) {
  const section = document.getElementById("plan");
  section.replaceChildren();
  const title = document.createElement("h3");
  const range = plan.p10 && plan.p90 ? ` (p10 ${plan.p10}, p90 ${plan.p90})` : "";
  title.textContent = `Plan: ${plan.nodes} nodes in ${plan.steps.length} steps of at most ${plan.step_size}, about ${plan.estimated_duration}${range}`;
  const dominated = document.createElement("p");
  dominated.textContent = plan.dominated_by ? `Dominated by ${plan.dominated_by}.` : "";
  const list = document.createElement("ol");
  list.start = 0;
  for (const step of plan.steps) {
    const item = document.createElement("li");
    const nodes = step.nodes.length > 6
      ? `${step.nodes.slice(0, 3).join(", ")} … ${step.nodes[step.nodes.length - 1]}`
      : step.nodes.join(", ");
    const done = step.done_at_p10 && step.done_at_p90
      ? `, done between ${step.done_at_p10} and ${step.done_at_p90}`
      : "";
    const waits = step.dominated_by ? `; ${step.dominated_by}` : "";
    item.textContent = `Step ${step.step}: ${step.nodes.length} nodes (${nodes})${done}${waits}`;
    list.append(item);
  }
  const rationale = document.createElement("ul");
  for (const line of plan.rationale || []) {
    const item = document.createElement("li");
    item.textContent = line;
    rationale.append(item);
  }
  section.append(title, dominated, list, rationale);
  section.hidden = false;
}

function setUpForm() {
  const form = document.getElementById("new-session");
  const start = document.getElementById("start");
  const error = document.getElementById("form-error");
  // The plan shown is of the form as previewed: any change asks for a new preview.
  form.addEventListener("input", () => {
    start.disabled = true;
    document.getElementById("plan").hidden = true;
  });
  document.getElementById("preview").addEventListener("click", async () => {
    error.textContent = "";
    try {
      const plan = await request("POST", "session?dry_run=true", bodyOf(form));
      renderPlan(plan);
      start.disabled = false;
      start.focus();
    } catch (failure) {
      error.textContent = `Preview refused: ${problemText(failure)}`;
      start.disabled = true;
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (start.disabled) return;
    error.textContent = "";
    start.disabled = true;
    try {
      const status = await request("POST", "session", bodyOf(form));
      document.getElementById("plan").hidden = true;
      window.location.hash = `#/session/${status.upgrade_id}`;
    } catch (failure) {
      error.textContent = `Not started: ${problemText(failure)}`;
    }
  });
}

setUpForm();
