// The active jobs panel: a card per job (see state.js for which), updated in place.

import { buttonsKey, jobButtons } from "./actions.js";
import { api, jobPath } from "./api.js";
import { $, h, replaceKeepingFocus } from "./dom.js";
import { badge, childOf, dueText, duration, elapsedText, isActive, jobHref, number, plural, reasonText, shortId, stopHow } from "./format.js";
import { act, confirmAction, toast } from "./notices.js";
import { cards, forget, keep, on, pruneEnded, remember } from "./state.js";

const ACTIVE = ["queued", "running", "cancelling"];
const cardViews = new Map(); // id -> {li, buttons, parts, job}

// An ended card stays while someone is at it: under the pointer, holding focus, or behind
// the open confirmation of one of its buttons.
function held(id) {
  const view = cardViews.get(id);
  if (!view) return false;
  return $("confirm-dialog").open || view.li.matches(":hover") || view.li.contains(document.activeElement);
}

export function renderCards() {
  pruneEnded(held);
  const list = $("active-list");
  const jobs = [...cards.values()].sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? 1 : -1));
  for (const [id, view] of cardViews) {
    if (!cards.has(id)) {
      view.li.remove();
      cardViews.delete(id);
    }
  }
  let previous = null;
  for (const job of jobs) {
    let view = cardViews.get(job.id);
    if (!view) {
      view = makeCard(job);
      cardViews.set(job.id, view);
    }
    updateCard(view, job);
    const wanted = previous ? previous.nextSibling : list.firstChild;
    if (wanted !== view.li) list.insertBefore(view.li, wanted);
    previous = view.li;
  }
  const running = jobs.filter((j) => j.status === "running" || j.status === "queued").length;
  const active = jobs.filter(isActive).length;
  $("active-count").textContent = active ? `(${active})` : "";
  $("active-empty").hidden = jobs.length > 0;
  $("cancel-all").disabled = running === 0;
}

function makeCard(job) {
  const titleId = `card-${job.id}`;
  const parts = {
    badge: h("span"),
    link: h("a", { id: titleId, class: "card-kind", href: jobHref(job.id) }, job.kind),
    id: h("code", { class: "job-id", title: job.id }, shortId(job.id)),
    elapsed: h("span", { class: "elapsed", title: "Running time" }),
    fill: h("div", { class: "fill" }),
    bar: null,
    count: h("span", { class: "progress-count" }),
    message: h("p", { class: "progress-message" }),
    actions: h("div", { class: "card-actions" }),
  };
  parts.bar = h("div", { class: "bar", role: "progressbar", "aria-labelledby": titleId }, parts.fill);
  const li = h(
    "li",
    { class: "card", "data-job-id": job.id, "aria-labelledby": titleId },
    h(
      "div",
      { class: "card-head" },
      parts.badge,
      parts.link,
      parts.id,
      childOf(job),
      job.owner ? h("span", { class: "card-owner", title: "Owner" }, job.owner) : null,
      h("span", { class: "spacer" }),
      parts.elapsed,
    ),
    h("div", { class: "progress-line" }, parts.bar, parts.count),
    parts.message,
    parts.actions,
  );
  return { li, parts, buttons: null };
}

function updateCard(view, job) {
  const { parts } = view;
  view.job = job;
  view.li.dataset.status = job.status;
  parts.badge.replaceWith((parts.badge = badge(job.status)));
  parts.elapsed.textContent = elapsedText(job);
  const progress = job.progress || {};
  const done = progress.done ?? (job.status === "succeeded" ? 1 : 0);
  const total = progress.total ?? (job.status === "succeeded" ? 1 : null);
  if (total) {
    const ratio = Math.max(0, Math.min(1, done / total));
    parts.fill.style.width = `${(ratio * 100).toFixed(1)}%`;
    parts.bar.classList.remove("indeterminate");
    parts.bar.setAttribute("aria-valuemin", "0");
    parts.bar.setAttribute("aria-valuemax", String(total));
    parts.bar.setAttribute("aria-valuenow", String(done));
    parts.count.textContent = job.progress ? `${number(done)} / ${number(total)}` : "";
  } else {
    parts.fill.style.width = "0%";
    parts.bar.classList.toggle("indeterminate", job.status === "running");
    parts.bar.removeAttribute("aria-valuenow");
    parts.count.textContent = progress.done !== undefined && progress.done !== null ? number(progress.done) : "";
  }
  parts.message.textContent = outcomeText(job) || progress.message || idleText(job);
  parts.message.classList.toggle("outcome", !isActive(job));
  // Buttons depend on the status and actions alone. Rebuilding them on every item (many a
  // second) would swap the button under a pointer between press and release and lose the click.
  const key = buttonsKey(job);
  if (view.buttons !== key) {
    const hadFocus = view.li.contains(document.activeElement) && parts.actions.contains(document.activeElement);
    replaceKeepingFocus(parts.actions, jobButtons(job, { dismiss: true }));
    if (hadFocus && !parts.actions.contains(document.activeElement)) {
      const first = parts.actions.querySelector("button:not([disabled])") || parts.link;
      first.focus();
    }
    view.buttons = key;
  }
}

function idleText(job) {
  const due = dueText(job);
  if (due) return due;
  if (job.status === "queued") return "waiting for a free worker slot";
  if (job.status === "cancelling") {
    const now = job.cancel && job.cancel.grace_s === 0 && !job.awaiting ? ", at once" : "";
    return `${stopWord(job)}${now}; waiting for the work to stop`;
  }
  return job.progress ? "" : "running (this job reports no progress)";
}

// Why a stop was asked, as a card's first words: a timeout is not someone's cancel.
function stopWord(job) {
  const reason = job.cancel ? job.cancel.reason : null;
  if (reason === "timeout") return job.timeout_s ? `timeout after ${duration(job.timeout_s)}` : "timeout";
  if (job.status === "cancelling") return reason && reason !== "user" ? `asked to stop (${reason})` : "asked to stop";
  return reason && reason !== "user" ? `cancelled (${reason})` : "cancelled";
}

// What a finished card says in place of its progress message.
function outcomeText(job) {
  const total = job.progress && job.progress.total;
  const items = job.items_count;
  if (job.status === "cancelled") {
    const of = total ? ` of ${number(total)}` : "";
    const how = stopHow(job.cancel);
    return `${stopWord(job)}: ${items}${of} ${items === 1 ? "item" : "items"} kept${how ? `, stopped: ${how}` : ""}`;
  }
  if (job.status === "failed") return `failed: ${job.error ? `${job.error.type}: ${job.error.message}` : reasonText(job)}`;
  if (job.status === "succeeded") return `succeeded: ${plural(items, "item")}`;
  return "";
}

export async function loadCards() {
  const query = new URLSearchParams({ limit: "100" });
  for (const status of ACTIVE) query.append("status", status);
  const page = await api("GET", `jobs?${query}`);
  const seen = new Set(page.items.map((job) => job.id));
  // Shown jobs missing from the list ended meanwhile: fetch them once to show how.
  const missing = [...cards.keys()].filter((id) => !seen.has(id) && isActive(cards.get(id)));
  const ended = await Promise.all(missing.map((id) => api("GET", jobPath(id)).catch(() => null)));
  missing.forEach((id, index) => {
    if (ended[index] === null) forget(id);
  });
  for (const job of [...page.items, ...ended.filter(Boolean)]) {
    if (isActive(job)) keep(job);
    else remember(job);
  }
  renderCards();
}

// Running times tick once a second without asking the server, and ended cards leave.
export function tick() {
  if (pruneEnded(held)) renderCards();
  for (const view of cardViews.values()) {
    if (view.job && isActive(view.job)) view.parts.elapsed.textContent = elapsedText(view.job);
  }
}

async function cancelAll(event) {
  const button = event.currentTarget;
  const jobs = [...cards.values()];
  const running = jobs.filter((j) => j.status === "running").length;
  const queued = jobs.filter((j) => j.status === "queued").length;
  const parts = [];
  if (running) parts.push(`stop ${plural(running, "running job")}`);
  if (queued) parts.push(`withdraw ${plural(queued, "queued job")}`);
  const sure = await confirmAction(
    "Cancel all running jobs?",
    `This will ${parts.join(" and ") || "cancel every active job"}. Partial results are kept.`,
    "Cancel all",
  );
  if (!sure) return;
  const answer = await act(button, () => api("POST", "jobs/cancel", { status: ["queued", "running"] }));
  if (answer) {
    toast(`Cancelled ${plural(answer.cancelled, "job")}.`);
    await loadCards().catch(() => {});
  }
}

export function setUpCards() {
  on("cards", renderCards);
  $("cancel-all").addEventListener("click", cancelAll);
}
