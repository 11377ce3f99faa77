// The schedules panel: every periodic schedule with its timing, next tick and last
// outcome, and pausing, resuming or triggering one. Only admins may change a schedule;
// anyone else gets the server's 403 as a toast. Every value goes in as text (h()).

import { api } from "./api.js";
import { $, h, replaceKeepingFocus } from "./dom.js";
import { timeCell } from "./format.js";
import { act, toast } from "./notices.js";

const REFRESH_MS = 5000;

export function renderSchedules(answer) {
  const rows = answer.items.map((schedule) => {
    const last = schedule.last_ticks[0];
    const next = schedule.paused_at
      ? h("span", { class: "kind-state paused" }, "paused ", timeCell(schedule.paused_at), schedule.paused_by ? ` by ${schedule.paused_by}` : "")
      : h("span", { class: "schedule-next" }, "next ", schedule.next_at ? timeCell(schedule.next_at) : "-");
    const outcome = last
      ? h(
          "span",
          { class: `schedule-last outcome-${last.outcome}`, title: last.message || "" },
          "last: ",
          last.outcome,
          " ",
          timeCell(last.tick_at),
          last.job_id ? [" ", h("a", { href: `#/jobs/${encodeURIComponent(last.job_id)}` }, "job")] : null,
        )
      : h("span", { class: "schedule-last" }, "no tick yet");
    const buttons = [
      schedule.paused_at
        ? scheduleButton("Resume", schedule, () => change(schedule, "resume", "Resumed"))
        : scheduleButton("Pause", schedule, () => change(schedule, "pause", "Paused")),
      scheduleButton("Trigger", schedule, () => trigger(schedule)),
    ];
    return h(
      "li",
      { "data-schedule": schedule.name, "data-paused": schedule.paused_at ? "yes" : "no" },
      h("strong", null, schedule.name),
      h("span", { class: "schedule-timing" }, ` ${schedule.kind} · ${schedule.timing} · overlap ${schedule.overlap}`),
      next,
      outcome,
      h("span", { class: "kind-actions" }, ...buttons),
    );
  });
  replaceKeepingFocus($("schedules-list"), rows);
  const leader = answer.leader;
  $("schedules-leader").textContent = answer.items.length
    ? leader
      ? `Fired by the scheduler of ${leader.holder}.`
      : "No scheduler leads now: ticks wait until a worker runs."
    : "No schedules: declare one with @app.periodic, or add one with andon schedules add.";
}

function scheduleButton(label, schedule, action) {
  const button = h("button", { class: "btn small", type: "button", "data-key": `${label}:${schedule.name}` }, label);
  button.addEventListener("click", () => act(button, action));
  return button;
}

async function change(schedule, verb, done) {
  await api("POST", `schedules/${encodeURIComponent(schedule.name)}/${verb}`);
  toast(`${done} ${schedule.name}.`);
  await refreshSchedules();
}

async function trigger(schedule) {
  const tick = await api("POST", `schedules/${encodeURIComponent(schedule.name)}/trigger`);
  toast(tick.outcome === "triggered" ? `Triggered ${schedule.name}.` : `${schedule.name}: ${tick.message || tick.outcome}`);
  await refreshSchedules();
}

async function refreshSchedules() {
  renderSchedules(await api("GET", "schedules?ticks=1"));
}

// Ticks send no event of their own: look again now and then.
export function setUpSchedules() {
  refreshSchedules().catch(() => {});
  setInterval(() => refreshSchedules().catch(() => {}), REFRESH_MS);
}
