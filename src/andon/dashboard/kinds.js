// The kinds strip: which kinds are paused (no worker claims them), and pausing or
// unpausing one. Only admins may pause; anyone else gets the server's 403 as a toast.

import { api } from "./api.js";
import { $, h, replaceKeepingFocus } from "./dom.js";
import { timeCell } from "./format.js";
import { act, confirmAction, toast } from "./notices.js";

const REFRESH_MS = 10000;

// Show each kind with its pause state and the button that changes it.
export function renderKinds(items) {
  const rows = items.map((kind) => {
    const paused = kind.paused;
    const state = paused
      ? h("span", { class: "kind-state paused" }, "paused ", timeCell(paused.paused_at), paused.by ? ` by ${paused.by}` : "", paused.message ? ` · “${paused.message}”` : "")
      : null;
    const buttons = paused
      ? [kindButton("Unpause", kind, () => unpause(kind))]
      : [kindButton("Pause", kind, () => pause(kind, false)), kindButton("Pause now", kind, () => pause(kind, true), "stop")];
    return h("li", { "data-kind": kind.kind, "data-paused": paused ? "yes" : "no" }, h("strong", null, kind.kind), state, h("span", { class: "kind-actions" }, ...buttons));
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

// Only this strip: the submit form keeps the kinds it has (rebuilding it would clear what
// someone is typing), and the set of kinds does not change while the server runs.
async function refreshKinds() {
  renderKinds((await api("GET", "kinds")).items);
}

// Pauses made elsewhere (the CLI, another browser) send no event: look again now and then.
export function setUpKinds() {
  setInterval(() => refreshKinds().catch(() => {}), REFRESH_MS);
}
