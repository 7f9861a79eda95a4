// The Verify view: drop or choose files; one verdict card per file (signature, who made it, watermark).

import { clearError, getJSON, setStatus, showError } from "./api.js";
import { $, h, nextId } from "./dom.js";
import { abbrev, blank, fmt, plural, textOf } from "./format.js";
import { whileBusy } from "./forms.js";

const SIGNATURE = {
  trusted: ["ok", "Signed with a key this server trusts, and unchanged since."],
  untrusted: ["warn", "Signed and unchanged, but with a key this server does not trust."],
  invalid: ["bad", "The signature does not hold: the file changed after it was signed, or its manifest is damaged."],
  unsigned: ["", "No signature. Many platforms strip manifests, so this proves nothing either way."],
  unreadable: ["bad", "The file could not be read."],
};

export function setupVerify() {
  const form = $("#verify-form");
  const input = $("#verify-files");
  input.addEventListener("change", () => {
    if (input.files.length) verify([...input.files]);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    verify([...input.files]);
  });
  let depth = 0;
  form.addEventListener("dragenter", (event) => {
    event.preventDefault();
    depth += 1;
    form.classList.add("over");
  });
  form.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) form.classList.remove("over");
  });
  form.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  form.addEventListener("drop", (event) => {
    event.preventDefault();
    depth = 0;
    form.classList.remove("over");
    const files = event.dataTransfer ? [...event.dataTransfer.files] : [];
    if (!files.length) return;
    try {
      input.files = event.dataTransfer.files; // the input shows what was dropped
    } catch {
      // older browsers: the input keeps its own choice
    }
    verify(files);
  });
  // a file dropped anywhere else must not replace the page
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (!form.contains(event.target)) event.preventDefault();
    });
  }
}

async function verify(files) {
  clearError();
  if (!files.length) {
    showError("Choose one or more files to verify.");
    $("#verify-files").focus();
    return;
  }
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  setStatus(`Verifying ${plural(files.length, "file")}…`);
  await whileBusy($("#verify-form button[type=submit]"), async () => {
    const data = await getJSON("/v1/verify", { method: "POST", form });
    const verdicts = data.data || [];
    $("#verdicts").replaceChildren(...verdicts.map(verdictCard));
    const trusted = verdicts.filter((v) => v.signature === "trusted").length;
    setStatus(
      data.trusted
        ? `${verdicts.length === 1 ? "The file is" : `All ${verdicts.length} files are`} trusted.`
        : `${trusted} of ${plural(verdicts.length, "file")} trusted.`,
    );
  });
}

function watermarkText(wm) {
  if (!wm) return "none looked for (this kind of file carries no watermark genlab reads)";
  const scheme = wm.scheme ? ` (${wm.scheme})` : "";
  let text;
  if (!wm.checked) text = `not checked${scheme}`;
  else if (wm.found) {
    text = `found${scheme}`;
    if (wm.matches_manifest === true) text += ", matching the manifest";
    else if (wm.matches_manifest === false) text += ", NOT matching the manifest";
  } else text = `not found${scheme}`;
  const d = wm.detail || {};
  const facts = [];
  if (d.payload) facts.push(`payload ${d.payload}`);
  for (const key of ["z_score", "z", "score", "p_value"]) {
    if (typeof d[key] === "number") facts.push(`${key.replace("_", "-")} ${fmt(d[key], 3)}`);
  }
  if (facts.length) text += `; ${facts.join(", ")}`;
  if (wm.note) text += ` — ${wm.note}`;
  return text;
}

/** A hash or id shortened, the whole of it in the title. */
const shortCode = (value) => (value ? h("code", { title: value }, abbrev(value)) : null);

function verdictCard(v) {
  const status = v.signature || "unknown";
  const [tone, meaning] = SIGNATURE[status] || ["", ""];
  const titleId = nextId("verdict");
  const rows = [];
  const row = (term, value) => {
    if (blank(value)) return;
    rows.push(h("dt", {}, term), h("dd", {}, value));
  };
  row("Signature", status);
  row("Signer", v.signer);
  const gen = v.generation;
  if (gen) {
    const made = [gen.family, gen.dataset ? `on ${gen.dataset}` : null].filter(Boolean).join(" ");
    row("Made by", made || null);
    row("Run", shortCode(gen.run_id));
    row("Weights", shortCode(gen.weights_sha256));
    row("Seed", textOf(gen.seed));
    row("genlab", gen.genlab_version);
  }
  row("Watermark", watermarkText(v.watermark));
  const failures = v.failures || [];
  return h(
    "article",
    { class: `verdict ${status}`, "aria-labelledby": titleId },
    h("h2", { id: titleId }, v.file, h("span", { class: `badge ${tone}` }, status)),
    meaning ? h("p", {}, meaning) : null,
    h("dl", {}, rows),
    failures.length ? h("ul", { "aria-label": "Problems" }, failures.map((f) => h("li", {}, f))) : null,
  );
}
