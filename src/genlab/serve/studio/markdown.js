// A small, safe Markdown renderer for model cards.
// Headings, paragraphs, lists (nested), tables, fenced and indented code, block quotes, rules; inline code, links,
// bold, italic. Text only ever becomes text nodes; links keep http(s), mailto and #anchors only.
// It has no side effects on import: tests (and the curious) import renderMarkdown from here alone.

import { h } from "./dom.js";

const RE = {
  fence: /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/,
  heading: /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/,
  rule: /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/,
  list: /^(\s*)([-*+]|\d{1,9}[.)])(\s+|$)/,
  quote: /^ {0,3}>\s?/,
  tableSep: /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/,
  indented: /^( {4}|\t)/,
};

const indentOf = (line) => line.match(/^\s*/)[0].replace(/\t/g, "    ").length;

function startsBlock(line, next) {
  return (
    RE.fence.test(line) ||
    RE.heading.test(line) ||
    RE.rule.test(line) ||
    RE.list.test(line) ||
    RE.quote.test(line) ||
    (line.includes("|") && next !== undefined && RE.tableSep.test(next))
  );
}

export function renderMarkdown(source, into) {
  let lines = source.replace(/\r\n?/g, "\n").split("\n");
  if (lines[0] && lines[0].trim() === "---") {
    const end = lines.findIndex((l, i) => i > 0 && /^(---|\.\.\.)\s*$/.test(l));
    if (end > 0) {
      into.append(frontMatter(lines.slice(1, end)));
      lines = lines.slice(end + 1);
    }
  }
  blocks(lines, into, { shift: 1, tight: false });
}

function blocks(lines, into, opts) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i++;
      continue;
    }
    let m;
    if ((m = RE.fence.exec(line))) {
      const fence = m[1];
      const closing = new RegExp(`^ {0,3}${fence[0]}{${fence.length},}\\s*$`); // fence[0]: a backtick or a tilde
      const code = [];
      i++;
      while (i < lines.length && !closing.test(lines[i])) {
        code.push(lines[i]);
        i++;
      }
      i++; // the closing fence
      const el = h("code", {}, code.join("\n"));
      if (m[2]) el.className = `language-${m[2].replace(/[^\w+-]/g, "")}`;
      into.append(h("pre", { tabindex: "0" }, el));
      continue;
    }
    if ((m = RE.heading.exec(line))) {
      const level = Math.min(6, m[1].length + opts.shift);
      into.append(inline(m[2] || "", h(`h${level}`)));
      i++;
      continue;
    }
    if (RE.rule.test(line)) {
      into.append(h("hr"));
      i++;
      continue;
    }
    if (line.includes("|") && i + 1 < lines.length && RE.tableSep.test(lines[i + 1])) {
      const rows = [];
      const head = cells(line);
      const aligns = cells(lines[i + 1]).map((c) => (/^:-+:$/.test(c) ? "center" : /-+:$/.test(c) ? "right" : ""));
      i += 2;
      while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
        rows.push(cells(lines[i]));
        i++;
      }
      into.append(table(head, aligns, rows));
      continue;
    }
    if (RE.quote.test(line)) {
      const inner = [];
      while (i < lines.length && lines[i].trim() && (RE.quote.test(lines[i]) || !startsBlock(lines[i], lines[i + 1]))) {
        inner.push(lines[i].replace(RE.quote, ""));
        i++;
      }
      const quote = h("blockquote");
      blocks(inner, quote, opts);
      into.append(quote);
      continue;
    }
    if (RE.list.test(line)) {
      i = list(lines, i, into, opts);
      continue;
    }
    if (RE.indented.test(line) && !opts.tight) {
      const code = [];
      while (i < lines.length && (RE.indented.test(lines[i]) || !lines[i].trim())) {
        code.push(lines[i].replace(RE.indented, ""));
        i++;
      }
      while (code.length && !code[code.length - 1].trim()) code.pop();
      into.append(h("pre", { tabindex: "0" }, h("code", {}, code.join("\n"))));
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && (!para.length || !startsBlock(lines[i], lines[i + 1]))) {
      para.push(lines[i]);
      i++;
    }
    const text = para.map((l) => l.trim()).join("\n");
    if (opts.tight) inline(text, into);
    else into.append(inline(text, h("p")));
  }
}

function list(lines, i, into, opts) {
  const first = RE.list.exec(lines[i]);
  const indent = indentOf(first[1]);
  const ordered = /\d/.test(first[2]);
  const el = h(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) el.start = parseInt(first[2], 10);
  let loose = false;
  const items = [];
  while (i < lines.length) {
    const m = RE.list.exec(lines[i]);
    if (!m || indentOf(m[1]) !== indent || /\d/.test(m[2]) !== ordered) break;
    const contentIndent = m[0].length;
    const body = [lines[i].slice(m[0].length)];
    i++;
    while (i < lines.length) {
      const l = lines[i];
      if (!l.trim()) {
        const next = lines[i + 1];
        if (next !== undefined && next.trim() && indentOf(next) > indent) {
          body.push("");
          loose = true;
          i++;
          continue;
        }
        break;
      }
      const lm = RE.list.exec(l);
      if (lm && indentOf(lm[1]) <= indent) break;
      if (indentOf(l) > indent) {
        body.push(l.replace(new RegExp(`^ {0,${contentIndent}}`), ""));
        i++;
        continue;
      }
      if (startsBlock(l, lines[i + 1])) break;
      body.push(l); // a lazy continuation line
      i++;
    }
    items.push(body);
    if (i < lines.length && !lines[i].trim() && lines[i + 1] !== undefined && RE.list.test(lines[i + 1])) {
      const nm = RE.list.exec(lines[i + 1]);
      if (indentOf(nm[1]) === indent && /\d/.test(nm[2]) === ordered) {
        loose = true;
        i++;
      }
    }
  }
  for (const body of items) {
    const li = h("li");
    blocks(body, li, { ...opts, tight: !loose });
    el.append(li);
  }
  into.append(el);
  return i;
}

function cells(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  const out = [];
  let cell = "";
  let code = false;
  for (let k = 0; k < s.length; k++) {
    const c = s[k];
    if (c === "\\" && s[k + 1] === "|") {
      cell += "|";
      k++;
    } else if (c === "`") {
      code = !code;
      cell += c;
    } else if (c === "|" && !code) {
      out.push(cell.trim());
      cell = "";
    } else cell += c;
  }
  out.push(cell.trim());
  return out;
}

function table(head, aligns, rows) {
  const blankHead = head.every((c) => !c);
  const width = head.length;
  const cell = (tag, text, k, attrs = {}) => inline(text || "", h(tag, { class: aligns[k] || null, ...attrs }));
  const el = h("table");
  if (!blankHead) {
    el.append(h("thead", {}, h("tr", {}, head.map((c, k) => cell("th", c, k, { scope: "col" })))));
  }
  const keyed = blankHead && width === 2; // a two-column table without headings: a list of settings
  const row = (r) =>
    Array.from({ length: width }, (_, k) =>
      keyed && k === 0 ? cell("th", r[k], k, { scope: "row" }) : cell("td", r[k], k),
    );
  el.append(h("tbody", {}, rows.map((r) => h("tr", {}, row(r)))));
  return h("div", { class: "table-wrap" }, el);
}

function frontMatter(lines) {
  const rows = [];
  let current = null;
  for (const line of lines) {
    const m = /^([A-Za-z0-9_.-]+):\s*(.*)$/.exec(line);
    if (m) {
      current = { key: m[1], values: m[2] ? [m[2]] : [] };
      rows.push(current);
    } else if (current && line.trim()) {
      current.values.push(line.trim().replace(/^-\s+/, ""));
    }
  }
  const unquote = (v) => v.replace(/^(["'])(.*)\1$/, "$2");
  const row = (r) => h("tr", {}, h("th", { scope: "row" }, r.key), h("td", {}, r.values.map(unquote).join(", ")));
  return h(
    "details",
    { class: "meta" },
    h("summary", {}, "Metadata (the card's front matter)"),
    h("table", {}, h("tbody", {}, rows.map(row))),
  );
}

const SAFE_URL = /^(https?:\/\/|mailto:|#)/i;

const INLINE = [
  { re: /(`+)([\s\S]*?[^`])\1(?!`)/, make: (m) => h("code", {}, m[2].replace(/^ (.*) $/, "$1")) },
  { re: /\\([\\`*_{}[\]()#+\-.!|>~<])/, make: (m) => document.createTextNode(m[1]) },
  { re: /!\[([^\]]*)\]\(([^)\s]*)(?:\s+"[^"]*")?\)/, make: (m) => document.createTextNode(m[1]) },
  { re: /<((?:https?:\/\/|mailto:)[^\s<>]+)>/, make: (m) => link(m[1], m[1]) },
  {
    re: /\[((?:\\.|[^\]\\])+)\]\(\s*<?((?:[^\s()<>]|\([^\s()<>]*\))*)>?(?:\s+"([^"]*)")?\s*\)/,
    make: (m) => link(m[2], null, m[1], m[3]),
  },
  { re: /\*\*(?=\S)([\s\S]*?\S)\*\*/, make: (m) => inline(m[1], h("strong")) },
  { re: /(?<![A-Za-z0-9_])__(?=\S)([\s\S]*?\S)__(?![A-Za-z0-9_])/, make: (m) => inline(m[1], h("strong")) },
  { re: /\*(?=[^\s*])([\s\S]*?[^\s*])\*/, make: (m) => inline(m[1], h("em")) },
  { re: /(?<![A-Za-z0-9_])_(?=[^\s_])([\s\S]*?[^\s_])_(?![A-Za-z0-9_])/, make: (m) => inline(m[1], h("em")) },
  { re: /https?:\/\/[^\s<>()]*[^\s<>().,;:!?'"*_]/, make: (m) => link(m[0], m[0]) },
  { re: / {2,}\n/, make: () => h("br") },
];

function link(url, text, markdown, title) {
  if (!SAFE_URL.test(url)) {
    const span = h("span");
    return markdown !== undefined ? inline(markdown, span) : (span.append(text), span);
  }
  const a = h("a", { href: url, title: title || null });
  if (/^https?:/i.test(url)) {
    a.target = "_blank";
    a.rel = "noopener noreferrer";
  }
  if (markdown !== undefined && markdown !== null) inline(markdown, a);
  else a.append(text);
  return a;
}

/** Inline Markdown of `text` appended to `parent` (returned). */
function inline(text, parent) {
  let rest = text;
  while (rest) {
    let best = null;
    for (const rule of INLINE) {
      const m = rule.re.exec(rest);
      if (m && (!best || m.index < best.m.index)) best = { rule, m };
    }
    if (!best) {
      parent.append(rest);
      break;
    }
    if (best.m.index) parent.append(rest.slice(0, best.m.index));
    parent.append(best.rule.make(best.m));
    rest = rest.slice(best.m.index + best.m[0].length);
  }
  return parent;
}
