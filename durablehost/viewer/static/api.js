// Every call of the viewer goes to the management API, with the key the user entered (sessionStorage:
// this tab only, gone when it closes) in the x-functions-key header. No key is sent when none is set.
const MGMT = "/runtime/webhooks/durabletask";
const KEY = "durablehost.viewer.key";

export function getKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export function url(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return MGMT + path + (text ? "?" + text : "");
}

// -> {status, statusText, ok, body (parsed JSON, text or null), headers}; a 401 also fires "needkey".
export async function call(method, path, { query = {}, body, headers = {} } = {}) {
  const sent = { ...headers };
  const key = getKey();
  if (key) sent["x-functions-key"] = key;
  const init = { method, headers: sent, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    init.body = body;
    sent["Content-Type"] = "application/json";
  }
  const response = await fetch(url(path, query), init);
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = text;
    }
  }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("needkey"));
  return { status: response.status, statusText: response.statusText, ok: response.ok, body: parsed,
           headers: response.headers };
}

export function instancePath(id) {
  return "/instances/" + encodeURIComponent(id);
}

export function errorText(answer) {
  const body = answer.body;
  const message = body && typeof body === "object" ? body.ExceptionMessage || body.Message : body;
  return `HTTP ${answer.status}${message ? ": " + message : ""}`;
}
