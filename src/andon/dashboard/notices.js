// Telling the person what happened (toasts), asking before anything destructive, and
// running a request from a button.

import { $, h } from "./dom.js";

export function toast(text, kind = "info", link = null) {
  const item = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  if (link) item.append(" ", h("a", { href: link.href }, link.text));
  $("toasts").append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

export async function confirmAction(title, text, action) {
  return (await chooseAction(title, text, action)) === "yes";
}

// Ask first, offering ``action`` ("yes") and, when given, ``other`` ("other") beside it;
// resolves to the one chosen, or "" when kept.
export function chooseAction(title, text, action, other = null) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = action;
  $("confirm-other").textContent = other || "";
  $("confirm-other").hidden = !other;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "no" ? "" : dialog.returnValue), { once: true });
  });
}

// Run a request from a button: the button shows a spinner and cannot be pressed twice.
export async function act(button, work) {
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
