// The management actions of one instance. Each opens a dialog that says which request it will send,
// asks for confirmation, and shows the API's answer (status and body) — 501 included, for the routes the
// engine does not implement yet.
import { call, errorText, instancePath, url } from "./api.js";
import { clear, el, jsonView } from "./dom.js";

// JSON text -> {ok, value} or {ok: false, error}; empty text is no payload (the event's input is null).
function checkJson(text) {
  if (!text.trim()) return { ok: true, body: undefined };
  try {
    JSON.parse(text);
    return { ok: true, body: text };
  } catch (error) {
    return { ok: false, error: error.message };
  }
}

function answerView(answer) {
  // A restart answers with the check-status links of the instance it started: link to it.
  const started = answer.ok && answer.body && typeof answer.body.id === "string" ? answer.body.id : null;
  return el("div", { class: "answer " + (answer.ok ? "ok" : "bad"), id: "action-answer" },
    el("b", {}, `HTTP ${answer.status} ${answer.statusText || ""}`.trim()),
    started ? el("p", {}, "Instance ", el("a", { href: "#/instance/" + encodeURIComponent(started), id: "started",
                                                 onclick: () => document.getElementById("dialog").close() }, started))
      : null,
    answer.ok ? null : el("div", {}, errorText(answer)),
    answer.body !== null ? jsonView(answer.body) : el("div", { class: "muted" }, "(no body)"));
}

function openDialog(title, fields, describe, send, after) {
  const dialog = document.getElementById("dialog");
  const output = el("div", { class: "dialog-answer" });
  const request = el("code", { class: "request" });
  const confirm = el("button", { type: "submit", class: "danger", id: "confirm-action" }, "Confirm");
  const form = el("form", { method: "dialog" },
    el("h2", {}, title), fields.nodes, el("p", { class: "muted" }, "Sends ", request), output,
    el("div", { class: "buttons" },
      el("button", { type: "button", onclick: () => dialog.close() }, "Close"), confirm));
  const refresh = () => {
    request.textContent = describe();
    const problem = fields.problem ? fields.problem() : null;
    confirm.disabled = Boolean(problem);
  };
  form.addEventListener("input", refresh);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (fields.problem && fields.problem()) return; // refused in the page: nothing is sent
    confirm.disabled = true;
    const answer = await send();
    clear(output, answerView(answer));
    confirm.disabled = false;
    confirm.textContent = "Send again";
    after();
  });
  clear(dialog, form);
  refresh();
  dialog.showModal();
}

function reasonField() {
  const input = el("input", { name: "reason", placeholder: "optional" });
  return { input, nodes: [el("label", {}, "Reason", input)] };
}

function raiseEvent(id, after) {
  const name = el("input", { name: "event", required: true, id: "event-name", placeholder: "e.g. approval" });
  const payload = el("textarea", { name: "payload", id: "event-payload", rows: 8, spellcheck: "false" }, "{\n  \n}");
  const key = el("input", { name: "idempotency", id: "idempotency-key", placeholder: "optional" });
  const status = el("div", { class: "json-state", id: "payload-state" });
  const problem = () => {
    const checked = checkJson(payload.value);
    status.textContent = checked.ok ? "valid JSON" : "invalid JSON: " + checked.error;
    status.className = "json-state " + (checked.ok ? "ok" : "bad");
    if (!checked.ok) return checked.error;
    if (!name.value.trim()) return "an event name is needed";
    return null;
  };
  const path = () => `${instancePath(id)}/raiseEvent/${encodeURIComponent(name.value.trim())}`;
  openDialog("Raise an event",
    { nodes: [el("label", {}, "Event name", name), el("label", {}, "Payload (JSON)", payload), status,
              el("label", {}, "Idempotency-Key", key)], problem },
    () => `POST ${url(path())}${key.value.trim() ? " with Idempotency-Key" : ""}`,
    () => call("POST", path(), { body: checkJson(payload.value).body ?? "",
                                 headers: key.value.trim() ? { "Idempotency-Key": key.value.trim() } : {} }),
    after);
}

function simple(id, operation, label, after) {
  const reason = reasonField();
  const path = `${instancePath(id)}/${operation}`;
  openDialog(`${label} ${id}?`, reason,
    () => `POST ${url(path, { reason: reason.input.value })}`,
    () => call("POST", path, { query: { reason: reason.input.value } }), after);
}

function restart(id, after) {
  const fresh = el("input", { type: "checkbox", name: "fresh" });
  const path = `${instancePath(id)}/restart`;
  const query = () => ({ restartWithNewInstanceId: fresh.checked ? "true" : "false" });
  openDialog(`Restart ${id}?`, { nodes: [el("label", { class: "inline" }, fresh, "with a new instance id")] },
    () => `POST ${url(path, query())}`, () => call("POST", path, { query: query() }), after);
}

function purge(id, after) {
  openDialog(`Purge ${id}? Its history is deleted for good.`, { nodes: [] },
    () => `DELETE ${url(instancePath(id))}`, () => call("DELETE", instancePath(id)), after);
}

export function actionBar(id, after) {
  const button = (label, onclick) => el("button", { type: "button", dataset: { action: label.toLowerCase() },
                                                    onclick }, label);
  return el("div", { class: "actions" },
    button("Raise event", () => raiseEvent(id, after)),
    ["terminate", "suspend", "resume", "rewind"].map((op) => {
      const label = op[0].toUpperCase() + op.slice(1);
      return button(label, () => simple(id, op, label, after));
    }),
    button("Restart", () => restart(id, after)),
    button("Purge", () => purge(id, after)));
}
