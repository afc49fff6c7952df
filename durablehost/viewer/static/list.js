// The instances list: filters in the URL hash, one page of the management API's list route per view
// (x-ms-continuation-token paging), counts per status from GET counts, and live refresh.
import { call, errorText } from "./api.js";
import { clear, el, formatTime, statusBadge } from "./dom.js";

const STATUSES = ["Pending", "Running", "Completed", "ContinuedAsNew", "Failed", "Canceled",
                         "Terminated", "Suspended"];
const PAGE = 50;
const MAX_REQUESTS = 20; // per page view: filters the API cannot apply may need several API pages
const TOKEN = "x-ms-continuation-token";

// A datetime-local value (browser time, whole seconds) as UTC ISO; `end` = the last instant of that second,
// so that "to 12:00:05" includes an instance created at 12:00:05.4.
function isoOrEmpty(local, end = false) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : new Date(d.getTime() + (end ? 999 : 0)).toISOString();
}

// One view's worth of instances from `token` on: the API pages, filtered by name here (the list route
// has no name filter), until a page is full or the instances run out.
async function fetchPage(filters, token) {
  const query = {
    top: PAGE,
    runtimeStatus: filters.status.join(","),
    instanceIdPrefix: filters.prefix,
    createdTimeFrom: isoOrEmpty(filters.from),
    createdTimeTo: isoOrEmpty(filters.to, true),
  };
  const rows = [];
  let next = token;
  for (let i = 0; i < MAX_REQUESTS; i++) {
    const answer = await call("GET", "/instances/", { query, headers: next ? { [TOKEN]: next } : {} });
    if (!answer.ok) return { error: errorText(answer) };
    const name = filters.name.toLowerCase();
    rows.push(...answer.body.filter((r) => !name || (r.name || "").toLowerCase() === name));
    next = answer.headers.get(TOKEN) || null;
    if (!next || rows.length >= PAGE) break;
  }
  return { rows, next };
}

function filtersFrom(params) {
  return {
    status: (params.get("status") || "").split(",").filter((s) => STATUSES.includes(s)),
    name: params.get("name") || "",
    prefix: params.get("prefix") || "",
    from: params.get("from") || "",
    to: params.get("to") || "",
  };
}

function hashFor(filters) {
  const params = new URLSearchParams();
  if (filters.status.length) params.set("status", filters.status.join(","));
  for (const name of ["name", "prefix", "from", "to"]) if (filters[name]) params.set(name, filters[name]);
  const text = params.toString();
  return "#/" + (text ? "?" + text : "");
}

export function renderList(main, params, live) {
  const filters = filtersFrom(params);
  const tokens = [null]; // start token of each page seen, for "previous"
  let page = 0;
  const seenNames = el("datalist", { id: "names" });
  const form = el("form", { class: "filters", id: "filters" },
    el("label", {}, "Orchestrator", el("input", { name: "name", value: filters.name, list: "names",
                                                    placeholder: "any" })),
    seenNames,
    el("label", {}, "Instance id prefix", el("input", { name: "prefix", value: filters.prefix })),
    el("label", {}, "Created from", el("input", { type: "datetime-local", step: "1", name: "from",
                                                  value: filters.from })),
    el("label", {}, "to", el("input", { type: "datetime-local", step: "1", name: "to", value: filters.to })),
    el("button", { type: "submit" }, "Apply"),
    el("a", { href: "#/", class: "button-link" }, "Clear"));
  const chips = el("div", { class: "chips", id: "status-chips" });
  const table = el("tbody", { id: "instances" });
  const pager = el("div", { class: "pager" });
  const message = el("div", { class: "muted", id: "list-message" });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = new FormData(form);
    location.hash = hashFor({ ...filters, name: data.get("name").trim(), prefix: data.get("prefix").trim(),
                              from: data.get("from"), to: data.get("to") });
  });
  clear(main,
    el("h1", {}, "Instances"),
    chips, form, message,
    el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ["Instance id", "Orchestrator", "Status", "Created", "Last updated"]
        .map((h) => el("th", {}, h)))),
      table),
    pager);

  function toggle(status) {
    const set = new Set(filters.status);
    set.has(status) ? set.delete(status) : set.add(status);
    location.hash = hashFor({ ...filters, status: STATUSES.filter((s) => set.has(s)) });
  }

  // Counting reads every instance the filter selects (about 2 s for 100,000): live refresh repeats it no
  // sooner than ten times as long as it took, while the page of instances refreshes every time.
  let countsTook = 0;
  let countsAt = 0;
  async function loadCounts() {
    countsAt = Date.now();
    const answer = await call("GET", "/counts", { query: {
      instanceIdPrefix: filters.prefix, createdTimeFrom: isoOrEmpty(filters.from),
      createdTimeTo: isoOrEmpty(filters.to, true) } });
    countsTook = Date.now() - countsAt;
    const counts = answer.ok ? answer.body.counts : {};
    clear(chips, el("span", { class: "muted" }, answer.ok ? `${answer.body.total} instances` : ""),
      STATUSES.map((s) => el("button", {
        type: "button", class: "chip s-" + s.toLowerCase() + (filters.status.includes(s) ? " on" : ""),
        "aria-pressed": filters.status.includes(s) ? "true" : "false", dataset: { status: s },
        onclick: () => toggle(s) }, s, el("b", {}, answer.ok ? String(counts[s] ?? 0) : "·"))));
  }

  async function loadPage() {
    const result = await fetchPage(filters, tokens[page]);
    if (result.error) {
      message.textContent = result.error;
      return;
    }
    tokens[page + 1] = result.next;
    message.textContent = result.rows.length ? "" : "No instances match.";
    const names = new Set(result.rows.map((r) => r.name));
    clear(seenNames, [...names].map((n) => el("option", { value: n })));
    clear(table, result.rows.map((r) => el("tr", { dataset: { id: r.instanceId } },
      el("td", {}, el("a", { href: "#/instance/" + encodeURIComponent(r.instanceId), class: "mono" },
                      r.instanceId)),
      el("td", {}, r.name),
      el("td", {}, statusBadge(r.runtimeStatus)),
      el("td", { class: "mono" }, formatTime(r.createdTime)),
      el("td", { class: "mono" }, formatTime(r.lastUpdatedTime)))));
    clear(pager,
      el("button", { type: "button", id: "previous-page", disabled: page === 0, onclick: () => { page--; loadPage(); } }, "‹ Previous"),
      el("span", { class: "muted" }, `page ${page + 1}`),
      el("button", { type: "button", id: "next-page", disabled: !result.next,
                     onclick: () => { page++; loadPage(); } }, "Next ›"));
  }

  loadCounts();
  loadPage();
  live.every(3000, () => Promise.all([
    Date.now() - countsAt >= Math.max(3000, 10 * countsTook) ? loadCounts() : null,
    loadPage(),
  ]));
}
