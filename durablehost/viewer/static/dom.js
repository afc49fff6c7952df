// DOM helpers. Everything shown comes from instances (ids, payloads, error messages): it is only ever
// put into the page as text nodes and attribute values, never as HTML.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") {
      for (const [key, item] of Object.entries(value)) if (item !== undefined && item !== null) node.dataset[key] = item;
    }
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function clear(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function statusBadge(status) {
  return el("span", { class: "badge s-" + String(status || "unknown").toLowerCase() }, status || "?");
}

export function parseTime(text) {
  return text ? new Date(text).getTime() : NaN;
}

export function formatTime(text) {
  if (!text) return "";
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) return text;
  return d.toISOString().replace("T", " ").replace(/\.(\d{3})\d*Z$/, ".$1Z").replace(/\.000Z$/, "Z");
}

export function formatDuration(ms) {
  if (!Number.isFinite(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
  return `${Math.floor(ms / 3600000)} h ${Math.round((ms % 3600000) / 60000)} min`;
}

// A string holding JSON text -> its value, twice at most: a Python-started instance's input, and an
// event the SDK's raise_event sent, are JSON text inside a JSON string (protocol §5.3, §5.4).
export function decoded(value, depth = 2) {
  if (typeof value !== "string" || depth === 0) return value;
  const t = value.trim();
  if (!/^[[{"]/.test(t)) return value;
  try {
    return decoded(JSON.parse(t), depth - 1);
  } catch {
    return value;
  }
}

const TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g;

// Pretty JSON with highlighted tokens, built from text nodes.
export function jsonView(value) {
  if (value === undefined) return el("pre", { class: "json empty" }, "—");
  if (typeof value === "string") return el("pre", { class: "json" }, el("span", { class: "j-str" }, value));
  const text = JSON.stringify(value, null, 2);
  const pre = el("pre", { class: "json" });
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    pre.append(text.slice(last, m.index));
    const cls = m[1] ? (m[2] ? "j-key" : "j-str") : m[3] ? "j-lit" : "j-num";
    pre.append(el("span", { class: cls }, m[1] || m[0]));
    if (m[2]) pre.append(m[2]);
    last = m.index + m[0].length;
  }
  pre.append(text.slice(last));
  return pre;
}

export function short(value, limit = 120) {
  if (value === undefined || value === null) return "";
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > limit ? text.slice(0, limit) + "…" : text;
}
