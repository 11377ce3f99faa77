// The workers panel: every worker in the store's registry and what it is now (alive,
// silent for N s, stopped, dead), with its slots in use and the jobs it runs. The server
// decides each status from facts (GET api/v1/workers); this only shows them. The same
// answer keeps the header's worker text and the Active panel's note true: nothing here
// guesses whether a worker runs.

import { api } from "./api.js";
import { $, h, replaceKeepingFocus } from "./dom.js";
import { jobHref, plural, shortId, timeCell } from "./format.js";

const REFRESH_MS = 2000;

let info = null; // GET info: the database, and this server's own worker (or null)

// "42 s", "3 min 05 s", "2 h 10 min": how long a worker has been silent.
function seconds(value) {
  const s = Math.max(0, Math.round(value));
  if (s < 60) return `${s} s`;
  const minutes = Math.floor(s / 60);
  if (minutes < 60) return `${minutes} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

export function stateText(worker) {
  if (worker.status !== "silent") return worker.status;
  const past = worker.silent_s >= worker.lease_s ? " (past its lease)" : "";
  return `silent for ${seconds(worker.silent_s)}${past}`;
}

function slotsBar(worker) {
  const ended = worker.status === "stopped" || worker.status === "dead";
  const share = worker.slots && !ended ? (100 * worker.slots_in_use) / worker.slots : 0;
  const fill = h("span", { class: "fill" });
  fill.style.width = `${share}%`; // through the CSSOM: the page's CSP refuses style attributes
  return h(
    "span",
    { class: "worker-slots" },
    h("span", { class: "bar", "aria-hidden": "true" }, fill),
    ended ? `${plural(worker.slots, "slot")}` : `${worker.slots_in_use} / ${plural(worker.slots, "slot")} in use`,
  );
}

function jobsLine(worker) {
  if (!worker.running) return null;
  const links = worker.job_ids.map((id) => h("a", { href: jobHref(id), title: id }, shortId(id)));
  const hidden = worker.running - worker.job_ids.length;
  return h(
    "span",
    { class: "worker-jobs" },
    `running ${plural(worker.running, "job")}: `,
    ...links.flatMap((link, i) => (i ? [", ", link] : [link])),
    hidden > 0 ? `${links.length ? ", " : ""}${hidden} of other users` : null,
  );
}

function endLine(worker) {
  if (worker.stopped_at === null) {
    return h("span", { class: "worker-times" }, "started ", timeCell(worker.started_at), ` · heartbeat ${seconds(worker.heartbeat_age_s)} ago`);
  }
  const verb = worker.status === "dead" ? "found dead " : "stopped ";
  return h(
    "span",
    { class: "worker-times" },
    "started ",
    timeCell(worker.started_at),
    ` · ${verb}`,
    timeCell(worker.stopped_at),
    worker.end_message ? h("span", { class: "worker-end" }, worker.end_message) : null,
  );
}

export function renderWorkers(answer) {
  const rows = answer.items.map((worker) =>
    h(
      "li",
      { "data-worker": worker.id, "data-status": worker.status },
      h("span", { class: "worker-head" }, h("strong", { class: "worker-id" }, worker.id), h("span", { class: `badge w-${worker.status}` }, stateText(worker))),
      h("span", { class: "worker-where" }, `${worker.host} · pid ${worker.pid} · andon ${worker.version}`),
      slotsBar(worker),
      jobsLine(worker),
      h("span", { class: "worker-kinds", title: worker.kinds.join(", ") }, `kinds: ${worker.kinds.join(", ")}`),
      endLine(worker),
    ),
  );
  replaceKeepingFocus($("workers-list"), rows);
  $("workers-empty").hidden = answer.items.length > 0;
  showSummary(answer.summary, answer.items);
}

// The header's text and the Active panel's note, from the registry's summary.
export function showSummary(summary, items = null) {
  const own = info && info.worker;
  const alive = summary.alive ? `${plural(summary.alive, "worker")} alive (${summary.slots_in_use} / ${plural(summary.slots, "slot")} in use)` : "no worker is alive";
  const here = own ? `this server's worker: ${plural(own.concurrency, "slot")}` : "no worker in this server";
  $("server-info").textContent = `${info ? info.database : ""} · ${here} · ${alive}`;
  $("workers-count").textContent = summary.alive ? `${summary.alive} alive` : "";
  const note = $("no-worker-note");
  note.hidden = Boolean(own);
  if (own) return;
  if (summary.alive) {
    const names = (items || []).filter((w) => w.status === "alive").map((w) => `${w.id} (${plural(w.slots, "slot")})`);
    const list = names.length ? names.join(", ") : summary.alive_ids.join(", ");
    note.replaceChildren(`This server runs no worker; ${plural(summary.alive, "worker")} alive in the store claim${summary.alive === 1 ? "s" : ""} its jobs: ${list}.`);
  } else {
    const silent = summary.silent ? ` (${summary.silent} silent)` : "";
    note.replaceChildren(
      `This server runs no worker, and no worker is alive in the store${silent}: jobs wait until an `,
      h("code", null, "andon worker"),
      " on the same database claims them.",
    );
  }
}

async function refreshWorkers() {
  renderWorkers(await api("GET", "workers"));
}

// Heartbeats and deaths send no event: look again every two seconds.
export function setUpWorkers(serverInfo) {
  info = serverInfo;
  showSummary(serverInfo.workers);
  refreshWorkers().catch(() => {});
  setInterval(() => refreshWorkers().catch(() => {}), REFRESH_MS);
}
