// What a generation made, shown in #results: files (images, audio, tables, text) with download links, fill-mask
// fillers, and the provenance that came with them.

import { $, h } from "./dom.js";
import { abbrev, blank, textOf } from "./format.js";

const CSV_ROWS = 200; // rows shown of a generated table (the file has them all)

let urls = []; // object URLs of the shown outputs (revoked when replaced)

export function clearResults() {
  for (const url of urls) URL.revokeObjectURL(url);
  urls = [];
  $("#results").replaceChildren();
}

/** What made an output: run id, weights' hash, watermark scheme (and seed), as a description list. */
export function provenanceList(p) {
  const list = Array.isArray(p) ? p[0] : p;
  if (!list) return h("p", { class: "note" }, "No provenance came with this output.");
  const item = (term, value, title) =>
    blank(value) ? null : h("div", {}, h("dt", {}, term), h("dd", { title }, value));
  const wm = list.watermark;
  const scheme = wm ? wm.scheme || "yes" : "none";
  const hash = list.weights_sha256;
  return h(
    "dl",
    { class: "provenance", "aria-label": "Provenance" },
    item("Run", list.run_id),
    item("Weights", hash ? abbrev(hash) : null, hash ? `SHA-256 ${hash}` : null),
    item("Watermark", scheme),
    item("Seed", textOf(list.seed)),
  );
}

function bytesOf(b64) {
  const binary = atob(b64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** base64 of UTF-8 text, as text. */
const decoded = (b64) => new TextDecoder().decode(bytesOf(b64));

function download(filename, b64, type) {
  const url = URL.createObjectURL(new Blob([bytesOf(b64)], { type: type || "application/octet-stream" }));
  urls.push(url);
  return h("a", { href: url, download: filename }, filename);
}

function stemOf(filename) {
  return filename.replace(/\.[^.]*$/, "");
}

const isImage = (item) => (item.content_type || "").startsWith("image/");

/** The answer of a /v1/{x}/generations endpoint. */
export function showOutputs(data) {
  const g = data.genlab || {};
  const items = data.data || [];
  const parts = [h("h2", { id: "out-title" }, "Outputs")];
  const sections = g.text || null;
  const hasSections = Boolean(sections && sections.length);
  if (hasSections) {
    for (const s of sections) {
      parts.push(h("div", { class: "section" }, h("h3", {}, s.title), h("pre", {}, s.text)));
    }
  }
  // one card per output: the files that share a name (a piece's .mid, .wav and .png) go together
  const groups = new Map();
  for (const item of items) {
    const stem = stemOf(item.filename);
    if (!groups.has(stem)) groups.set(stem, []);
    groups.get(stem).push(item);
  }
  const imageCount = [...groups.values()].filter((files) => files.some(isImage)).length;
  let imageIndex = 0;
  let wide = false;
  const cards = [...groups.entries()].map(([stem, files]) => {
    const shown = [];
    for (const item of files) {
      const type = item.content_type || "application/octet-stream";
      const src = `data:${type};base64,${item.b64_json}`;
      if (type.startsWith("image/")) {
        imageIndex += 1;
        const img = h("img", { src, alt: `Generated image ${imageIndex} of ${imageCount} (${item.filename})` });
        img.addEventListener("load", () => {
          if (img.naturalWidth && img.naturalWidth < 160) img.classList.add("pixelated");
        });
        shown.push(img);
      } else if (type.startsWith("audio/") && document.createElement("audio").canPlayType(type)) {
        shown.push(h("audio", { controls: true, preload: "metadata", src, "aria-label": `Play ${item.filename}` }));
      } else if (type === "text/csv") {
        wide = true;
        shown.push(csvTable(decoded(item.b64_json), item.filename));
      } else if ((type.startsWith("text/") || type === "application/json") && !hasSections) {
        wide = true;
        shown.push(h("pre", { tabindex: "0", "aria-label": item.filename }, decoded(item.b64_json)));
      }
    }
    const links = [];
    for (const item of files) {
      links.push(download(item.filename, item.b64_json, item.content_type));
      if (item.c2pa_b64) links.push(download(`${item.filename}.c2pa`, item.c2pa_b64, "application/c2pa"));
    }
    const caption = h("figcaption", {}, h("span", { class: "visually-hidden" }, `${stem}: download `), links);
    return h("figure", { class: "output" }, shown, caption);
  });
  if (cards.length) parts.push(h("div", { class: wide ? "grid wide" : "grid" }, cards));
  if ((g.files || []).length) {
    parts.push(
      h(
        "p",
        { class: "note" },
        "All outputs together: ",
        g.files.map((f, i) => [i ? ", " : "", download(f.filename, f.b64_json, f.content_type)]),
      ),
    );
  }
  if (g.note) parts.push(h("p", { class: "note" }, g.note));
  if (g.provenance) parts.push(provenanceList(g.provenance));
  $("#results").replaceChildren(...parts);
}

/** A CSV file as a table (RFC 4180 quoting), its first CSV_ROWS rows. */
function csvTable(text, filename) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let k = 0; k < text.length; k++) {
    const c = text[k];
    if (quoted) {
      if (c === '"' && text[k + 1] === '"') {
        cell += '"';
        k++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[k + 1] === "\n") k++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
      if (rows.length > CSV_ROWS) break;
    } else cell += c;
  }
  if (cell || row.length) rows.push([...row, cell]);
  const [head = [], ...body] = rows;
  const shown = body.slice(0, CSV_ROWS);
  const caption = body.length > CSV_ROWS ? `${filename}: the first ${CSV_ROWS} rows` : filename;
  return h(
    "div",
    { class: "table-wrap csv", tabindex: "0", role: "region", "aria-label": caption },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, shown.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
    ),
  );
}

/** The answer of /v1/fill: the text with each mask's best filler marked, then each mask's fillers. */
export function showFills(text, masks) {
  clearResults();
  const pieces = text.split("[MASK]");
  const filled = h("p", { class: "filled" });
  pieces.forEach((piece, i) => {
    filled.append(piece);
    if (i < pieces.length - 1) {
      const best = masks[i] && masks[i][0];
      filled.append(h("mark", {}, best ? best.token : "[MASK]"));
    }
  });
  const filler = (f) =>
    h("li", {}, h("code", {}, JSON.stringify(f.token)), h("span", {}, `${(f.probability * 100).toFixed(1)}%`));
  const lists = masks.map((fillers, i) =>
    h("section", { "aria-label": `Mask ${i + 1}` }, h("h3", {}, `Mask ${i + 1}`), h("ol", {}, fillers.map(filler))),
  );
  $("#results").replaceChildren(h("h2", {}, "Fillers"), filled, h("div", { class: "fills" }, lists));
}
