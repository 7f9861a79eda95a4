// Small DOM helpers: every element of the page is built with them, never from HTML text.

export const $ = (selector, root = document) => root.querySelector(selector);

/** An element: h("p", {class: "x", onclick: f, "aria-label": "y"}, "text", child, ...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

let uid = 0;

/** A new id for an element: prefix-1, prefix-2, ... */
export const nextId = (prefix) => `${prefix}-${++uid}`;

/** The link to a run's model card. */
export const cardHref = (id) => `#card/${encodeURIComponent(id)}`;
