// The page of one job (#/jobs/<id>): overview, tree, cancel, params, result, error, timeline
// and result items. Each section re-renders only when its own data changed.

import { buttonsKey, jobButtons } from "./actions.js";
import { API, api, jobPath } from "./api.js";
import { $, h, replaceKeepingFocus } from "./dom.js";
import { badge, dueText, duration, elapsedText, isActive, isScheduled, json, jobHref, number, plural, shortId, stopTime, timeCell } from "./format.js";
import { on, shown } from "./state.js";
import { CHILDREN_PAGE, hasFamily, opened, treeSection } from "./tree.js";

const RESULTS_PAGE = 50;

// ``earlier``: the offsets of the result pages before this one (a page ends early at the
// server's byte budget, so the previous page does not start RESULTS_PAGE items back).
const jobPage = { offset: 0, earlier: [], seq: 0, timer: null, rendered: new Map() };

export function openJobPage(id) {
  if (shown.jobId !== id) {
    shown.jobId = id;
    jobPage.offset = 0;
    jobPage.earlier = [];
    jobPage.rendered = new Map();
    opened.clear();
    $("job-view").replaceChildren(h("p", { class: "empty" }, "Loading…"));
  }
  loadJobPage();
}

export function closeJobPage() {
  shown.jobId = null;
}

export function scheduleJobPage() {
  if (jobPage.timer || !shown.jobId) return;
  jobPage.timer = setTimeout(() => {
    jobPage.timer = null;
    loadJobPage();
  }, 400);
}

async function loadJobPage() {
  const id = shown.jobId;
  if (!id) return;
  const seq = ++jobPage.seq;
  const path = jobPath(id);
  try {
    const [job, events, results, children] = await Promise.all([
      api("GET", path),
      api("GET", `${path}/events`),
      api("GET", `${path}/results?offset=${jobPage.offset}&limit=${RESULTS_PAGE}`),
      api("GET", `${path}/children?limit=${CHILDREN_PAGE}`),
    ]);
    job.retried = job.retry_of ? await retriedJob(job.retry_of) : null;
    if (seq === jobPage.seq && shown.jobId === id) renderJobPage(job, events, results, children);
  } catch (error) {
    if (seq !== jobPage.seq) return;
    const text = error.status === 404 ? "There is no job with this id (it may have been deleted)." : error.message;
    jobPage.rendered = new Map();
    $("job-view").replaceChildren(backLink(), h("p", { class: "empty" }, text));
  }
}

// The job this one is a retry of, as it stands: "removed" once it was deleted (or pruned
// with --purge), so the page does not offer a link to nothing.
async function retriedJob(id) {
  try {
    const original = await api("GET", jobPath(id));
    return { id, state: original.pruned_at ? "pruned" : "here" };
  } catch (error) {
    if (error.status === 404) return { id, state: "removed" };
    throw error;
  }
}

function retryOf(retried) {
  if (!retried) return null;
  if (retried.state === "removed") {
    return h("span", { class: "retry-of removed", title: `Job ${retried.id} was deleted` }, `${shortId(retried.id)} (removed)`);
  }
  const link = h("a", { href: jobHref(retried.id), title: retried.id }, shortId(retried.id));
  return retried.state === "pruned" ? h("span", { class: "retry-of" }, link, " (pruned: its record only)") : link;
}

function backLink() {
  return h("a", { class: "back", href: "#/" }, "← All jobs");
}

// Each section re-renders only when its own data changed, so reading a traceback or
// selecting result text is not disturbed by progress updates elsewhere on the page.
function renderJobPage(job, events, results, children) {
  const view = $("job-view");
  const family = { parent: job.parent_id, root: job.root_id, children: job.children, descendants: job.descendants, page: children };
  const sections = [
    ["head", { id: job.id, kind: job.kind, buttons: buttonsKey(job) }, () => jobHead(job)],
    ["facts", job, () => jobFacts(job)],
    ["tree", family, () => hasFamily(job) && treeSection(job, children)],
    ["cancel", job.cancel, () => job.cancel && cancelSection(job)],
    ["checkpoint", { checkpoint: job.checkpoint, resume: job.resume }, () => job.checkpoint && checkpointSection(job)],
    ["params", job.params, () => section("Params", h("pre", { class: "json" }, json(job.params)))],
    ["result", { status: job.status, result: job.result }, () => job.status === "succeeded" && section("Result", h("pre", { class: "json" }, json(job.result)))],
    ["error", job.error, () => job.error && errorSection(job.error)],
    ["timeline", events, () => timeline(events.items, events.next_offset)],
    ["results", results, () => resultsSection(job.id, results)],
  ];
  if (!view.querySelector(".back")) view.replaceChildren(backLink());
  for (const [key, data, build] of sections) {
    const signature = JSON.stringify(data ?? null);
    const known = jobPage.rendered.get(key);
    if (known && known.signature === signature) continue;
    const holder = known ? known.holder : h("div", { class: `job-section-${key}` });
    if (!known) view.append(holder);
    replaceKeepingFocus(holder, [build()].filter(Boolean));
    jobPage.rendered.set(key, { signature, holder });
  }
  view.dataset.status = job.status;
  document.title = `${job.kind} ${shortId(job.id)} · ${job.status} · andon`;
}

function section(title, ...content) {
  return h("section", { class: "panel" }, h("h2", null, title), ...content);
}

function jobHead(job) {
  return h(
    "div",
    { class: "job-head" },
    h("h1", null, job.kind, " ", badge(job.status)),
    h("code", { class: "job-id full" }, job.id),
    h("div", { class: "job-actions" }, ...jobButtons(job)),
  );
}

function fact(label, value) {
  return [h("dt", null, label), h("dd", null, value === null || value === undefined || value === "" ? "—" : value)];
}

function jobFacts(job) {
  const progress = job.progress;
  const bar = progress && progress.total ? progressBar(progress.done || 0, progress.total, job.kind) : null;
  return section(
    "Overview",
    bar,
    progress && progress.message ? h("p", { class: "progress-message" }, progress.message) : null,
    h(
      "dl",
      { class: "facts" },
      fact("Status", job.status),
      fact("Owner", job.owner),
      fact("Attempt", `${job.attempt} of ${job.max_attempts}${job.failures ? `, ${plural(job.failures, "failure")}` : ""}`),
      fact("Progress", progress ? `${number(progress.done)} / ${number(progress.total)}` : null),
      fact("Items", String(job.items_count)),
      fact("Created", timeCell(job.created_at)),
      job.status === "queued" && job.due_at ? fact("Due", h("span", {}, timeCell(job.due_at), isScheduled(job) ? ` (${dueText(job)})` : "")) : null,
      fact("Started", timeCell(job.started_at)),
      fact("Finished", timeCell(job.finished_at)),
      fact("Duration", isActive(job) ? elapsedText(job) : duration(job.duration_s)),
      fact("Timeout", job.timeout_s ? duration(job.timeout_s) : "none"),
      fact("Priority", String(job.priority)),
      fact("Worker", job.worker_id),
      fact("Retry of", retryOf(job.retried)),
      job.key ? fact("Key", job.key) : null,
    ),
  );
}

function progressBar(done, total, label) {
  const ratio = Math.max(0, Math.min(1, done / total));
  const fill = h("div", { class: "fill" });
  fill.style.width = `${(ratio * 100).toFixed(1)}%`;
  return h("div", { class: "bar large", role: "progressbar", "aria-label": `Progress of ${label}`, "aria-valuemin": "0", "aria-valuemax": String(total), "aria-valuenow": String(done) }, fill);
}

function cancelSection(job) {
  const cancel = job.cancel;
  return section(
    "Cancel",
    h(
      "ol",
      { class: "cancel-steps" },
      h("li", { class: "done" }, h("strong", null, "Requested "), timeCell(cancel.requested_at), ` by ${cancel.by || "?"} · reason ${cancel.reason}`, cancel.message ? ` · “${cancel.message}”` : "", graceText(cancel.grace_s), cancel.origin ? [" · from ", h("a", { href: jobHref(cancel.origin) }, shortId(cancel.origin))] : null),
      h("li", { class: cancel.acknowledged_at ? "done" : "" }, h("strong", null, "Seen by the work "), cancel.acknowledged_at ? timeCell(cancel.acknowledged_at) : "not yet"),
      h("li", { class: cancel.stopped_at ? "done" : "" }, h("strong", null, "Stopped "), cancel.stopped_at ? [timeCell(cancel.stopped_at), ` · ${cancel.stop_method} · ${stopTime(cancel.stop_seconds)} after the request`] : "not yet"),
      job.awaiting || job.descendants.active ? h("li", { class: job.descendants.active ? "" : "done" }, h("strong", null, "Descendants stopped "), job.descendants.active ? `not yet: ${job.descendants.active} still active` : "yes") : null,
    ),
  );
}

// How long the work may take to stop by itself: what the requests asked (the shortest).
function graceText(grace) {
  if (grace === null || grace === undefined) return "";
  return grace === 0 ? " · stop at once (no grace)" : ` · grace ${duration(grace)}`;
}

function checkpointSection(job) {
  const checkpoint = job.checkpoint;
  const next = job.resume
    ? "Its next attempt goes on from here."
    : job.actions.includes("resume")
      ? "Resume goes on from here: a new attempt of this job, nothing before the checkpoint done twice."
      : null;
  return section(
    "Checkpoint",
    h("p", { class: "checkpoint-line" }, `Stored by attempt ${checkpoint.attempt} after ${plural(checkpoint.items, "item")}, `, timeCell(checkpoint.at), "."),
    next ? h("p", { class: "help" }, next) : null,
    h("details", { "data-key": "checkpoint-state" }, h("summary", null, "State"), h("pre", { class: "json" }, json(checkpoint.state))),
  );
}

function errorSection(error) {
  return section(
    "Error",
    h("p", { class: "error-line" }, h("strong", null, error.type), `: ${error.message}`),
    error.traceback ? h("details", { "data-key": "traceback" }, h("summary", null, "Traceback"), h("pre", { class: "traceback" }, error.traceback)) : null,
  );
}

function timeline(events, nextOffset) {
  const items = events.map((event) =>
    h(
      "li",
      { "data-type": event.type },
      h("span", { class: "when" }, timeCell(event.at)),
      h("span", { class: "what" }, event.type),
      event.from_status || event.to_status ? h("span", { class: "move" }, `${event.from_status || "·"} → ${event.to_status || "·"}`) : null,
      h("span", { class: "detail" }, [event.actor && `by ${event.actor}`, event.reason && `reason ${event.reason}`, event.message, event.attempt ? `attempt ${event.attempt}` : null].filter(Boolean).join(" · ")),
    ),
  );
  const more = nextOffset === null ? null : h("p", { class: "help" }, `The first ${plural(nextOffset, "event")} of a longer history; the rest: GET ${location.pathname}api/v1/jobs/${shown.jobId}/events?offset=${nextOffset}`);
  return section("Timeline", items.length ? h("ol", { class: "timeline" }, ...items) : h("p", { class: "empty" }, "No events."), more);
}

// A row of a CSV needs an object of scalars; the server checks every item (409 if one is
// not), this page can only look at the items it shows.
const isFlat = (data) => data !== null && typeof data === "object" && !Array.isArray(data) && Object.values(data).every((value) => value === null || typeof value !== "object");

function downloads(id, results) {
  if (!results.count) return null;
  const file = (format) => `${API}${jobPath(id)}/results.${format}`;
  const csv = results.items.every((item) => isFlat(item.data));
  return h(
    "p",
    { class: "downloads" },
    "Download all items: ",
    h("a", { class: "btn small", href: file("jsonl"), download: "" }, "JSON Lines"),
    csv ? h("a", { class: "btn small", href: file("csv"), download: "" }, "CSV") : null,
  );
}

function resultsSection(id, results) {
  const first = results.count ? results.offset + 1 : 0;
  const last = results.offset + results.items.length;
  const state = results.cancelled ? "the job was cancelled; these are the items it produced before it stopped" : results.complete ? "final" : "the job is still running; more may come";
  const rows = results.items.map((item) =>
    h("tr", null, h("td", { class: "num" }, String(item.seq)), h("td", { class: "num" }, String(item.attempt)), h("td", null, timeCell(item.at)), h("td", null, h("pre", { class: "json" }, json(item.data)))),
  );
  const older = h("button", { class: "btn small", type: "button", "data-key": "results-prev", disabled: results.offset === 0 }, "← Previous");
  const newer = h("button", { class: "btn small", type: "button", "data-key": "results-next", disabled: results.next_offset === null }, "Next →");
  older.addEventListener("click", () => {
    jobPage.offset = jobPage.earlier.pop() ?? 0;
    loadJobPage();
  });
  newer.addEventListener("click", () => {
    if (results.next_offset === null) return;
    jobPage.earlier.push(results.offset);
    jobPage.offset = results.next_offset;
    loadJobPage();
  });
  return section(
    `Results (${results.count})`,
    h("p", { class: "help" }, `${first}–${last} of ${results.count} · ${state}`),
    downloads(id, results),
    rows.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "results" }, h("thead", null, h("tr", null, h("th", { scope: "col", class: "num" }, "#"), h("th", { scope: "col", class: "num" }, "Attempt"), h("th", { scope: "col" }, "At"), h("th", { scope: "col" }, "Data"))), h("tbody", null, ...rows)))
      : h("p", { class: "empty" }, "No items."),
    results.offset > 0 || results.next_offset !== null ? h("nav", { class: "pager", "aria-label": "Result pages" }, older, newer) : null,
  );
}

export function setUpJobPage() {
  on("job", (id, job) => {
    const shownId = shown.jobId;
    if (!shownId) return;
    // A change below the shown job changes its counts and tree (its parent or root is it).
    if (shownId === id || (job && (job.parent_id === shownId || job.root_id === shownId))) scheduleJobPage();
  });
}
