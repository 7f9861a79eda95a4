// The server's API: requests with the API key, errors as ApiError, server-sent events; the page's error and status
// lines that show how requests went.

import { $ } from "./dom.js";
import { state } from "./state.js";

export class ApiError extends Error {
  constructor(message, status = 0, param = null, code = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.param = param;
    this.code = code;
  }
}

// -- messages ---------------------------------------------------------------------------------------------------

export function showError(error) {
  const message = typeof error === "string" ? error : error && error.message ? error.message : String(error);
  $("#alert").textContent = message;
  setStatus("");
}

export function clearError() {
  $("#alert").textContent = "";
}

export function setStatus(text) {
  $("#status").textContent = text;
}

/** Shows the API key box (the server answered 401). */
function askForKey() {
  $("#key-box").hidden = false;
}

// -- requests ---------------------------------------------------------------------------------------------------

function authHeaders() {
  const headers = new Headers();
  if (state.key) headers.set("Authorization", `Bearer ${state.key}`);
  return headers;
}

/** fetch a same-origin API path; an answer other than 2xx throws ApiError with the server's message. */
export async function request(path, { method = "GET", json, form, signal } = {}) {
  const init = { method, headers: authHeaders(), signal, cache: "no-store" };
  if (json !== undefined) {
    init.headers.set("Content-Type", "application/json");
    init.body = JSON.stringify(json);
  } else if (form) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(`the server did not answer (${e.message})`);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText || "error"}`;
  let param = null;
  let code = null;
  try {
    const body = await response.json();
    if (body && body.error) {
      message = body.error.message || message;
      param = body.error.param || null;
      code = body.error.code || null;
    }
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401) askForKey();
  return new ApiError(message, response.status, param, code);
}

export async function getJSON(path, options) {
  return (await request(path, options)).json();
}

/** Server-sent events from a fetch response: yields {event, data} with data parsed as JSON, until [DONE]. */
export async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue; // a comment (keep-alive)
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = value;
          else if (field === "data") data.push(value);
        }
        if (!data.length) continue;
        const text = data.join("\n");
        if (text === "[DONE]") return;
        let parsed;
        try {
          parsed = JSON.parse(text);
        } catch {
          continue;
        }
        yield { event, data: parsed };
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

export function runPath(id, rest = "") {
  return `/v1/runs/${encodeURIComponent(id)}${rest}`;
}

export function jobPath(id, rest = "") {
  return `/v1/jobs/${encodeURIComponent(id)}${rest}`;
}

/** GET /v1/runs/{id}, asked once per run (until the key changes or the run is trained again). */
export async function runDetails(id) {
  if (!state.details.has(id)) {
    const promise = getJSON(runPath(id));
    state.details.set(id, promise);
    promise.catch(() => state.details.delete(id));
  }
  return state.details.get(id);
}
