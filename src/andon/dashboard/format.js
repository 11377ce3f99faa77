// How jobs, times and values read on the page.

import { h } from "./dom.js";

const STATUSES = ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"];

let skew = 0; // server clock minus ours, in seconds

export function setServerTime(serverTime) {
  skew = serverTime - Date.now() / 1000;
}

export const now = () => Date.now() / 1000 + skew;
export const shortId = (id) => (id.length > 12 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id);
export const jobHref = (id) => `#/jobs/${encodeURIComponent(id)}`;
export const isActive = (job) => !job.is_terminal;
export const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  if (seconds < 10) return `${Math.max(0, seconds).toFixed(1)} s`;
  const s = Math.floor(seconds);
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const secs = String(s % 60).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
}

// A stop time as the CLI writes it (andon.cli._format.seconds): "7 ms" below a second,
// "4.2 s" below a minute, then "3 min 07 s": a stop is often a few milliseconds.
export function stopTime(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, seconds);
  if (s < 1) return `${(s * 1000).toFixed(0)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const minutes = Math.floor(Math.round(s) / 60);
  const secs = String(Math.round(s) % 60).padStart(2, "0");
  return minutes < 60 ? `${minutes} min ${secs} s` : `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
}

// How a stop went, in a few words: "cooperative in 7 ms".
export function stopHow(cancel) {
  if (!cancel || !cancel.stop_method) return "";
  // A withdrawn job never ran: there was no work to stop, so no stop time to tell.
  const timed = cancel.stop_method !== "withdrawn" && cancel.stop_seconds !== null && cancel.stop_seconds !== undefined;
  return timed ? `${cancel.stop_method} in ${stopTime(cancel.stop_seconds)}` : cancel.stop_method;
}

function clock(at) {
  if (!at) return "—";
  const date = new Date(at * 1000);
  const today = new Date().toDateString() === date.toDateString();
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return today ? time : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

export function timeCell(at) {
  return at ? h("time", { datetime: new Date(at * 1000).toISOString(), title: new Date(at * 1000).toString() }, clock(at)) : "—";
}

export function number(value) {
  if (value === null || value === undefined) return "?";
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

export function badge(status) {
  return h("span", { class: `badge s-${STATUSES.includes(status) ? status : "unknown"}` }, status);
}

// "child of <parent>", a link to the parent's page (cards, history rows, the job page).
export function childOf(job, label = "child of ") {
  if (!job.parent_id) return null;
  return h("span", { class: "child-of", title: `Submitted by job ${job.parent_id}` }, label, h("a", { href: jobHref(job.parent_id) }, shortId(job.parent_id)));
}

export function reasonText(job) {
  if (job.cancel) {
    let text = job.cancel.reason;
    if (job.cancel.message) text += `: ${job.cancel.message}`;
    if (job.cancel.stop_method) text += ` (${stopHow(job.cancel)})`;
    return text;
  }
  if (job.error) return `${job.error.type}: ${job.error.message}`;
  if (job.status === "succeeded") return "completed";
  return (job.progress && job.progress.message) || "";
}

// A queued job whose due time is still ahead: scheduled (run_at / delay, or a retry's backoff).
export const isScheduled = (job) => job.status === "queued" && job.due_at !== null && job.due_at !== undefined && job.due_at > now();

// "scheduled: in 4:10 (20:33:01)", for a job that is not due yet; null otherwise.
export function dueText(job) {
  if (!isScheduled(job)) return null;
  return `scheduled: starts in ${duration(job.due_at - now())} (${clock(job.due_at)})`;
}

export function elapsedText(job) {
  if (isScheduled(job)) return `due in ${duration(job.due_at - now())}`;
  if (job.status === "queued") return `waiting ${duration(now() - job.created_at)}`;
  if (job.started_at === null) return "—";
  return duration((job.finished_at || now()) - job.started_at);
}

// Short values stay on one line; longer ones are indented to be readable.
export function json(value) {
  const flat = JSON.stringify(value);
  return flat !== undefined && flat.length <= 100 ? flat : JSON.stringify(value, null, 2);
}
