// Live updates from the event stream (GET api/v1/stream, read with EventSource).

import { API, api } from "./api.js";
import { loadCards } from "./cards.js";
import { $ } from "./dom.js";
import { loadHistory, scheduleHistory } from "./history.js";
import { scheduleJobPage } from "./jobpage.js";
import { toast } from "./notices.js";
import { showUser } from "./session.js";
import { forget, jobChanged, remember, shown } from "./state.js";

const STREAM_EVENTS = ["hello", "resync", "job.created", "job.status", "job.progress", "job.items", "job.deleted"];

let syncing = false;
let pending = [];
let stream = null;

export function setLive(state, text) {
  const live = $("live");
  live.dataset.state = state;
  live.textContent = text;
}

function onEvent(name, data) {
  if (name === "hello" || name === "resync") {
    resync();
    return;
  }
  if (!name.startsWith("job.")) return;
  if (syncing) pending.push([name, data]);
  else applyEvent(name, data);
}

function applyEvent(name, data) {
  if (name === "job.deleted") {
    forget(data.id);
    jobChanged(data.id);
  } else if (data.job) {
    remember(data.job);
  }
  // Progress only changes what the history shows while it is on screen.
  const progressOnly = name === "job.progress" || name === "job.items";
  if (!progressOnly || !$("home").hidden) scheduleHistory();
}

// Fetch what is shown, then apply the events that arrived meanwhile: the stream's
// events always end at the latest state, so this cannot leave anything stale.
async function resync() {
  if (syncing) return;
  syncing = true;
  try {
    await Promise.all([loadCards(), loadHistory()]);
    if (shown.jobId) scheduleJobPage();
  } catch (error) {
    toast(error.message, "error");
  } finally {
    syncing = false;
    const queued = pending;
    pending = [];
    for (const [name, data] of queued) applyEvent(name, data);
  }
}

// EventSource reconnects by itself after a dropped connection (the server sends
// `retry: 2000`), and each new connection starts with `hello`, which resyncs. It gives
// up on an HTTP error instead: then an ordinary request finds out why (a 401 brings the
// login form back) before the stream is opened again.
export function openStream() {
  const source = new EventSource(`${API}stream`);
  stream = source;
  source.addEventListener("open", () => setLive("live", "live"));
  for (const name of STREAM_EVENTS) {
    source.addEventListener(name, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (error) {
        console.error("andon: bad event", error);
        return;
      }
      onEvent(name, data);
    });
  }
  source.addEventListener("error", () => {
    if (stream !== source) return;
    setLive("down", "reconnecting…");
    if (source.readyState !== EventSource.CLOSED) return;
    stream = null;
    setTimeout(() => {
      api("GET", "info")
        .then(showUser)
        .catch((error) => console.warn("andon: event stream", error))
        .finally(openStream);
    }, 2000);
  });
}
