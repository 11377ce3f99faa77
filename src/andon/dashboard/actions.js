// What a person can do to a job, shared by the cards, the history table and the job page.
// Which actions a job offers is the server's answer (job.actions), not decided here.

import { api, jobPath } from "./api.js";
import { $, h } from "./dom.js";
import { isActive, jobHref, plural, shortId } from "./format.js";
import { act, chooseAction, confirmAction, toast } from "./notices.js";
import { forget, historyChanged, remember, shown } from "./state.js";

// A cancel reaches the job's whole subtree: when that is more than the job, say how much
// (counted now, not when the page was drawn) and ask first.
async function cancel(job, button) {
  if (!(await cancelsDescendants(job, button, "Cancel", "queued ones are withdrawn, running ones are stopped"))) return;
  const updated = await act(button, () => api("POST", `${jobPath(job.id)}/cancel`, {}));
  if (updated) remember(updated);
}

// Whether to go on with a cancel of `job` (`label` on the confirmation's button), asking
// first when it also stops active descendants; false when kept or when the count failed.
async function cancelsDescendants(job, button, label, how) {
  const active = await activeDescendants(job, button);
  if (active === null) return false;
  if (active === 0) return true;
  return confirmAction(
    `${label} this job and its ${plural(active, "active descendant")}?`,
    `Job ${job.kind} ${shortId(job.id)} is stopped, and with it every job it started that is still active: ${how}. Partial results are kept.`,
    `${label} ${active + 1} jobs`,
  );
}

// A stop under way that still waits for its grace, which a cancel asking for none brings
// forward (the server's "hurried" outcome). Not while a cancel would replace the stop in
// force (then "cancel" is among job.actions: a pause, or a force-fail that allows a retry,
// would end otherwise), nor once the work has stopped (it waits for its descendants).
const canHurry = (job) =>
  job.status === "cancelling" && !job.actions.includes("cancel") && !!job.cancel && job.cancel.grace_s !== 0 && !job.cancel.stopped_at && !job.awaiting;

const STOP_NOW_RUNNING =
  "Stop the work at once, without waiting for the handler to finish its current step. Items it emitted so far are kept; the job ends cancelled.";
const STOP_NOW_STOPPING =
  "The work was asked to stop and is given time to finish its current step. Stop it at once instead, without waiting for that step; items it emitted so far are kept.";

// Cancel with no grace (grace_s 0, as `andon cancel --now`): a running job is stopped at
// once, with its running descendants; a job already stopping is stopped now (hurried).
async function stopNow(job, button) {
  const what = `${job.kind} ${shortId(job.id)}`;
  if (job.status === "running" && !(await cancelsDescendants(job, button, "Stop", "queued ones are withdrawn, running ones are stopped at once"))) return;
  const updated = await act(button, () => api("POST", `${jobPath(job.id)}/cancel`, { grace_s: 0 }));
  if (!updated) return;
  remember(updated);
  // The answer is the job as it is now; while its work is still being stopped, say that.
  if (updated.status === "cancelling" && updated.cancel && updated.cancel.grace_s === 0) toast(`Stopping ${what} now, without waiting for its current step.`);
  else if (updated.status !== "cancelled") toast(`${what} is ${updated.status}.`);
}

// How many jobs under this one are still active, counted now; null when it cannot be read
// (gone, or the server cannot be reached: act said so).
async function activeDescendants(job, button) {
  const fresh = await act(button, () => api("GET", jobPath(job.id)));
  return fresh ? fresh.descendants.active : null;
}

function alsoStops(active) {
  if (!active) return "";
  return active === 1 ? " Its active descendant is stopped with it." : ` Its ${active} active descendants are stopped with it.`;
}

async function cancelAndDelete(job, button) {
  const what = `${job.kind} ${shortId(job.id)}`;
  const active = await activeDescendants(job, button);
  if (active === null) return;
  const sure = await confirmAction(
    "Cancel and delete this job?",
    `Job ${what} is stopped if it runs, then deleted with its history and results.${alsoStops(active)}`,
    "Cancel & delete",
  );
  if (sure) await removeJob(job, button, `Deleted ${what}.`);
}

async function remove(job, button) {
  const what = `${job.kind} ${shortId(job.id)}`;
  const sure = await confirmAction("Remove this job?", `Job ${what} is deleted with its history and results.`, "Remove");
  if (sure) await removeJob(job, button, `Removed ${what}.`);
}

// What a force-fail will do is the server's answer, read now (fail_retries): on a kind with
// a retry policy and attempts left, the job runs again, unless "Fail, no retry" is chosen.
async function forceFail(job, button) {
  const fresh = await act(button, () => api("GET", jobPath(job.id)));
  if (!fresh) return;
  const what = `${job.kind} ${shortId(job.id)}`;
  const also = alsoStops(fresh.descendants.active);
  const retries = fresh.fail_retries;
  let retry = false;
  if (retries > 0) {
    const choice = await chooseAction(
      "Force-fail this job? It will run again",
      `The work of ${what} is stopped and counted as a failed attempt (reason: forced). Its kind's retry policy then runs it again: ${plural(retries, "attempt")} left. “Fail, no retry” ends it failed for good.${also}`,
      "Fail, run again",
      "Fail, no retry",
    );
    if (!choice) return;
    retry = choice === "yes";
  } else {
    const sure = await confirmAction("Force-fail this job?", `The work of ${what} is stopped and the job is recorded as failed (reason: forced). It will not run again.${also}`, "Force fail");
    if (!sure) return;
  }
  const updated = await act(button, () => api("POST", `${jobPath(job.id)}/fail`, { retry }));
  if (!updated) return;
  remember(updated);
  if (retry) toast(`Force-failed ${what}: its retry policy runs it again (${plural(retries, "attempt")} left).`);
}

async function resume(job, button) {
  const updated = await act(button, () => api("POST", `${jobPath(job.id)}/resume`));
  if (!updated) return;
  remember(updated);
  const from = updated.checkpoint ? ` from its checkpoint (${updated.checkpoint.items} items kept)` : "";
  toast(`Resumed ${job.kind} ${shortId(job.id)}${from}.`);
  historyChanged();
}

async function retry(job, button) {
  const created = await act(button, () => api("POST", `${jobPath(job.id)}/retry`));
  if (!created) return;
  remember(created);
  toast(`Queued a new attempt of ${job.kind}:`, "info", { href: jobHref(created.id), text: shortId(created.id) });
  historyChanged();
}

async function removeJob(job, button, message) {
  const done = await act(button, () => api("DELETE", jobPath(job.id)).then(() => true));
  if (!done) return;
  forget(job.id);
  toast(message);
  historyChanged();
  if (shown.jobId === job.id) location.hash = "#/";
}

function dismissCard(job) {
  forget(job.id);
  const next = $("active-list").querySelector("button, a");
  if (next) next.focus();
}

function actionButton(label, job, action, style = "", title = null) {
  const button = h("button", { class: `btn small ${style}`, type: "button", "data-key": `${label}:${job.id}`, title }, label);
  button.addEventListener("click", () => action(job, button));
  return button;
}

// What the buttons of a job depend on: rebuild them only when this changes.
export const buttonsKey = (job) => `${job.status}:${job.actions.join(",")}:${canHurry(job) ? "hurry" : ""}`;

// The buttons for what the job allows; `compact` leaves out the rarer ones (history rows),
// `dismiss` adds one that takes a finished job's card away.
export function jobButtons(job, { dismiss = false, compact = false } = {}) {
  const allows = new Set(job.actions);
  const buttons = [];
  if (job.status === "cancelling") {
    buttons.push(h("button", { class: "btn small stop busy", type: "button", disabled: true, "aria-busy": "true" }, "Cancelling…"));
  } else if (allows.has("cancel")) {
    buttons.push(actionButton("Cancel", job, cancel, "stop"));
  }
  if (isActive(job)) {
    if (compact) return buttons;
    // A queued job needs none: Cancel withdraws it at once. Offered to whoever may cancel it.
    if (job.status === "running" && allows.has("cancel")) buttons.push(actionButton("Stop now", job, stopNow, "stop", STOP_NOW_RUNNING));
    if (canHurry(job)) buttons.push(actionButton("Stop now", job, stopNow, "stop", STOP_NOW_STOPPING));
    if (allows.has("delete")) buttons.push(actionButton("Cancel & delete", job, cancelAndDelete));
    if (allows.has("fail")) buttons.push(actionButton("Force fail", job, forceFail));
  } else {
    if (allows.has("resume")) buttons.push(actionButton("Resume", job, resume, "primary"));
    // A history row has room for one way back: resume, which does nothing twice, when it can.
    if (allows.has("retry") && !(compact && allows.has("resume"))) buttons.push(actionButton("Retry", job, retry));
    if (allows.has("delete")) buttons.push(actionButton("Remove", job, remove));
  }
  if (dismiss && !isActive(job)) buttons.push(actionButton("Dismiss", job, dismissCard, "quiet"));
  return buttons;
}
