// The andon dashboard: plain JavaScript, no dependencies, no build step.
//
// It is a client of the REST API like any other. Live updates come from the event stream
// (GET api/v1/stream, read with EventSource).
//
// Signing in: when the API answers 401, the page asks for a token once, exchanges it for
// an HttpOnly, SameSite=Strict session cookie (POST api/session) and forgets it: from
// then on only the browser holds the credential, out of reach of any script, and every
// request (the event stream too) carries it on its own.
//
// Safety rule: job data only ever reaches the page as text (textContent, text nodes,
// attribute values). Nothing here assigns innerHTML.
"use strict";

(() => {
  const API = "api/v1/";
  const ACTIVE = ["queued", "running", "cancelling"];
  const STATUSES = ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"];
  const HISTORY_PAGE = 20;
  const RESULTS_PAGE = 50;
  const FINISHED_KEEP_MS = 10 * 60 * 1000;
  const FINISHED_MAX = 12;
  const OLD_TOKEN_KEY = "andon.token"; // where earlier versions kept the token: cleared on load
  const STREAM_EVENTS = ["hello", "resync", "job.created", "job.status", "job.progress", "job.items", "job.deleted"];

  const $ = (id) => document.getElementById(id);

  // -- DOM helpers --------------------------------------------------------------------

  // h("a", {href: "#/", class: "x", onclick: fn}, "text", child): attributes are set with
  // setAttribute and children become text nodes unless they already are nodes.
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // Replace a container's children, keeping keyboard focus on the element with the same
  // data-key (a re-rendered button) and <details> open where they were.
  function replaceKeepingFocus(container, children) {
    const focused = document.activeElement;
    const key = focused && container.contains(focused) ? focused.dataset.key : undefined;
    const open = new Set([...container.querySelectorAll("details[open][data-key]")].map((d) => d.dataset.key));
    container.replaceChildren(...children);
    for (const details of container.querySelectorAll("details[data-key]")) {
      if (open.has(details.dataset.key)) details.open = true;
    }
    if (key) {
      const again = [...container.querySelectorAll("[data-key]")].find((el) => el.dataset.key === key);
      if (again && !again.disabled) again.focus();
    }
  }

  // -- formatting ---------------------------------------------------------------------

  let skew = 0; // server clock minus ours, in seconds
  const now = () => Date.now() / 1000 + skew;
  const shortId = (id) => (id.length > 12 ? `${id.slice(0, 8)}…${id.slice(-4)}` : id);
  const jobHref = (id) => `#/jobs/${encodeURIComponent(id)}`;
  const isActive = (job) => ACTIVE.includes(job.status);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  function duration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
    if (seconds < 10) return `${Math.max(0, seconds).toFixed(1)} s`;
    const s = Math.floor(seconds);
    const hours = Math.floor(s / 3600);
    const minutes = Math.floor((s % 3600) / 60);
    const secs = String(s % 60).padStart(2, "0");
    return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${secs}` : `${minutes}:${secs}`;
  }

  function clock(at) {
    if (!at) return "—";
    const date = new Date(at * 1000);
    const today = new Date().toDateString() === date.toDateString();
    const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return today ? time : `${date.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
  }

  function timeCell(at) {
    return at ? h("time", { datetime: new Date(at * 1000).toISOString(), title: new Date(at * 1000).toString() }, clock(at)) : "—";
  }

  function number(value) {
    if (value === null || value === undefined) return "?";
    return Number.isInteger(value) ? String(value) : value.toFixed(1);
  }

  function badge(status) {
    return h("span", { class: `badge s-${STATUSES.includes(status) ? status : "unknown"}` }, status);
  }

  function reasonText(job) {
    if (job.cancel) {
      let text = job.cancel.reason;
      if (job.cancel.message) text += `: ${job.cancel.message}`;
      if (job.cancel.stop_method) text += ` (${job.cancel.stop_method})`;
      return text;
    }
    if (job.error) return `${job.error.type}: ${job.error.message}`;
    if (job.status === "succeeded") return "completed";
    return (job.progress && job.progress.message) || "";
  }

  function elapsedText(job) {
    if (job.status === "queued") return `waiting ${duration(now() - job.created_at)}`;
    if (job.started_at === null) return "—";
    return duration((job.finished_at || now()) - job.started_at);
  }

  // Short values stay on one line; longer ones are indented to be readable.
  function json(value) {
    const flat = JSON.stringify(value);
    return flat !== undefined && flat.length <= 100 ? flat : JSON.stringify(value, null, 2);
  }

  // -- talking to the server ----------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(detail.message || `HTTP ${status}`);
      this.status = status;
      this.detail = detail;
    }
  }

  async function api(method, path, body) {
    for (;;) {
      const init = { method, headers: { Accept: "application/json" }, cache: "no-store" };
      if (body !== undefined) {
        init.headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(body);
      }
      const response = await fetch(API + path, init);
      if (response.status === 401) {
        await logIn();
        continue;
      }
      if (response.status === 204) return null;
      const data = await response.json().catch(() => null);
      if (!response.ok) throw new ApiError(response.status, (data && data.error) || {});
      return data;
    }
  }

  // -- signing in -----------------------------------------------------------------------

  let user = null; // {name, role} of whoever this page is signed in as; null on an open server

  function showUser(info) {
    user = info.user || null;
    $("who").hidden = !user;
    $("who-name").textContent = user ? `signed in as ${user.name} (${user.role})` : "";
  }

  // Leave the page for a fresh copy of itself: nothing the last user saw stays in memory.
  function startOver() {
    location.replace(location.pathname + location.search);
  }

  let loginPrompt = null;

  // Every request that meets a 401 waits on the same prompt, so the token is asked once.
  function logIn() {
    if (!loginPrompt) {
      loginPrompt = new Promise((resolve) => {
        const dialog = $("token-dialog");
        const input = $("token-input");
        document.body.dataset.auth = "out";
        $("token-note").textContent = user ? "Your session ended (it expired, or its token was revoked): log in again." : "";
        input.value = "";
        $("token-form").onsubmit = async (event) => {
          event.preventDefault();
          const button = $("token-submit");
          button.disabled = true;
          try {
            const info = await openSession(input.value.trim());
            if (!info) return;
            input.value = "";
            if (user && info.user && info.user.name !== user.name) {
              startOver(); // another person: do not let the last one's requests go on as them
              return;
            }
            showUser(info);
            delete document.body.dataset.auth;
            dialog.close();
            loginPrompt = null;
            resolve();
          } finally {
            button.disabled = false;
          }
        };
        dialog.addEventListener("cancel", (event) => event.preventDefault());
        dialog.showModal();
        input.focus();
      });
    }
    return loginPrompt;
  }

  // Trade a token for the session cookie; the token lives only in this call. Returns who
  // the server now says we are, or null after showing what went wrong.
  async function openSession(value) {
    const note = $("token-note");
    if (!value) {
      note.textContent = "Paste a token first.";
      return null;
    }
    try {
      const response = await fetch("api/session", {
        method: "POST",
        headers: { Accept: "application/json", Authorization: `Bearer ${value}` },
        cache: "no-store",
      });
      if (response.status === 401) {
        note.textContent = "That token was refused.";
        $("token-input").select();
        return null;
      }
      if (!response.ok) {
        const data = await response.json().catch(() => null);
        note.textContent = (data && data.error && data.error.message) || `The server answered HTTP ${response.status}.`;
        return null;
      }
      const info = await fetch(`${API}info`, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!info.ok) {
        note.textContent = `Logged in, but the server then answered HTTP ${info.status}: try again.`;
        return null;
      }
      return await info.json();
    } catch (error) {
      note.textContent = `Cannot reach the server: ${error.message}`;
      return null;
    }
  }

  $("logout").addEventListener("click", async (event) => {
    const done = await act(event.currentTarget, async () => {
      const response = await fetch("api/session", { method: "DELETE", cache: "no-store" });
      if (!response.ok) throw new Error(`Could not log out: HTTP ${response.status}`);
      return true;
    });
    if (done) startOver();
  });

  // -- notices and confirmations --------------------------------------------------------

  function toast(text, kind = "info", link = null) {
    const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
    if (link) item.append(" ", h("a", { href: link.href }, link.text));
    $("toasts").append(item);
    setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
  }

  function confirmAction(title, text, action) {
    const dialog = $("confirm-dialog");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = action;
    dialog.returnValue = "";
    dialog.showModal();
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    });
  }

  // Run a request from a button: the button shows a spinner and cannot be pressed twice.
  async function act(button, work) {
    if (button) {
      button.disabled = true;
      button.classList.add("busy");
      button.setAttribute("aria-busy", "true");
    }
    try {
      return await work();
    } catch (error) {
      toast(error.message, "error");
      return null;
    } finally {
      if (button && button.isConnected) {
        button.disabled = false;
        button.classList.remove("busy");
        button.removeAttribute("aria-busy");
      }
    }
  }

  // -- job actions (shared by the cards, the history table and the job page) ------------

  const actions = {
    async cancel(job, button) {
      const updated = await act(button, () => api("POST", `jobs/${encodeURIComponent(job.id)}/cancel`, {}));
      if (updated) remember(updated);
    },
    async cancelAndDelete(job, button) {
      const what = `${job.kind} ${shortId(job.id)}`;
      const sure = await confirmAction(
        "Cancel and delete this job?",
        `Job ${what} is stopped if it runs, then deleted with its history and results.`,
        "Cancel & delete",
      );
      if (sure) await removeJob(job, button, `Deleted ${what}.`);
    },
    async remove(job, button) {
      const what = `${job.kind} ${shortId(job.id)}`;
      const sure = await confirmAction("Remove this job?", `Job ${what} is deleted with its history and results.`, "Remove");
      if (sure) await removeJob(job, button, `Removed ${what}.`);
    },
    async forceFail(job, button) {
      const sure = await confirmAction(
        "Force-fail this job?",
        `The work of ${job.kind} ${shortId(job.id)} is stopped and the job is recorded as failed (reason: forced).`,
        "Force fail",
      );
      if (!sure) return;
      const updated = await act(button, () => api("POST", `jobs/${encodeURIComponent(job.id)}/fail`, {}));
      if (updated) remember(updated);
    },
    async retry(job, button) {
      const created = await act(button, () => api("POST", `jobs/${encodeURIComponent(job.id)}/retry`));
      if (!created) return;
      remember(created);
      toast(`Queued a new attempt of ${job.kind}:`, "info", { href: jobHref(created.id), text: shortId(created.id) });
      scheduleHistory();
    },
  };

  async function removeJob(job, button, message) {
    const done = await act(button, () => api("DELETE", `jobs/${encodeURIComponent(job.id)}`).then(() => true));
    if (!done) return;
    forget(job.id);
    toast(message);
    scheduleHistory();
    if (jobPage.id === job.id) location.hash = "#/";
  }

  function actionButton(label, job, action, style = "") {
    const button = h("button", { class: `btn small ${style}`, type: "button", "data-key": `${label}:${job.id}` }, label);
    button.addEventListener("click", () => action(job, button));
    return button;
  }

  // The buttons a job offers in its state; `compact` leaves out the rarer ones (history rows).
  function jobButtons(job, { dismiss = false, compact = false } = {}) {
    const buttons = [];
    if (job.status === "queued" || job.status === "running") {
      buttons.push(actionButton("Cancel", job, actions.cancel, "stop"));
    } else if (job.status === "cancelling") {
      buttons.push(
        h("button", { class: "btn small stop busy", type: "button", disabled: true, "aria-busy": "true" }, "Cancelling…"),
      );
    }
    if (isActive(job)) {
      if (compact) return buttons;
      buttons.push(actionButton("Cancel & delete", job, actions.cancelAndDelete));
      buttons.push(actionButton("Force fail", job, actions.forceFail));
    } else {
      if (job.status === "failed" || job.status === "cancelled") buttons.push(actionButton("Retry", job, actions.retry));
      buttons.push(actionButton("Remove", job, actions.remove));
    }
    if (dismiss && !isActive(job)) buttons.push(actionButton("Dismiss", job, (j) => dismissCard(j.id), "quiet"));
    return buttons;
  }

  // -- the active jobs panel ------------------------------------------------------------

  // Jobs shown as cards: the active ones, and those that ended while shown (so a cancel
  // ends visibly, with the count of items kept) until dismissed or old.
  const cards = new Map(); // id -> job summary
  const endedAt = new Map(); // id -> Date.now() when it ended while shown
  const cardViews = new Map(); // id -> {li, status, parts}

  // A response or event can arrive after a newer one (a list request that was slow, a
  // snapshot taken before a cancel): never move a card backwards in its job's life. A
  // finished job never becomes active again (a retry is a new job), and a cancelling
  // attempt never goes back to plain running.
  function isStale(incoming, current) {
    if (!current) return false;
    if (!isActive(current)) return isActive(incoming);
    return current.status === "cancelling" && incoming.status === "running" && incoming.attempt === current.attempt;
  }

  function remember(job) {
    if (isStale(job, cards.get(job.id))) return;
    if (isActive(job)) {
      cards.set(job.id, job);
      endedAt.delete(job.id);
    } else if (cards.has(job.id)) {
      cards.set(job.id, job);
      if (!endedAt.has(job.id)) endedAt.set(job.id, Date.now());
    }
    renderCards();
    if (jobPage.id === job.id) scheduleJobPage();
  }

  function forget(id) {
    cards.delete(id);
    endedAt.delete(id);
    renderCards();
  }

  function dismissCard(id) {
    forget(id);
    const next = $("active-list").querySelector("button, a");
    if (next) next.focus();
  }

  function pruneEnded() {
    const ended = [...endedAt.entries()].sort((a, b) => b[1] - a[1]);
    ended.forEach(([id, at], index) => {
      if (index >= FINISHED_MAX || Date.now() - at > FINISHED_KEEP_MS) {
        cards.delete(id);
        endedAt.delete(id);
      }
    });
  }

  function renderCards() {
    pruneEnded();
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
        job.owner ? h("span", { class: "card-owner", title: "Owner" }, job.owner) : null,
        h("span", { class: "spacer" }),
        parts.elapsed,
      ),
      h("div", { class: "progress-line" }, parts.bar, parts.count),
      parts.message,
      parts.actions,
    );
    return { li, parts, status: null };
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
    // Buttons depend on the status alone. Rebuilding them on every item (many a second)
    // would swap the button under a pointer between press and release and lose the click.
    if (view.status !== job.status) {
      const hadFocus = view.li.contains(document.activeElement) && parts.actions.contains(document.activeElement);
      replaceKeepingFocus(parts.actions, jobButtons(job, { dismiss: true }));
      if (hadFocus && !parts.actions.contains(document.activeElement)) {
        const first = parts.actions.querySelector("button:not([disabled])") || parts.link;
        first.focus();
      }
      view.status = job.status;
    }
  }

  function idleText(job) {
    if (job.status === "queued") return "waiting for a free worker slot";
    if (job.status === "cancelling") return "asked to stop; waiting for the work to stop";
    return job.progress ? "" : "running (this job reports no progress)";
  }

  // What a finished card says in place of its progress message.
  function outcomeText(job) {
    const total = job.progress && job.progress.total;
    const items = job.items_count;
    if (job.status === "cancelled") {
      const of = total ? ` of ${number(total)}` : "";
      const how = job.cancel && job.cancel.stop_method ? `, stopped: ${job.cancel.stop_method}` : "";
      return `cancelled: ${items}${of} ${items === 1 ? "item" : "items"} kept${how}`;
    }
    if (job.status === "failed") return `failed: ${job.error ? `${job.error.type}: ${job.error.message}` : reasonText(job)}`;
    if (job.status === "succeeded") return `succeeded: ${plural(items, "item")}`;
    return "";
  }

  async function loadCards() {
    const query = new URLSearchParams({ limit: "100" });
    for (const status of ACTIVE) query.append("status", status);
    const page = await api("GET", `jobs?${query}`);
    const seen = new Set(page.items.map((job) => job.id));
    // Shown jobs missing from the list ended meanwhile: fetch them once to show how.
    const missing = [...cards.keys()].filter((id) => !seen.has(id) && isActive(cards.get(id)));
    const ended = await Promise.all(missing.map((id) => api("GET", `jobs/${encodeURIComponent(id)}`).catch(() => null)));
    missing.forEach((id, index) => {
      if (ended[index] === null) forget(id);
    });
    for (const job of [...page.items, ...ended.filter(Boolean)]) {
      if (isStale(job, cards.get(job.id))) continue;
      if (isActive(job)) cards.set(job.id, job);
      else remember(job);
    }
    renderCards();
  }

  $("cancel-all").addEventListener("click", async (event) => {
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
  });

  // -- the submit form --------------------------------------------------------------------

  let kinds = [];

  function renderKinds() {
    const select = $("submit-kind");
    const previous = select.value;
    select.replaceChildren(...kinds.map((kind) => h("option", { value: kind.kind }, kind.kind)));
    if (kinds.some((kind) => kind.kind === previous)) select.value = previous;
    const filter = $("filter-kind");
    const chosen = filter.value;
    filter.replaceChildren(h("option", { value: "" }, "all"), ...kinds.map((kind) => h("option", { value: kind.kind }, kind.kind)));
    filter.value = chosen;
    renderParams();
  }

  function currentKind() {
    return kinds.find((kind) => kind.kind === $("submit-kind").value);
  }

  // A param's schema with a "null" alternative folded into `nullable`.
  function simplify(schema) {
    const options = schema.anyOf || schema.oneOf;
    if (options) {
      const real = options.filter((option) => option.type !== "null");
      if (real.length === 1) return { ...real[0], ...schema, anyOf: undefined, oneOf: undefined, nullable: true };
    }
    return schema;
  }

  function renderParams() {
    const fieldset = $("submit-params");
    const kind = currentKind();
    $("submit-kind-help").textContent = kind ? kind.description : "";
    const timeout = $("submit-timeout");
    timeout.placeholder = kind && kind.timeout_s ? `${kind.timeout_s} (default)` : "none (default)";
    const schema = (kind && kind.params_schema) || {};
    const properties = schema.properties || {};
    const required = new Set(schema.required || []);
    const fields = Object.entries(properties).map(([name, property]) => paramField(name, simplify(property), required.has(name)));
    fieldset.replaceChildren(h("legend", null, "Params"), ...(fields.length ? fields : [h("p", { class: "help" }, "This kind takes no params.")]));
    $("submit-errors").replaceChildren();
  }

  function paramField(name, schema, required) {
    const id = `param-${name}`;
    const label = h("label", { for: id }, name, required ? h("span", { class: "required", title: "required" }, " *") : null);
    const hasDefault = Object.prototype.hasOwnProperty.call(schema, "default");
    let input;
    let type = schema.type;
    if (Array.isArray(schema.enum)) {
      type = "enum";
      input = h("select", { id }, ...(required ? [] : [h("option", { value: "" }, "—")]), ...schema.enum.map((v) => h("option", { value: JSON.stringify(v) }, String(v))));
      if (hasDefault) input.value = JSON.stringify(schema.default);
    } else if (type === "boolean") {
      input = h("input", { id, type: "checkbox" });
      input.checked = hasDefault ? Boolean(schema.default) : false;
    } else if (type === "integer" || type === "number") {
      input = h("input", { id, type: "number", step: type === "integer" ? "1" : "any", inputmode: type === "integer" ? "numeric" : "decimal" });
      if (schema.minimum !== undefined) input.min = schema.minimum;
      if (schema.maximum !== undefined) input.max = schema.maximum;
      if (hasDefault && schema.default !== null) input.value = String(schema.default);
    } else if (type === "string") {
      input = h("input", { id, type: "text", autocomplete: "off" });
      if (hasDefault && schema.default !== null) input.value = schema.default;
    } else {
      type = "json";
      input = h("textarea", { id, rows: "3", spellcheck: "false", class: "mono" });
      if (hasDefault) input.value = JSON.stringify(schema.default);
    }
    input.name = name;
    input.dataset.type = type;
    input.dataset.nullable = schema.nullable ? "1" : "";
    if (required) input.required = true;
    const shape = { array: "JSON list, e.g. [\"a\", \"b\"]", object: "JSON object, e.g. {\"key\": 1}" };
    const help = [type === "json" ? shape[schema.type] || "JSON" : type];
    if (hasDefault) help.push(`default ${JSON.stringify(schema.default)}`);
    if (schema.description) help.push(schema.description);
    const helpEl = h("p", { class: "help", id: `${id}-help` }, help.join(" · "));
    input.setAttribute("aria-describedby", helpEl.id);
    const field = h("div", { class: type === "boolean" ? "field check" : "field" });
    if (type === "boolean") field.append(input, label, helpEl);
    else field.append(label, input, helpEl);
    return field;
  }

  // The params as JSON values, or a list of problems.
  function collectParams() {
    const params = {};
    const problems = [];
    for (const input of $("submit-params").querySelectorAll("[data-type]")) {
      const { name } = input;
      const type = input.dataset.type;
      const raw = input.type === "checkbox" ? null : input.value.trim();
      if (type === "boolean") {
        params[name] = input.checked;
        continue;
      }
      if (raw === "") {
        if (input.required) problems.push(`${name}: required`);
        else if (input.dataset.nullable) params[name] = null;
        continue;
      }
      if (type === "integer" || type === "number") {
        const value = Number(raw);
        if (!Number.isFinite(value) || (type === "integer" && !Number.isInteger(value))) problems.push(`${name}: not ${type === "integer" ? "a whole number" : "a number"}`);
        else params[name] = value;
      } else if (type === "enum" || type === "json") {
        try {
          params[name] = JSON.parse(raw);
        } catch {
          problems.push(`${name}: not valid JSON`);
        }
      } else {
        params[name] = raw;
      }
    }
    return { params, problems };
  }

  function showProblems(problems) {
    $("submit-errors").replaceChildren(...problems.map((problem) => h("p", null, problem)));
  }

  $("submit-kind").addEventListener("change", renderParams);

  $("submit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const kind = currentKind();
    if (!kind) return;
    const { params, problems } = collectParams();
    const body = { kind: kind.kind, params };
    const timeout = $("submit-timeout").value.trim();
    if (timeout !== "") {
      const seconds = Number(timeout);
      if (!(seconds > 0)) problems.push("timeout: a positive number of seconds");
      else body.timeout_s = seconds;
    }
    if (problems.length) {
      showProblems(problems);
      return;
    }
    showProblems([]);
    const button = $("submit-button");
    button.disabled = true;
    try {
      const job = await api("POST", "jobs", body);
      if (!isStale(job, cards.get(job.id))) cards.set(job.id, job);
      renderCards();
      toast(`Submitted ${job.kind}:`, "info", { href: jobHref(job.id), text: shortId(job.id) });
      scheduleHistory();
    } catch (error) {
      showProblems(error.detail && error.detail.problems ? error.detail.problems : [error.message]);
    } finally {
      button.disabled = false;
    }
  });

  // -- history ------------------------------------------------------------------------------

  const history = { cursors: [null], index: 0, next: null, timer: null, loading: false, again: false };

  async function loadHistory() {
    if (history.loading) {
      history.again = true;
      return;
    }
    history.loading = true;
    try {
      const query = new URLSearchParams({ limit: String(HISTORY_PAGE) });
      if ($("filter-status").value) query.append("status", $("filter-status").value);
      if ($("filter-kind").value) query.append("kind", $("filter-kind").value);
      const cursor = history.cursors[history.index];
      if (cursor) query.set("cursor", cursor);
      const page = await api("GET", `jobs?${query}`);
      history.next = page.next_cursor;
      renderHistory(page.items);
    } finally {
      history.loading = false;
      if (history.again) {
        history.again = false;
        scheduleHistory();
      }
    }
  }

  // Many events can arrive at once (a bulk cancel): reload at most every 700 ms.
  function scheduleHistory() {
    if (history.timer) return;
    history.timer = setTimeout(() => {
      history.timer = null;
      loadHistory().catch((error) => toast(error.message, "error"));
    }, 700);
  }

  function renderHistory(jobs) {
    // A row whose job kept its status keeps its buttons (the same elements), so a reload
    // under a pointer never swaps the button being clicked.
    const kept = new Map();
    for (const row of $("history-body").querySelectorAll("tr[data-job-id]")) {
      const buttons = row.querySelector(".row-actions");
      if (buttons) kept.set(`${row.dataset.jobId}:${row.dataset.status}`, buttons);
    }
    const actionsFor = (job) =>
      kept.get(`${job.id}:${job.status}`) || h("div", { class: "row-actions" }, ...jobButtons(job, { compact: true }));
    const rows = jobs.map((job) =>
      h(
        "tr",
        { "data-job-id": job.id, "data-status": job.status },
        h("td", null, badge(job.status)),
        h("td", null, h("a", { href: jobHref(job.id), "data-key": `open:${job.id}` }, job.kind)),
        h("td", null, h("code", { class: "job-id", title: job.id }, shortId(job.id))),
        h("td", { class: "owner" }, job.owner || "—"),
        h("td", { class: "reason", title: reasonText(job) }, reasonText(job)),
        h("td", null, timeCell(job.created_at)),
        h("td", null, timeCell(job.started_at)),
        h("td", null, timeCell(job.finished_at)),
        h("td", { class: "num" }, isActive(job) ? elapsedText(job) : duration(job.duration_s)),
        h("td", { class: "num" }, String(job.items_count)),
        h("td", null, actionsFor(job)),
      ),
    );
    replaceKeepingFocus($("history-body"), rows);
    $("history-empty").hidden = jobs.length > 0;
    $("history-newer").disabled = history.index === 0;
    $("history-older").disabled = !history.next;
    $("history-page").textContent = `page ${history.index + 1}`;
  }

  function restartHistory() {
    history.cursors = [null];
    history.index = 0;
    loadHistory().catch((error) => toast(error.message, "error"));
  }

  $("filter-status").addEventListener("change", restartHistory);
  $("filter-kind").addEventListener("change", restartHistory);
  $("history-older").addEventListener("click", () => {
    if (!history.next) return;
    history.cursors[history.index + 1] = history.next;
    history.index += 1;
    loadHistory().catch((error) => toast(error.message, "error"));
  });
  $("history-newer").addEventListener("click", () => {
    if (history.index === 0) return;
    history.index -= 1;
    loadHistory().catch((error) => toast(error.message, "error"));
  });

  // -- the job page ---------------------------------------------------------------------------

  // ``earlier``: the offsets of the result pages before this one (a page ends early at the
  // server's byte budget, so the previous page does not start RESULTS_PAGE items back).
  const jobPage = { id: null, offset: 0, earlier: [], seq: 0, timer: null, rendered: new Map() };

  function openJobPage(id) {
    if (jobPage.id !== id) {
      jobPage.id = id;
      jobPage.offset = 0;
      jobPage.earlier = [];
      jobPage.rendered = new Map();
      $("job-view").replaceChildren(h("p", { class: "empty" }, "Loading…"));
    }
    loadJobPage();
  }

  function scheduleJobPage() {
    if (jobPage.timer || !jobPage.id) return;
    jobPage.timer = setTimeout(() => {
      jobPage.timer = null;
      loadJobPage();
    }, 400);
  }

  async function loadJobPage() {
    const id = jobPage.id;
    if (!id) return;
    const seq = ++jobPage.seq;
    const path = `jobs/${encodeURIComponent(id)}`;
    try {
      const [job, events, results] = await Promise.all([
        api("GET", path),
        api("GET", `${path}/events`),
        api("GET", `${path}/results?offset=${jobPage.offset}&limit=${RESULTS_PAGE}`),
      ]);
      if (seq === jobPage.seq && jobPage.id === id) renderJobPage(job, events, results);
    } catch (error) {
      if (seq !== jobPage.seq) return;
      const text = error.status === 404 ? "There is no job with this id (it may have been deleted)." : error.message;
      jobPage.rendered = new Map();
      $("job-view").replaceChildren(backLink(), h("p", { class: "empty" }, text));
    }
  }

  function backLink() {
    return h("a", { class: "back", href: "#/" }, "← All jobs");
  }

  // Each section re-renders only when its own data changed, so reading a traceback or
  // selecting result text is not disturbed by progress updates elsewhere on the page.
  function renderJobPage(job, events, results) {
    const view = $("job-view");
    const sections = [
      ["head", { id: job.id, kind: job.kind, status: job.status }, () => jobHead(job)],
      ["facts", job, () => jobFacts(job)],
      ["cancel", job.cancel, () => job.cancel && cancelSection(job)],
      ["params", job.params, () => section("Params", h("pre", { class: "json" }, json(job.params)))],
      ["result", { status: job.status, result: job.result }, () => job.status === "succeeded" && section("Result", h("pre", { class: "json" }, json(job.result)))],
      ["error", job.error, () => job.error && errorSection(job.error)],
      ["timeline", events, () => timeline(events.items, events.next_offset)],
      ["results", results, () => resultsSection(job, results)],
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
        fact("Started", timeCell(job.started_at)),
        fact("Finished", timeCell(job.finished_at)),
        fact("Duration", isActive(job) ? elapsedText(job) : duration(job.duration_s)),
        fact("Timeout", job.timeout_s ? duration(job.timeout_s) : "none"),
        fact("Priority", String(job.priority)),
        fact("Worker", job.worker_id),
        fact("Retry of", job.retry_of ? h("a", { href: jobHref(job.retry_of) }, shortId(job.retry_of)) : null),
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
        h("li", { class: "done" }, h("strong", null, "Requested "), timeCell(cancel.requested_at), ` by ${cancel.by || "?"} · reason ${cancel.reason}`, cancel.message ? ` · “${cancel.message}”` : ""),
        h("li", { class: cancel.acknowledged_at ? "done" : "" }, h("strong", null, "Seen by the work "), cancel.acknowledged_at ? timeCell(cancel.acknowledged_at) : "not yet"),
        h("li", { class: cancel.stopped_at ? "done" : "" }, h("strong", null, "Stopped "), cancel.stopped_at ? [timeCell(cancel.stopped_at), ` · ${cancel.stop_method} · ${duration(cancel.stop_seconds)} after the request`] : "not yet"),
      ),
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
    const more = nextOffset === null ? null : h("p", { class: "help" }, `The first ${plural(nextOffset, "event")} of a longer history; the rest: GET ${location.pathname}api/v1/jobs/${jobPage.id}/events?offset=${nextOffset}`);
    return section("Timeline", items.length ? h("ol", { class: "timeline" }, ...items) : h("p", { class: "empty" }, "No events."), more);
  }

  function resultsSection(job, results) {
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
      rows.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "results" }, h("thead", null, h("tr", null, h("th", { scope: "col", class: "num" }, "#"), h("th", { scope: "col", class: "num" }, "Attempt"), h("th", { scope: "col" }, "At"), h("th", { scope: "col" }, "Data"))), h("tbody", null, ...rows)))
        : h("p", { class: "empty" }, "No items."),
      results.offset > 0 || results.next_offset !== null ? h("nav", { class: "pager", "aria-label": "Result pages" }, older, newer) : null,
    );
  }

  // -- live events ------------------------------------------------------------------------------

  let syncing = false;
  let pending = [];

  function setLive(state, text) {
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
      if (jobPage.id === data.id) scheduleJobPage();
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
      if (jobPage.id) scheduleJobPage();
    } catch (error) {
      toast(error.message, "error");
    } finally {
      syncing = false;
      const queued = pending;
      pending = [];
      for (const [name, data] of queued) applyEvent(name, data);
    }
  }

  let stream = null;

  // EventSource reconnects by itself after a dropped connection (the server sends
  // `retry: 2000`), and each new connection starts with `hello`, which resyncs. It gives
  // up on an HTTP error instead: then an ordinary request finds out why (a 401 brings the
  // login form back) before the stream is opened again.
  function openStream() {
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

  // -- routing and start-up ------------------------------------------------------------------------

  function route() {
    const match = /^#\/jobs\/(.+)$/.exec(location.hash);
    const onJob = Boolean(match);
    $("home").hidden = onJob;
    $("job-view").hidden = !onJob;
    if (match) {
      openJobPage(decodeURIComponent(match[1]));
    } else {
      jobPage.id = null;
      document.title = "andon";
      renderCards();
    }
  }

  // Running times tick once a second without asking the server.
  function tick() {
    for (const view of cardViews.values()) {
      if (view.job && isActive(view.job)) view.parts.elapsed.textContent = elapsedText(view.job);
    }
  }

  async function start() {
    sessionStorage.removeItem(OLD_TOKEN_KEY);
    localStorage.removeItem(OLD_TOKEN_KEY);
    const info = await api("GET", "info");
    showUser(info);
    skew = info.server_time - Date.now() / 1000;
    const worker = info.worker ? `worker: ${plural(info.worker.concurrency, "slot")}` : "no worker here";
    $("server-info").textContent = `${info.database} · ${worker}`;
    $("server-info").title = `andon ${info.version}`;
    $("no-worker-note").hidden = Boolean(info.worker);
    kinds = (await api("GET", "kinds")).items;
    renderKinds();
    window.addEventListener("hashchange", route);
    route();
    setInterval(tick, 1000);
    openStream();
  }

  start().catch((error) => {
    setLive("down", "offline");
    toast(`Cannot reach the server: ${error.message}`, "error");
  });
})();
