// The Generate view: pick a run; the form depends on the endpoints the run serves: streamed completions, a
// generation form built from the run's sampling options, or fill-mask.

import { ApiError, events, getJSON, request, runDetails, setStatus, showError } from "./api.js";
import { $, cardHref, h, nextId } from "./dom.js";
import { fmt, label, missing, plural, seconds } from "./format.js";
import {
  field,
  fieldError,
  isLong,
  numberInput,
  numberValue,
  onSubmit,
  optionControl,
  optionValue,
  seedInput,
  whileBusy,
} from "./forms.js";
import { clearResults, provenanceList, showFills, showOutputs } from "./outputs.js";
import { state } from "./state.js";

export function setupGenerate() {
  $("#model").addEventListener("change", (e) => pickRun(e.target.value));
}

function modesOf(run) {
  const endpoints = run.genlab.endpoints || [];
  const modes = [];
  if (endpoints.includes("/v1/completions")) {
    modes.push({ id: "stream", label: "Stream text", endpoint: "/v1/completions" });
  }
  for (const endpoint of endpoints) {
    const m = /^\/v1\/([A-Za-z0-9_-]+)\/generations$/.exec(endpoint);
    if (m) modes.push({ id: `files:${m[1]}`, label: `Generate ${m[1]} (signed files)`, endpoint });
  }
  if (endpoints.includes("/v1/fill")) modes.push({ id: "fill", label: "Fill masks", endpoint: "/v1/fill" });
  return modes;
}

export async function pickRun(id) {
  const pick = ++state.pick;
  if (state.abort) state.abort.abort(); // a text still streaming from the previous run
  state.runId = id;
  state.mode = null;
  // the old form goes at once, so nothing is typed into a form of the previous run
  $("#gen-form").replaceChildren();
  $("#modes").replaceChildren();
  clearResults();
  const run = state.runs.find((r) => r.id === id);
  if (!run) return;
  const g = run.genlab;
  const loss = missing(g.best_val_loss) ? "" : ` · best val loss ${fmt(g.best_val_loss)}`;
  const steps = `${fmt(g.steps)} of ${fmt(g.max_steps)} steps`;
  $("#model-info").replaceChildren(
    `${g.family} · ${g.modality} · trained on ${g.dataset} · ${steps}${loss} · `,
    h("a", { href: cardHref(id) }, "model card"),
  );
  const modes = modesOf(run);
  if (!modes.length) {
    $("#gen-form").replaceChildren(h("p", { class: "note" }, "This run generates nothing the studio can show."));
    return;
  }
  let details;
  try {
    details = await runDetails(id);
  } catch (e) {
    if (pick === state.pick) showError(e);
    return;
  }
  if (pick !== state.pick) return;
  if (modes.length > 1) {
    const name = nextId("mode");
    const choice = (mode, i) => {
      const inputId = nextId("mode-choice");
      const onchange = () => showMode(details, mode);
      return h(
        "label",
        { for: inputId },
        h("input", { type: "radio", id: inputId, name, value: mode.id, checked: i === 0, onchange }),
        mode.label,
      );
    };
    const choices = h("div", { class: "choices" }, modes.map(choice));
    $("#modes").replaceChildren(h("fieldset", {}, h("legend", {}, "Mode"), choices));
  }
  showMode(details, modes[0]);
}

function showMode(details, mode) {
  if (state.abort) state.abort.abort();
  state.mode = mode;
  clearResults();
  if (mode.id === "stream") streamForm(details);
  else if (mode.id === "fill") fillForm(details);
  else filesForm(details, mode);
}

// -- streamed completions ---------------------------------------------------------------------------------------

function streamForm(details) {
  const prompt = h("textarea", { id: "f-prompt", rows: 4, spellcheck: "false" });
  const maxTokens = numberInput({ id: "f-max-tokens", min: 1, step: "1", value: "120" });
  const temperature = numberInput({ id: "f-temperature", min: 0, step: "0.05", value: "0.8" });
  const topK = numberInput({ id: "f-top-k", min: 1, step: "1" });
  const seed = seedInput();
  const go = h("button", { type: "submit", class: "primary" }, "Generate");
  const stop = h("button", { type: "button", disabled: true }, "Stop");
  stop.addEventListener("click", () => state.abort && state.abort.abort());
  const form = $("#gen-form");
  form.replaceChildren(
    field("Prompt", prompt, "the text to continue (empty: start a new document)"),
    h(
      "div",
      { class: "row" },
      field("Max tokens", maxTokens, "tokens to generate"),
      field("Temperature", temperature, "0 = greedy; higher = more random"),
      field("Top k", topK, "sample among the k most likely tokens (empty: all)"),
      field("Seed", seed, "the same seed gives the same text (empty: random)"),
    ),
    h("div", { class: "actions" }, go, stop),
  );
  onSubmit(form, async () => {
    const body = { model: details.id, prompt: prompt.value, stream: true, stream_options: { include_usage: true } };
    try {
      body.max_tokens = numberValue(maxTokens, "Max tokens", true);
      body.temperature = numberValue(temperature, "Temperature", false);
      body.top_k = numberValue(topK, "Top k", true);
      body.seed = numberValue(seed, "Seed", true);
    } catch (e) {
      return fieldError(e);
    }
    await streamCompletion(body, go, stop);
  });
}

async function streamCompletion(body, go, stop) {
  clearResults();
  const text = document.createTextNode("");
  const output = h(
    "pre",
    {
      class: "stream",
      id: "stream-output",
      "aria-live": "polite",
      "aria-busy": "true",
      "aria-labelledby": "out-title",
    },
    body.prompt ? h("span", { class: "prompt" }, body.prompt) : null,
    text,
  );
  const provenance = h("div", { id: "provenance" });
  $("#results").replaceChildren(h("h2", { id: "out-title" }, "Output"), output, provenance);
  const controller = new AbortController();
  state.abort = controller;
  go.disabled = true;
  stop.disabled = false;
  setStatus("Generating…");
  const started = performance.now();
  let usage = null;
  let finish = null;
  try {
    const response = await request("/v1/completions", { method: "POST", json: body, signal: controller.signal });
    for await (const { data } of events(response)) {
      if (data.error) throw new ApiError(data.error.message, 0, data.error.param, data.error.code);
      for (const choice of data.choices || []) {
        if (choice.text) text.appendData(choice.text);
        if (choice.finish_reason) finish = choice.finish_reason;
      }
      if (data.usage) usage = data.usage;
      if (data.genlab && data.genlab.provenance) provenance.replaceChildren(provenanceList(data.genlab.provenance));
    }
    const took = performance.now() - started;
    const tokens = usage ? usage.completion_tokens : null;
    const made = tokens === null ? `${text.length} characters` : `${tokens} tokens`;
    const rate = tokens ? ` (${fmt(tokens / (took / 1000), 3)} tokens/s)` : "";
    const why = finish === "stop" ? ", ended by the model" : "";
    setStatus(`Generated ${made} in ${seconds(took)}${rate}${why}.`);
  } catch (e) {
    if (e.name === "AbortError") setStatus("Stopped.");
    else showError(e);
  } finally {
    output.setAttribute("aria-busy", "false");
    go.disabled = false;
    stop.disabled = true;
    if (state.abort === controller) state.abort = null;
  }
}

// -- files from a /v1/{x}/generations endpoint ------------------------------------------------------------------

function filesForm(details, mode) {
  const options = details.options || [];
  const controls = new Map();
  const fields = new Map();
  for (const option of options) {
    const control = optionControl(option);
    controls.set(option.name, control);
    let help = option.help || "";
    if (option.type === "list") help += " (one per line)";
    if (option.file) help += " (a file)";
    fields.set(option.name, field(label(option.name), control, help));
  }
  const count = numberInput({ id: "f-n", min: 1, step: "1", value: "1" });
  const seed = seedInput();
  const go = h("button", { type: "submit", class: "primary" }, "Generate");
  const form = $("#gen-form");
  form.replaceChildren(
    ...options.filter(isLong).map((o) => fields.get(o.name)),
    h("div", { class: "row" }, ...options.filter((o) => !isLong(o)).map((o) => fields.get(o.name))),
    h(
      "div",
      { class: "row" },
      field("Count", count, "how many outputs"),
      field("Seed", seed, "the same seed gives the same outputs (empty: random)"),
    ),
    h("div", { class: "actions" }, go),
  );
  onSubmit(form, async () => {
    const body = { model: details.id };
    try {
      body.n = numberValue(count, "Count", true);
      body.seed = numberValue(seed, "Seed", true);
      for (const option of options) {
        const value = await optionValue(option, controls.get(option.name));
        if (value !== undefined) body[option.name] = value;
      }
    } catch (e) {
      return fieldError(e);
    }
    await whileBusy(go, async () => {
      clearResults();
      setStatus("Generating…");
      const started = performance.now();
      const data = await getJSON(mode.endpoint, { method: "POST", json: body });
      showOutputs(data);
      setStatus(`Generated ${plural((data.data || []).length, "file")} in ${seconds(performance.now() - started)}.`);
    });
  });
}

// -- fill-mask --------------------------------------------------------------------------------------------------

function fillForm(details) {
  const text = h("textarea", { id: "f-text", rows: 3, spellcheck: "false" }, "To be, or not to [MASK]");
  const topK = numberInput({ id: "f-top-k", min: 1, max: 100, step: "1", value: "5" });
  const go = h("button", { type: "submit", class: "primary" }, "Fill");
  const form = $("#gen-form");
  form.replaceChildren(
    field("Text with masks", text, "write [MASK] where a word is missing"),
    h("div", { class: "row" }, field("Top k", topK, "fillers per mask")),
    h("div", { class: "actions" }, go),
  );
  onSubmit(form, async () => {
    let top;
    try {
      top = numberValue(topK, "Top k", true);
    } catch (e) {
      return fieldError(e, topK);
    }
    await whileBusy(go, async () => {
      setStatus("Filling…");
      const json = { model: details.id, text: text.value, top_k: top };
      const data = await getJSON("/v1/fill", { method: "POST", json });
      showFills(text.value, data.masks || []);
      setStatus(`Filled ${plural(data.masks.length, "mask")}.`);
    });
  });
}
