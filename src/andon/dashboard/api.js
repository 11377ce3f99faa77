// Talking to the REST API: JSON in and out, errors as ApiError, and a 401 answered by
// signing in (see session.js) before the same request is sent again.

export const API = "api/v1/";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail.message || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

let signIn = () => Promise.reject(new Error("not signed in"));

// What to wait for when the API answers 401; the request is then sent again.
export function whenUnauthorized(handler) {
  signIn = handler;
}

export async function api(method, path, body) {
  for (;;) {
    const init = { method, headers: { Accept: "application/json" }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(API + path, init);
    if (response.status === 401) {
      await signIn();
      continue;
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, (data && data.error) || {});
    return data;
  }
}

export const jobPath = (id) => `jobs/${encodeURIComponent(id)}`;
