// Form parts the views share: labelled fields, number inputs and their values, the controls of a run's sampling
// options, and submitting with a busy button.

import { ApiError, clearError, showError } from "./api.js";
import { h, nextId } from "./dom.js";
import { label, missing } from "./format.js";

/** A labelled field; `control` is the input; `help` becomes its description. */
export function field(text, control, help) {
  const id = control.id || (control.id = nextId("f"));
  const parts = [h("label", { for: id }, text), control];
  if (help) {
    const helpId = `${id}-help`;
    control.setAttribute("aria-describedby", helpId);
    parts.push(h("p", { class: "hint", id: helpId }, help));
  }
  return h("div", { class: "field" }, parts);
}

export function numberInput(attrs) {
  return h("input", { type: "number", inputmode: attrs.step === "1" ? "numeric" : "decimal", ...attrs });
}

/** The Seed input of the generation forms. */
export const seedInput = () => numberInput({ id: "f-seed", min: 0, step: "1" });

/** The value of a number input: undefined when empty; an error naming the field when not a number. */
export function numberValue(input, name, integer) {
  if (input.validity.badInput) throw new ApiError(`${name} must be a number`);
  const raw = input.value.trim();
  if (raw === "") return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new ApiError(`${name} must be ${integer ? "a whole number" : "a number"}`);
  }
  return value;
}

export function fieldError(e, input) {
  showError(e);
  if (input) input.focus();
}

/** On submit (the form's one handler): no page load, the last error cleared, then `work()`. */
export function onSubmit(form, work) {
  form.onsubmit = (event) => {
    event.preventDefault();
    clearError();
    return work();
  };
}

/** Runs `work()` with `button` disabled; an error it throws is shown. */
export async function whileBusy(button, work) {
  button.disabled = true;
  try {
    await work();
  } catch (e) {
    showError(e);
  } finally {
    button.disabled = false;
  }
}

// -- a run's sampling options (GET /v1/runs/{id} options) -------------------------------------------------------

/** Whether an option's control is a tall one (a list or a file), shown on a row of its own. */
export const isLong = (option) => option.type === "list" || Boolean(option.file);

export function optionControl(option) {
  const id = `opt-${option.name}`;
  const def = option.default;
  if (option.file) return h("input", { type: "file", id });
  if (option.type === "list") {
    return h("textarea", { id, rows: 4, spellcheck: "false" }, Array.isArray(def) ? def.join("\n") : "");
  }
  const value = missing(def) ? "" : String(def);
  const placeholder = missing(def) ? "default" : null;
  if (option.type === "int" || option.type === "float") {
    return numberInput({ id, step: option.type === "int" ? "1" : "any", value, placeholder });
  }
  return h("input", { type: "text", id, value, placeholder, spellcheck: "false" });
}

export async function optionValue(option, control) {
  const name = label(option.name);
  if (option.file) {
    const file = control.files && control.files[0];
    if (!file) return undefined;
    return { name: file.name, b64: await fileBase64(file) };
  }
  if (option.type === "list") {
    const lines = control.value.split("\n").map((s) => s.trim()).filter(Boolean);
    return lines.length ? lines : undefined;
  }
  if (option.type === "int") return numberValue(control, name, true);
  if (option.type === "float") return numberValue(control, name, false);
  const text = control.value;
  return text === "" ? undefined : text;
}

function fileBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).replace(/^data:[^,]*,/, ""));
    reader.onerror = () => reject(new ApiError(`${file.name} could not be read`));
    reader.readAsDataURL(file);
  });
}
