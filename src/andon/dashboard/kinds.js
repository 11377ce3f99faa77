// The kinds strip: which kinds are paused (no worker claims them), and pausing or
// unpausing one. Only admins may pause; anyone else gets the server's 403 as a toast.
// The Kinds page (#/kinds): how each kind's jobs stopped when asked (count, median, p99,
// slowest, by which method), with a "needs force" badge on a kind whose handler ignores
// Cancel (the server's needs_force: most of at least three stops were forced).

import { api } from "./api.js";
import { $, h, replaceKeepingFocus } from "./dom.js";
import { plural, stopTime, timeCell } from "./format.js";
import { act, confirmAction, toast } from "./notices.js";

const REFRESH_MS = 10000;
export const KINDS_HASH = "#/kinds";
// Only to set these apart on the page; which kind needs force is the server's answer.
const FORCED = new Set(["injected", "terminated", "killed", "abandoned"]);
const NEEDS_FORCE =
  "Most of its stops needed force: its handler ignores Cancel, so andon stopped it from outside after the grace period. Call ctx.check() in its loop (or ctx.sleep() instead of time.sleep()) and it stops by itself, at once.";

let latest = [];

function needsForceBadge(kind) {
  if (!kind.stops || !kind.stops.needs_force) return null;
  return h("span", { class: "badge needs-force", title: NEEDS_FORCE, "aria-describedby": `needs-force-${kind.kind}` }, "needs force");
}

// Show each kind with its pause state and the button that changes it.
export function renderKinds(items) {
  latest = items;
  if (location.hash === KINDS_HASH) renderKindsPage(items);
  const rows = items.map((kind) => {
    const paused = kind.paused;
    const state = paused
      ? h("span", { class: "kind-state paused" }, "paused ", timeCell(paused.paused_at), paused.by ? ` by ${paused.by}` : "", paused.message ? ` · “${paused.message}”` : "")
      : null;
    const buttons = paused
      ? [kindButton("Unpause", kind, () => unpause(kind))]
      : [kindButton("Pause", kind, () => pause(kind, false)), kindButton("Pause now", kind, () => pause(kind, true), "stop")];
    const badge = needsForceBadge(kind);
    if (badge) badge.removeAttribute("aria-describedby");
    return h("li", { "data-kind": kind.kind, "data-paused": paused ? "yes" : "no" }, h("strong", null, kind.kind), badge, state, h("span", { class: "kind-actions" }, ...buttons));
  });
  replaceKeepingFocus($("kinds-list"), rows);
}

function kindButton(label, kind, action, style = "") {
  const button = h("button", { class: `btn small ${style}`, type: "button", "data-key": `${label}:${kind.kind}` }, label);
  button.addEventListener("click", () => act(button, action));
  return button;
}

async function pause(kind, now) {
  if (now) {
    const sure = await confirmAction(
      `Pause ${kind.kind} now?`,
      `No worker claims ${kind.kind} until it is unpaused, and its running jobs stop now (reason: paused). They go back to the queue and go on from their last checkpoints when it is unpaused.`,
      "Pause now",
    );
    if (!sure) return;
  }
  const result = await api("POST", `kinds/${encodeURIComponent(kind.kind)}/pause`, { now });
  const stopped = result.stopping.length ? `; ${result.stopping.length} running job(s) go back to the queue` : "";
  toast(result.changed ? `Paused ${kind.kind}${stopped}.` : `${kind.kind} was paused already.`);
  await refreshKinds();
}

async function unpause(kind) {
  await api("POST", `kinds/${encodeURIComponent(kind.kind)}/unpause`);
  toast(`Unpaused ${kind.kind}.`);
  await refreshKinds();
}

// Only this strip and the page: the submit form keeps the kinds it has (rebuilding it would
// clear what someone is typing), and the set of kinds does not change while the server runs.
async function refreshKinds() {
  renderKinds((await api("GET", "kinds")).items);
}

export function openKindsPage() {
  document.title = "Kinds · andon";
  renderKindsPage(latest);
  refreshKinds().catch((error) => toast(error.message, "error"));
}

function methodsCell(stops) {
  const methods = Object.entries(stops.methods).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  if (!methods.length) return h("span", { class: "faint" }, "—");
  return h("ul", { class: "stop-methods" }, ...methods.map(([method, n]) => h("li", { class: FORCED.has(method) ? "forced" : "" }, `${method} ${n}`)));
}

function kindRow(kind) {
  const stops = kind.stops;
  const paused = kind.paused ? h("div", { class: "kind-state paused" }, "paused ", timeCell(kind.paused.paused_at)) : null;
  return h(
    "tr",
    { "data-kind": kind.kind, "data-needs-force": stops.needs_force ? "yes" : "no" },
    h("th", { scope: "row" }, h("div", { class: "kind-name" }, h("strong", null, kind.kind), needsForceBadge(kind)), paused),
    h("td", null, kind.isolation),
    h("td", { class: "num" }, stopTime(kind.grace_s)),
    h("td", { class: "num" }, String(stops.count)),
    h("td", { class: "num" }, stopTime(stops.p50_s)),
    h("td", { class: "num" }, stopTime(stops.p99_s)),
    h("td", { class: "num" }, stopTime(stops.max_s)),
    h("td", null, methodsCell(stops)),
  );
}

function forceNote(kind) {
  const stops = kind.stops;
  const forced = Object.entries(stops.methods).filter(([method]) => FORCED.has(method));
  const how = forced.map(([method, n]) => `${method} ${n}`).join(", ");
  return h(
    "p",
    { class: "needs-force-note", id: `needs-force-${kind.kind}` },
    h("strong", null, kind.kind),
    `: ${stops.forced} of ${plural(stops.count, "stop")} needed force (${how}). ${NEEDS_FORCE}`,
  );
}

function renderKindsPage(items) {
  const head = h("tr", null, ...["Kind", "Isolation", "Grace", "Stops", "Median", "p99", "Max", "Stopped by"].map((label, index) => h("th", { scope: "col", class: index >= 2 && index <= 6 ? "num" : "" }, label)));
  const notes = items.filter((kind) => kind.stops && kind.stops.needs_force).map(forceNote);
  const view = $("kinds-view");
  view.replaceChildren(
    h("a", { class: "back", href: "#/" }, "← All jobs"),
    h(
      "section",
      { class: "panel", "aria-labelledby": "kinds-page-title" },
      h("h1", { id: "kinds-page-title" }, "Kinds: how they stop"),
      h("p", { class: "help" }, "For each kind, its jobs that a cancel, timeout or force-fail stopped while they ran: the time from the request to the stop (median, 99th percentile, slowest) and what stopped them. cooperative and async: the handler stopped by itself; injected, terminated, killed and abandoned: andon had to force it."),
      items.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "kinds-table" }, h("thead", null, head), h("tbody", null, ...items.map(kindRow))))
        : h("p", { class: "empty" }, "This server has no kinds."),
      ...notes,
    ),
  );
}

// Pauses made elsewhere (the CLI, another browser) send no event: look again now and then.
export function setUpKinds() {
  setInterval(() => refreshKinds().catch(() => {}), REFRESH_MS);
}
