// The andon dashboard: plain JavaScript modules, no dependencies, no build step.
//
// It is a client of the REST API like any other: which actions a job allows and which of
// two snapshots of a job is newer are the server's answers (job.actions, job.stage).
// This module starts the page and routes between the home page and a job's page.
//
//   api.js       requests to the REST API     session.js   signing in and out
//   state.js     the jobs the page knows      live.js      the event stream
//   cards.js     the active jobs panel        history.js   the history table
//   jobpage.js   one job's page               submit.js    the submit form
//   actions.js   the buttons of a job         notices.js   toasts, confirmations
//   format.js    how values read              dom.js       building elements as text
//   kinds.js     the kinds strip and page     tree.js      a job's children, nested
//   schedules.js periodic schedules: pause, resume, trigger
//   workers.js   the workers registry: alive, silent, stopped, dead; the header's worker text

import { api, whenUnauthorized } from "./api.js";
import { renderCards, setUpCards, tick } from "./cards.js";
import { $ } from "./dom.js";
import { setServerTime } from "./format.js";
import { setUpHistory } from "./history.js";
import { closeJobPage, openJobPage, setUpJobPage } from "./jobpage.js";
import { KINDS_HASH, openKindsPage, renderKinds, setUpKinds } from "./kinds.js";
import { openStream, setLive } from "./live.js";
import { setUpSchedules } from "./schedules.js";
import { toast } from "./notices.js";
import { forgetOldToken, logIn, setUpLogout, showUser } from "./session.js";
import { showKinds, setUpSubmitForm } from "./submit.js";
import { setUpWorkers } from "./workers.js";

function route() {
  const match = /^#\/jobs\/(.+)$/.exec(location.hash);
  const onJob = Boolean(match);
  const onKinds = location.hash === KINDS_HASH;
  $("home").hidden = onJob || onKinds;
  $("job-view").hidden = !onJob;
  $("kinds-view").hidden = !onKinds;
  if (match) {
    openJobPage(decodeURIComponent(match[1]));
  } else if (onKinds) {
    closeJobPage();
    openKindsPage();
  } else {
    closeJobPage();
    document.title = "andon";
    renderCards();
  }
}

async function start() {
  forgetOldToken();
  whenUnauthorized(logIn);
  setUpLogout();
  setUpCards();
  setUpHistory();
  setUpJobPage();
  setUpSubmitForm();
  const info = await api("GET", "info");
  showUser(info);
  setServerTime(info.server_time);
  $("server-info").title = `andon ${info.version}`;
  setUpWorkers(info);
  const kinds = (await api("GET", "kinds")).items;
  showKinds(kinds);
  renderKinds(kinds);
  setUpKinds();
  setUpSchedules();
  window.addEventListener("hashchange", route);
  route();
  setInterval(tick, 1000);
  openStream();
}

start().catch((error) => {
  setLive("down", "offline");
  toast(`Cannot reach the server: ${error.message}`, "error");
});
