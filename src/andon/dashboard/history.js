// The history table: every job, newest first, a page at a time, with filters. The filters
// live in the page's URL (?status=failed&kind=count): a reload or a shared link shows the
// same history, and back and forward step through the filters chosen.

import { buttonsKey, jobButtons } from "./actions.js";
import { api } from "./api.js";
import { $, h, replaceKeepingFocus } from "./dom.js";
import { badge, childOf, duration, elapsedText, isActive, jobHref, reasonText, shortId, timeCell } from "./format.js";
import { toast } from "./notices.js";
import { on } from "./state.js";
import { childrenText, countsText } from "./tree.js";

const HISTORY_PAGE = 20;
const history = { cursors: [null], index: 0, next: null, timer: null, loading: false, again: false, filters: "" };
const FILTERS = [
  ["status", "filter-status"],
  ["kind", "filter-kind"],
];

// The filters as the URL has them; a value the select cannot show is shown as it is (a kind
// of another app), an empty one is none.
function filtersFromUrl() {
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const [name, id] of FILTERS) {
    const value = params.get(name) || "";
    const select = $(id);
    if (value && ![...select.options].some((option) => option.value === value)) select.append(h("option", { value }, value));
    select.value = value;
    if (value) query.set(name, value);
  }
  return query.toString();
}

// A filter chosen: a new entry in the browser's history, with the hash (the page) kept.
function filtersToUrl() {
  const params = new URLSearchParams(location.search);
  for (const [name, id] of FILTERS) {
    if ($(id).value) params.set(name, $(id).value);
    else params.delete(name);
  }
  const search = params.toString();
  const url = `${location.pathname}${search ? `?${search}` : ""}${location.hash}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) window.history.pushState(null, "", url);
}

export async function loadHistory() {
  if (history.loading) {
    history.again = true;
    return;
  }
  history.loading = true;
  try {
    const filters = filtersFromUrl();
    if (filters !== history.filters) {
      history.filters = filters;
      history.cursors = [null];
      history.index = 0;
    }
    const query = new URLSearchParams(filters);
    query.set("limit", String(HISTORY_PAGE));
    const cursor = history.cursors[history.index];
    if (cursor) query.set("cursor", cursor);
    const page = await api("GET", `jobs?${query}`);
    history.next = page.next_cursor;
    renderHistory(page.items, page.child_counts || {});
  } finally {
    history.loading = false;
    if (history.again) {
      history.again = false;
      scheduleHistory();
    }
  }
}

const reload = () => loadHistory().catch((error) => toast(error.message, "error"));

// Many events can arrive at once (a bulk cancel): reload at most every 700 ms.
export function scheduleHistory() {
  if (history.timer) return;
  history.timer = setTimeout(() => {
    history.timer = null;
    reload();
  }, 700);
}

// Under the kind: whose child the job is, and how many children it has.
function family(job, counts) {
  const children = counts ? h("span", { class: "children-count", title: countsText(counts) }, childrenText(counts.total)) : null;
  return job.parent_id || children ? h("div", { class: "family" }, childOf(job), children) : null;
}

function renderHistory(jobs, childCounts) {
  // A row whose job kept its status and actions keeps its buttons (the same elements), so
  // a reload under a pointer never swaps the button being clicked.
  const kept = new Map();
  for (const row of $("history-body").querySelectorAll("tr[data-job-id]")) {
    const buttons = row.querySelector(".row-actions");
    if (buttons) kept.set(`${row.dataset.jobId}:${row.dataset.buttons}`, buttons);
  }
  const actionsFor = (job) =>
    kept.get(`${job.id}:${buttonsKey(job)}`) || h("div", { class: "row-actions" }, ...jobButtons(job, { compact: true }));
  const rows = jobs.map((job) =>
    h(
      "tr",
      { "data-job-id": job.id, "data-status": job.status, "data-buttons": buttonsKey(job) },
      h("td", null, badge(job.status)),
      h("td", null, h("a", { href: jobHref(job.id), "data-key": `open:${job.id}` }, job.kind), family(job, childCounts[job.id])),
      h("td", null, h("code", { class: "job-id", title: job.id }, shortId(job.id))),
      h("td", { class: "owner" }, job.owner || "—"),
      h("td", { class: "reason", title: reasonText(job) }, reasonText(job)),
      h("td", null, timeCell(job.created_at)),
      h("td", null, timeCell(job.started_at)),
      h("td", null, timeCell(job.finished_at)),
      h("td", { class: "num" }, isActive(job) ? elapsedText(job) : duration(job.duration_s)),
      h("td", { class: "num" }, String(job.items_count)),
      h("td", null, actionsFor(job)),
    ),
  );
  replaceKeepingFocus($("history-body"), rows);
  $("history-empty").hidden = jobs.length > 0;
  $("history-newer").disabled = history.index === 0;
  $("history-older").disabled = !history.next;
  $("history-page").textContent = `page ${history.index + 1}`;
}

function restartHistory() {
  history.cursors = [null];
  history.index = 0;
  reload();
}

function chooseFilter() {
  filtersToUrl();
  restartHistory();
}

export function setUpHistory() {
  on("history", scheduleHistory);
  $("filter-status").addEventListener("change", chooseFilter);
  $("filter-kind").addEventListener("change", chooseFilter);
  // Back or forward to other filters (a change of the hash alone leaves them as they are).
  window.addEventListener("popstate", () => {
    if (filtersFromUrl() !== history.filters) reload();
  });
  $("history-older").addEventListener("click", () => {
    if (!history.next) return;
    history.cursors[history.index + 1] = history.next;
    history.index += 1;
    reload();
  });
  $("history-newer").addEventListener("click", () => {
    if (history.index === 0) return;
    history.index -= 1;
    reload();
  });
}
