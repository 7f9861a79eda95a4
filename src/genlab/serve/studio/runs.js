// The runs the server serves (GET /v1/models): the run pickers of Generate and Card, the job form's suggestions.

import { getJSON, showError } from "./api.js";
import { $, h } from "./dom.js";
import { pickRun } from "./generate.js";
import { state } from "./state.js";

export async function loadRuns() {
  let data;
  try {
    data = await getJSON("/v1/models");
  } catch (e) {
    showError(e);
    return;
  }
  state.runs = data.data || [];
  state.loaded = true;
  const model = $("#model");
  const cardRun = $("#card-run");
  const keep = state.runId;
  const keepCard = cardRun.value;
  const options = (select) =>
    select.replaceChildren(
      ...state.runs.map((r) => h("option", { value: r.id }, `${r.id} — ${r.genlab.family} on ${r.genlab.dataset}`)),
    );
  options(model);
  options(cardRun);
  const families = new Set(state.runs.map((r) => r.genlab.family));
  const datasets = new Set(state.runs.map((r) => r.genlab.dataset).filter((d) => !/[./\\]/.test(d)));
  $("#families").replaceChildren(...[...families].sort().map((f) => h("option", { value: f })));
  $("#datasets").replaceChildren(...[...datasets].sort().map((d) => h("option", { value: d })));
  if (!state.runs.length) {
    model.append(h("option", { value: "", disabled: true, selected: true }, "No runs in this folder"));
    model.disabled = cardRun.disabled = true;
    $("#model-info").textContent = "Train a model on the Jobs page, or start the server on a folder of runs.";
    $("#gen-form").replaceChildren();
    $("#modes").replaceChildren();
    return;
  }
  model.disabled = cardRun.disabled = false;
  const id = state.runs.some((r) => r.id === keep) ? keep : state.runs[0].id;
  model.value = id;
  cardRun.value = state.runs.some((r) => r.id === keepCard) ? keepCard : id;
  if (id !== keep || !state.mode) await pickRun(id);
}
