// The Gantt-like timeline of one instance: a row for the orchestration, one per activity, timer or
// sub-orchestration (a retried call is one row: its attempts and the waits between them), and one per
// external event name. Times come from the task rows of GET instances/{id}/details (real start and end
// of each attempt) and from the history's timestamps.
import { el, formatDuration, formatTime, parseTime } from "./dom.js";

const KIND_LABEL = { activity: "activity", timer: "timer", suborchestration: "sub-orchestration",
                     http: "HTTP call" };

// A task's bar: from its start to its end, or to now (running) or to the instance's end (abandoned: a
// timer that lost a race, an attempt the orchestration no longer waited for). A timer's fire time is in
// its tooltip and label, not on the axis: a 72-hour deadline would squash everything else.
function taskSegment(task, until, finished) {
  const start = parseTime(task.scheduledTime);
  const end = parseTime(task.completedTime);
  if (!Number.isNaN(end)) return { start, end, running: false, state: task.state, task };
  return { start, end: Math.max(until, start), running: !finished, state: finished ? "abandoned" : task.state, task };
}

// Rows of tasks: retried calls grouped by their chain (attempts, and the backoff timers between them).
function taskRows(tasks, until, finished) {
  const rows = [];
  const chains = new Map();
  for (const task of tasks) {
    const retry = task.retry;
    if (!retry) {
      rows.push({ name: task.name, kind: task.kind, segments: [{ ...taskSegment(task, until, finished), type: task.kind }],
                  child: task.childInstanceId, tasks: [task] });
      continue;
    }
    let row = chains.get(retry.chainId);
    if (!row) {
      row = { name: task.name, kind: task.kind === "timer" ? "activity" : task.kind, segments: [], tasks: [],
              maxAttempts: retry.maxAttempts, child: null };
      chains.set(retry.chainId, row);
      rows.push(row);
    }
    row.tasks.push(task);
    if (task.kind === "timer") {
      if (!task.finalRetryTimer) row.segments.push({ ...taskSegment(task, until, finished), type: "wait" });
      continue;
    }
    row.kind = task.kind;
    row.child = task.childInstanceId || row.child;
    row.segments.push({ ...taskSegment(task, until, finished), type: "attempt", attempt: retry.attempt });
  }
  return rows;
}

function eventRows(details) {
  const byName = new Map();
  const add = (name, segment) => {
    if (!byName.has(name)) byName.set(name, { name, kind: "event", segments: [], tasks: [] });
    byName.get(name).segments.push(segment);
  };
  for (const e of details.history) {
    if (e.EventType === 15) add(e.Name, { start: parseTime(e.Timestamp), end: parseTime(e.Timestamp),
                                         type: "event", state: "raised" });
    if (e.EventType === 14) add(`→ ${e.Name} (${e.InstanceId})`, { start: parseTime(e.Timestamp),
                                end: parseTime(e.Timestamp), type: "event", state: "sent" });
  }
  for (const e of details.inbox) {
    add(e.name, { start: parseTime(e.raisedTime), end: parseTime(e.raisedTime), type: "event", state: "waiting" });
  }
  return [...byName.values()];
}

function orchestrationRow(details, now) {
  const started = details.history.find((e) => e.EventType === 0);
  const finished = parseTime(details.completedTime);
  const running = Number.isNaN(finished);
  const end = running ? now : finished;
  // An instance that never ran (one a version check holds back) has no history to start from.
  const start = parseTime(started ? started.Timestamp : details.history[0]?.Timestamp);
  return { name: details.name, kind: "orchestration", tasks: [],
           segments: [{ start: Number.isNaN(start) ? end : start, end, running, type: "orchestration",
                        state: details.runtimeStatus.toLowerCase() }] };
}

function rowMeta(row) {
  const attempts = row.segments.filter((s) => s.type === "attempt");
  const parts = [KIND_LABEL[row.kind] || row.kind];
  const timer = row.kind === "timer" ? row.tasks[0] : null;
  if (timer && timer.fireAt) parts.push(`${timer.completedTime ? "fired" : "fires"} ${formatTime(timer.fireAt)}`);
  if (attempts.length) {
    const failed = attempts.filter((s) => s.state === "failed").length;
    parts.push(`${attempts.length} of ${row.maxAttempts} attempts` + (failed ? `, ${failed} failed` : ""));
  }
  return parts.join(" · ");
}

export function renderTimeline(details) {
  const finished = Boolean(details.completedTime);
  const until = finished ? parseTime(details.completedTime) : Date.now();
  const rows = [orchestrationRow(details, until), ...taskRows(details.tasks, until, finished), ...eventRows(details)];
  const times = rows.flatMap((r) => r.segments.flatMap((s) => [s.start, s.end])).filter(Number.isFinite);
  const t0 = Math.min(...times);
  const span = Math.max(Math.max(...times) - t0, 1);
  const pct = (t) => ((t - t0) / span) * 100;
  const axis = el("div", { class: "tl-axis" }, el("div", { class: "tl-label" }, formatTime(new Date(t0).toISOString())),
    el("div", { class: "tl-track" }, [0, 0.25, 0.5, 0.75, 1].map((f) => {
      const tick = el("span", { class: "tl-tick" }, "+" + formatDuration(f * span));
      tick.style.left = `${f * 100}%`;
      return tick;
    })));
  const segmentLabel = (s) => {
    if (s.type === "event") return s.state;
    const what = s.type === "wait" ? "wait " : s.attempt ? `#${s.attempt} ${s.state === "failed" ? "failed " : ""}` : "";
    const state = s.state === "abandoned" ? " (not awaited)" : s.running ? " …" : "";
    return what + formatDuration(s.end - s.start) + state;
  };
  const body = rows.map((row) => {
    const track = el("div", { class: "tl-track" });
    const single = row.segments.length === 1;
    for (const s of row.segments) {
      const duration = s.end - s.start;
      const seg = el("div", {
        class: `tl-seg t-${s.type} st-${s.state}${s.running ? " running" : ""}`,
        title: `${row.name} ${s.type}${s.attempt ? " #" + s.attempt : ""}: ${s.state}, ${formatDuration(duration)}`
          + `\n${formatTime(new Date(s.start).toISOString())} → ${formatTime(new Date(s.end).toISOString())}`,
        dataset: { type: s.type, state: s.state, durationMs: String(Math.round(duration)),
                   attempt: s.attempt ? String(s.attempt) : undefined } },
        single ? el("span", {}, segmentLabel(s)) : null);
      seg.style.left = `${pct(s.start)}%`;
      if (s.type !== "event") seg.style.width = `max(3px, ${pct(s.end) - pct(s.start)}%)`;
      if (pct(s.start) > 70) seg.classList.add("label-left");
      track.append(seg);
    }
    if (!single && row.segments.length) {
      // Several segments (attempts and waits, repeated events): one label after the last of them.
      const summary = el("span", { class: "tl-summary" }, row.segments.map(segmentLabel).join(" · "));
      const last = Math.max(...row.segments.map((s) => pct(s.end)));
      summary.style.left = `calc(${last}% + 6px)`;
      if (last > 60) {
        summary.style.left = "";
        summary.style.right = `calc(${100 - Math.min(...row.segments.map((s) => pct(s.start)))}% + 6px)`;
      }
      track.append(summary);
    }
    return el("div", { class: "tl-row", dataset: { kind: row.kind, name: row.name } },
      el("div", { class: "tl-label" },
        row.child ? el("a", { href: "#/instance/" + encodeURIComponent(row.child) }, row.name) : el("b", {}, row.name),
        el("small", {}, rowMeta(row))),
      track);
  });
  return el("div", { class: "timeline", id: "timeline" }, axis, body);
}
