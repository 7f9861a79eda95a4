// The Card view: a run's model card (Markdown, rendered by markdown.js) and its loss curve.

import { request, runPath, setStatus, showError } from "./api.js";
import { $, cardHref } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

let cardPick = 0; // increases on each card asked for: late answers for an older one are dropped
let lossUrl = null;

export function setupCard() {
  $("#card-run").addEventListener("change", (e) => {
    const id = e.target.value;
    history.replaceState(null, "", cardHref(id));
    showCard(id);
  });
}

export async function showCard(id) {
  const pick = ++cardPick;
  const card = $("#card");
  const figure = $("#loss");
  setStatus(`Loading the card of ${id}…`);
  let text;
  try {
    text = await (await request(runPath(id, "/card"))).text();
  } catch (e) {
    if (pick === cardPick) showError(e);
    return;
  }
  if (pick !== cardPick) return;
  card.replaceChildren();
  renderMarkdown(text, card);
  setStatus("");
  figure.hidden = true;
  try {
    const response = await request(runPath(id, "/loss.png"));
    const blob = await response.blob();
    if (pick !== cardPick) return;
    if (lossUrl) URL.revokeObjectURL(lossUrl);
    lossUrl = URL.createObjectURL(blob);
    const img = $("#loss-img");
    img.src = lossUrl;
    img.alt = `Training and validation loss of ${id} by step`;
    figure.hidden = false;
  } catch {
    figure.hidden = true; // no curve yet
  }
}
