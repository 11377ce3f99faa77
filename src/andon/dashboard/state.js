// What the page knows about jobs, and the views that want to hear when it changes.
//
// Jobs shown as cards: the active ones, and those that ended while shown (so a cancel
// ends visibly, with the count of items kept) for a few seconds: then they are only in the
// history. A card under the pointer or holding focus stays until it is left. Views subscribe
// with on(topic, fn): "cards" (the set of cards changed), "job" (a job changed: its id),
// "history" (the history may have changed). A "job" listener also gets the snapshot when
// there is one (a job page reloads when one of its children changed).

import { isActive } from "./format.js";

export const ENDED_KEEP_MS = 6000;
const FINISHED_MAX = 12;
const DEPARTED_MAX = 500;

export const cards = new Map(); // id -> job summary
const endedAt = new Map(); // id -> Date.now() when it ended while shown
// Ended jobs whose cards left, with their last snapshot: an older snapshot of one (a slow
// list request, an event sent before it ended) must not bring it back as active.
const departed = new Map();
const listeners = { cards: [], job: [], history: [] };

export function on(topic, listener) {
  listeners[topic].push(listener);
}

function tell(topic, ...detail) {
  for (const listener of listeners[topic]) listener(...detail);
}

export const historyChanged = () => tell("history");
export const cardsChanged = () => tell("cards");
export const jobChanged = (id) => tell("job", id);

// A response or event can arrive after a newer one (a list request that was slow, a
// snapshot taken before a cancel): never move a card backwards in its job's life. The
// server numbers how far each snapshot has come (stage): a smaller one is older.
export function isStale(incoming, current) {
  return Boolean(current) && incoming.stage < current.stage;
}

const known = (id) => cards.get(id) || departed.get(id);

// Take a snapshot of an active job as a card, quietly (the caller renders once for many).
export function keep(job) {
  if (isStale(job, known(job.id))) return;
  departed.delete(job.id);
  cards.set(job.id, job);
  endedAt.delete(job.id);
}

export function remember(job) {
  if (isStale(job, known(job.id))) return;
  if (isActive(job)) {
    keep(job);
  } else if (cards.has(job.id)) {
    cards.set(job.id, job);
    if (!endedAt.has(job.id)) endedAt.set(job.id, Date.now());
  }
  tell("cards");
  tell("job", job.id, job);
}

export function forget(id) {
  depart(id);
  tell("cards");
}

function depart(id) {
  const job = cards.get(id);
  if (job && !isActive(job)) departed.set(id, job);
  if (departed.size > DEPARTED_MAX) departed.delete(departed.keys().next().value);
  cards.delete(id);
  endedAt.delete(id);
}

// Jobs that ended while shown stay a few seconds (at most FINISHED_MAX of them), longer
// while ``held(id)`` (the card is under the pointer or has focus). Returns whether any left.
export function pruneEnded(held = () => false) {
  const ended = [...endedAt.entries()].sort((a, b) => b[1] - a[1]);
  let left = false;
  ended.forEach(([id, at], index) => {
    if ((index >= FINISHED_MAX || Date.now() - at > ENDED_KEEP_MS) && !held(id)) {
      depart(id);
      left = true;
    }
  });
  return left;
}

// The job whose page is open (null on the home page).
export const shown = { jobId: null };
