// One instance: status, input/output/custom status, failures, timeline, inbox, children, history, actions.
import { actionBar } from "./actions.js";
import { call, errorText, instancePath } from "./api.js";
import { clear, decoded, el, formatDuration, formatTime, jsonView, parseTime, short, statusBadge } from "./dom.js";
import { renderTimeline } from "./timeline.js";

const EVENT_TYPES = ["ExecutionStarted", "ExecutionCompleted", "ExecutionFailed", "ExecutionTerminated",
  "TaskScheduled", "TaskCompleted", "TaskFailed", "SubOrchestrationInstanceCreated",
  "SubOrchestrationInstanceCompleted", "SubOrchestrationInstanceFailed", "TimerCreated", "TimerFired",
  "OrchestratorStarted", "OrchestratorCompleted", "EventSent", "EventRaised", "ContinueAsNew", "GenericEvent",
  "HistoryState", "ExecutionSuspended", "ExecutionResumed"];
const RUNNING = new Set(["Pending", "Running", "ContinuedAsNew", "Suspended"]);

function section(title, ...children) {
  return el("section", { class: "panel" }, el("h2", {}, title), children);
}

function link(id) {
  return el("a", { href: "#/instance/" + encodeURIComponent(id), class: "mono" }, id);
}

function failures(status, details) {
  const items = [];
  if (status.runtimeStatus === "Failed") {
    const output = status.output;
    const text = typeof output === "string" ? output : JSON.stringify(output);
    const nondeterminism = /non-deterministic/i.test(text || "");
    items.push(el("div", { class: "failure" + (nondeterminism ? " nondeterminism" : ""), id: "instance-failure" },
      el("b", {}, nondeterminism ? "Non-determinism detected" : "The orchestration failed"),
      el("pre", { class: "json" }, text)));
  }
  for (const task of details.tasks.filter((t) => t.state === "failed")) {
    items.push(el("div", { class: "failure task" },
      el("b", {}, `${task.name} (task ${task.taskId}${task.retry ? `, attempt ${task.retry.attempt}` : ""}) failed`),
      el("div", {}, task.reason || ""),
      task.details ? el("details", {}, el("summary", {}, "details"), el("pre", { class: "json" }, task.details)) : null));
  }
  return items.length ? section("Failures", items) : null;
}

function historyEventDetail(e, scheduled) {
  const parts = [];
  const origin = e.TaskScheduledId !== undefined ? scheduled.get(e.TaskScheduledId) : undefined;
  if (e.Name) parts.push(e.Name);
  if (origin) parts.push(`${origin.Name || ""} (task ${e.TaskScheduledId})`);
  if (e.TimerId !== undefined && e.EventType === 11) parts.push(`timer ${e.TimerId}`);
  if (e.FireAt) parts.push(`fires ${formatTime(e.FireAt)}`);
  if (e.InstanceId) parts.push(`instance ${e.InstanceId}`);
  if (e.Reason) parts.push(e.Reason);
  return parts.join(" · ");
}

function historyTable(details) {
  const scheduled = new Map(details.history.filter((e) => [4, 7].includes(e.EventType)).map((e) => [e.EventId, e]));
  const t0 = parseTime(details.history[0]?.Timestamp);
  const rows = details.history.map((e, i) => {
    const payload = e.Result ?? e.Input ?? e.Details;
    const episode = e.EventType === 12 || e.EventType === 13;
    return el("tr", { class: episode ? "episode" : "", dataset: { type: EVENT_TYPES[e.EventType] || String(e.EventType) } },
      el("td", {}, String(i)),
      el("td", { class: "mono" }, formatTime(e.Timestamp)),
      el("td", { class: "mono right" }, "+" + formatDuration(parseTime(e.Timestamp) - t0)),
      el("td", {}, EVENT_TYPES[e.EventType] || String(e.EventType)),
      el("td", { class: "right" }, e.EventId >= 0 ? String(e.EventId) : ""),
      el("td", {}, historyEventDetail(e, scheduled)),
      el("td", { class: "mono" }, payload === undefined || payload === null ? ""
        : el("details", {}, el("summary", {}, short(decoded(payload), 160)), jsonView(decoded(payload)))));
  });
  const toggle = el("input", { type: "checkbox", id: "show-episodes" });
  const table = el("table", { class: "grid history hide-episodes", id: "history" },
    el("thead", {}, el("tr", {}, ["#", "Timestamp", "Offset", "Event", "Id", "Detail", "Input / result"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
  toggle.addEventListener("change", () => table.classList.toggle("hide-episodes", !toggle.checked));
  return section(`History (${details.history.length} events)`,
    el("label", { class: "inline" }, toggle, "show OrchestratorStarted/Completed (one pair per episode)"), table);
}

function inbox(details) {
  if (!details.inbox.length) return null;
  return section(`Waiting in the inbox (${details.inbox.length})`,
    el("table", { class: "grid", id: "inbox" },
      el("thead", {}, el("tr", {}, ["Event", "Raised", "Idempotency-Key", "Payload"].map((h) => el("th", {}, h)))),
      el("tbody", {}, details.inbox.map((e) => el("tr", {},
        el("td", {}, e.name), el("td", { class: "mono" }, formatTime(e.raisedTime)),
        el("td", { class: "mono" }, e.idempotencyKey || ""), el("td", {}, jsonView(e.input)))))));
}

function children(details) {
  const ids = [...new Set(details.tasks.filter((t) => t.childInstanceId).map((t) => t.childInstanceId))];
  if (!ids.length) return null;
  return section("Sub-orchestrations", el("ul", { id: "children" }, ids.map((id) => el("li", {}, link(id)))));
}

export function renderDetail(main, id, live) {
  let shown = null; // the answers on screen: a refresh that brings nothing new leaves the page alone
  let runtimeStatus = null;
  async function load() {
    const [status, details] = await Promise.all([
      call("GET", instancePath(id), { query: { showInput: "true" } }),
      call("GET", instancePath(id) + "/details"),
    ]);
    if (!status.body || typeof status.body !== "object" || !details.ok) {
      const problem = status.status === 404 ? `No instance ${id}.` : errorText(details.ok ? status : details);
      clear(main, el("h1", {}, id), el("p", { class: "notice-inline" }, problem), el("a", { href: "#/" }, "‹ Instances"));
      return;
    }
    const s = status.body;
    const d = details.body;
    runtimeStatus = s.runtimeStatus;
    const seen = JSON.stringify([s, d]);
    if (seen === shown) return;
    shown = seen;
    const started = parseTime(d.history[0]?.Timestamp ?? s.createdTime);
    const end = d.completedTime ? parseTime(d.completedTime) : Date.now();
    clear(main,
      el("p", {}, el("a", { href: "#/" }, "‹ Instances")),
      el("h1", {}, el("span", { class: "mono", id: "instance-id" }, s.instanceId), " ",
         statusBadge(s.runtimeStatus)),
      el("dl", { class: "facts" },
        el("dt", {}, "Orchestrator"), el("dd", {}, s.name),
        d.version ? [el("dt", {}, "Version"), el("dd", { class: "mono", id: "version" }, d.version)] : null,
        el("dt", {}, "Created"), el("dd", { class: "mono" }, formatTime(s.createdTime)),
        el("dt", {}, "Last updated"), el("dd", { class: "mono" }, formatTime(s.lastUpdatedTime)),
        el("dt", {}, d.completedTime ? "Ran for" : "Running for"), el("dd", {}, formatDuration(end - started)),
        el("dt", {}, "Execution"), el("dd", { class: "mono" }, d.executionId),
        d.parentInstanceId ? [el("dt", {}, "Parent"), el("dd", { id: "parent" }, link(d.parentInstanceId))] : null),
      actionBar(id, load),
      failures(s, d),
      el("div", { class: "columns" },
        section("Input", jsonView(decoded(s.input))),
        section("Output", jsonView(s.output)),
        section("Custom status", jsonView(s.customStatus))),
      section("Timeline", renderTimeline(d)),
      inbox(d),
      children(d),
      historyTable(d));
  }
  clear(main, el("p", { class: "muted" }, "Loading…"));
  load();
  live.every(2000, () => (RUNNING.has(runtimeStatus) ? load() : null));
}
