// Signing in: when the API answers 401, the page asks for a token once, exchanges it for
// an HttpOnly, SameSite=Strict session cookie (POST api/session) and forgets it: from
// then on only the browser holds the credential, out of reach of any script, and every
// request (the event stream too) carries it on its own.

import { API } from "./api.js";
import { $ } from "./dom.js";
import { act } from "./notices.js";

const OLD_TOKEN_KEY = "andon.token"; // where earlier versions kept the token: cleared on load

let user = null; // {name, role} of whoever this page is signed in as; null on an open server
let loginPrompt = null;

export function forgetOldToken() {
  sessionStorage.removeItem(OLD_TOKEN_KEY);
  localStorage.removeItem(OLD_TOKEN_KEY);
}

export function showUser(info) {
  user = info.user || null;
  $("who").hidden = !user;
  $("who-name").textContent = user ? `signed in as ${user.name} (${user.role})` : "";
}

// Leave the page for a fresh copy of itself: nothing the last user saw stays in memory.
function startOver() {
  location.replace(location.pathname + location.search);
}

// Every request that meets a 401 waits on the same prompt, so the token is asked once.
export function logIn() {
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

export function setUpLogout() {
  $("logout").addEventListener("click", async (event) => {
    const done = await act(event.currentTarget, async () => {
      const response = await fetch("api/session", { method: "DELETE", cache: "no-store" });
      if (!response.ok) throw new Error(`Could not log out: HTTP ${response.status}`);
      return true;
    });
    if (done) startOver();
  });
}
