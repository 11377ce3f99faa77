// Building the page from data. Safety rule: job data only ever reaches the page as text
// (textContent, text nodes, attribute values). Nothing in the dashboard assigns innerHTML.

export const $ = (id) => document.getElementById(id);

// h("a", {href: "#/", class: "x", onclick: fn}, "text", child): attributes are set with
// setAttribute and children become text nodes unless they already are nodes.
export function h(tag, props, ...children) {
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
export function replaceKeepingFocus(container, children) {
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
