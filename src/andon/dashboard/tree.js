// A job's family on its page: its parent and root, its descendants by state, and its
// children, nested. The first level comes with the page; a deeper one is loaded when it is
// opened, a page at a time, so a tree of any size costs what is on the screen.

import { api, jobPath } from "./api.js";
import { h } from "./dom.js";
import { badge, childOf, jobHref, shortId } from "./format.js";

export const CHILDREN_PAGE = 50;
const STATES = ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"];

// The nodes the person opened, kept across re-renders of the same job's page.
export const opened = new Set();

export const hasFamily = (job) => Boolean(job.parent_id) || job.children.total > 0;

export const childrenText = (n) => (n === 1 ? "1 child" : `${n} children`);

// "3 running, 9 queued", in lifecycle order.
export function countsText(counts) {
  return STATES.filter((state) => counts[state])
    .map((state) => `${counts[state]} ${state}`)
    .join(", ");
}

// How the job stopped, or why it is stopping: "parent_cancelled → withdrawn".
function stopText(job) {
  const cancel = job.cancel;
  if (!cancel) return "";
  if (cancel.stop_method) return `${cancel.reason} → ${cancel.stop_method}`;
  if (job.awaiting) return `${cancel.reason} · waits for its descendants`;
  return `${cancel.reason} · stopping`;
}

export function treeSection(job, page) {
  const below = job.descendants;
  const parent = job.parent_id ? h("p", { class: "tree-parent" }, childOf(job, "Child of "), job.root_id && job.root_id !== job.parent_id ? [" · root ", h("a", { href: jobHref(job.root_id) }, shortId(job.root_id))] : null) : null;
  const counts = below.total ? h("p", { class: "tree-counts" }, `${below.total} ${below.total === 1 ? "descendant" : "descendants"}: ${countsText(below)}`) : null;
  const list = h("ul", { class: "tree", "aria-label": `Children of ${job.kind}` });
  if (job.children.total) fillLevel(list, job.id, job.children.total, page);
  return h("section", { class: "panel job-tree" }, h("h2", null, "Tree"), parent, counts, job.children.total ? list : null);
}

// Append a page of children to a level, with a button for the rest if there is more.
function fillLevel(list, parentId, total, page) {
  list.querySelector(":scope > li.tree-more")?.remove();
  for (const child of page.items) list.append(node(child, page.child_counts[child.id]));
  const shown = list.querySelectorAll(":scope > li.tree-node").length;
  if (page.next_cursor !== null) {
    const more = h("button", { class: "btn small quiet", type: "button" }, `Show more (${Math.max(0, total - shown)} not shown)`);
    more.addEventListener("click", () => loadLevel(list, parentId, total, page.next_cursor, more));
    list.append(h("li", { class: "tree-more" }, more));
  }
}

async function loadLevel(list, parentId, total, cursor, button) {
  const query = new URLSearchParams({ limit: String(CHILDREN_PAGE) });
  if (cursor) query.set("cursor", cursor);
  if (button) button.disabled = true;
  try {
    fillLevel(list, parentId, total, await api("GET", `${jobPath(parentId)}/children?${query}`));
  } catch (error) {
    list.append(h("li", { class: "tree-error" }, error.message));
  }
}

function node(job, counts) {
  const total = counts ? counts.total : 0;
  const row = h(
    "div",
    { class: "tree-row" },
    badge(job.status),
    h("a", { href: jobHref(job.id) }, job.kind),
    h("code", { class: "job-id", title: job.id }, shortId(job.id)),
    h("span", { class: "tree-stop" }, stopText(job)),
  );
  const li = h("li", { class: "tree-node", "data-job-id": job.id, "data-status": job.status }, row);
  if (!total) return li;
  const toggle = h("button", { class: "btn small quiet tree-toggle", type: "button", "aria-expanded": "false", "data-key": `tree:${job.id}` }, `▸ ${childrenText(total)}`);
  toggle.title = countsText(counts);
  row.append(toggle);
  const open = () => {
    opened.add(job.id);
    toggle.setAttribute("aria-expanded", "true");
    toggle.textContent = `▾ ${childrenText(total)}`;
    const list = h("ul", { class: "tree" });
    li.append(list);
    loadLevel(list, job.id, total, null, null);
  };
  toggle.addEventListener("click", () => {
    if (toggle.getAttribute("aria-expanded") === "true") {
      opened.delete(job.id);
      toggle.setAttribute("aria-expanded", "false");
      toggle.textContent = `▸ ${childrenText(total)}`;
      li.querySelector(":scope > ul.tree")?.remove();
    } else {
      open();
    }
  });
  if (opened.has(job.id)) open();
  return li;
}
