// genlab studio: the web page of `genlab serve`. Plain ES modules, no build step, nothing from outside the server.
//
// Views (switched by the URL's hash, #generate #verify #jobs #card/RUN):
//   Generate  pick a run; the form depends on the endpoints the run serves: streamed completions, a generation
//             form built from the run's sampling options, or fill-mask (generate.js, forms.js, outputs.js).
//   Verify    drop or choose files; one verdict card per file (signature, who made it, watermark) (verify.js).
//   Jobs      start training jobs, follow them live (server-sent events) with a loss curve on a canvas (jobs.js).
//   Card      a run's model card (Markdown, rendered by a small safe renderer: markdown.js) and its loss curve
//             (card.js).
// This module switches the views and starts the page; api.js talks to the server.
//
// Everything the page shows is built with DOM APIs (textContent, createElement): no server text is parsed as HTML.

import { clearError, getJSON, setStatus, showError } from "./api.js";
import { setupCard, showCard } from "./card.js";
import { $ } from "./dom.js";
import { label } from "./format.js";
import { setupGenerate } from "./generate.js";
import { setupJobs, startJobs, stopJobsPolling } from "./jobs.js";
import { loadRuns } from "./runs.js";
import { KEY_STORE, state } from "./state.js";
import { setupVerify } from "./verify.js";

const VIEWS = ["generate", "verify", "jobs", "card"];

function setupKey() {
  const input = $("#api-key");
  input.value = state.key;
  $("#key-box").addEventListener("submit", (event) => {
    event.preventDefault();
    input.dispatchEvent(new Event("change"));
  });
  input.addEventListener("change", async () => {
    state.key = input.value.trim();
    if (state.key) sessionStorage.setItem(KEY_STORE, state.key);
    else sessionStorage.removeItem(KEY_STORE);
    state.details.clear();
    clearError();
    await loadRuns();
    route(true); // the shown view again, now with the key
  });
}

function route(initial = false) {
  const [name, ...rest] = decodeURIComponent(location.hash.slice(1)).split("/");
  const view = VIEWS.includes(name) ? name : "generate";
  const arg = rest.join("/");
  const changed = view !== state.view;
  state.view = view;
  for (const section of document.querySelectorAll("main .view")) section.hidden = section.dataset.view !== view;
  // the messages sit under the shown view's heading
  $(`#${view}-title`).after($("#alert"), $("#status"));
  for (const link of document.querySelectorAll("nav a[data-view]")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${label(view)} · genlab studio`;
  if (changed) clearError();
  if (changed && !initial) $(`#${view}-title`).focus();
  if (view === "jobs") startJobs();
  else stopJobsPolling();
  if (view === "card") {
    const id = arg && state.runs.some((r) => r.id === arg) ? arg : state.runId || $("#card-run").value;
    if (id) {
      $("#card-run").value = id;
      showCard(id);
    } else if (state.loaded && !state.runs.length) {
      $("#card").replaceChildren();
      setStatus("No runs to show: train one on the Jobs page.");
    }
  }
}

async function main() {
  setupKey();
  setupVerify();
  setupJobs();
  setupGenerate();
  setupCard();
  window.addEventListener("hashchange", () => route());
  try {
    state.health = await getJSON("/v1/health");
    $("#version").textContent = state.health.version || "";
    if (state.health.auth) $("#key-box").hidden = false;
  } catch (e) {
    showError(e);
  }
  if (state.health && state.health.auth && !state.key) {
    route(true);
    showError("This server needs an API key: enter it above (`genlab keys create-api` makes one).");
    $("#api-key").focus();
    return;
  }
  await loadRuns();
  route(true);
}

main().catch(showError);
