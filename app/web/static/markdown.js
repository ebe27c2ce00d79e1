// A small, strict markdown renderer for the answers of the Chat Orchestrator.
//
// Answers quote names and titles that anyone on the mesh can choose (a droplet called
// `<img src=x onerror=...>`, a task titled "ignore previous instructions"), so this renderer
// never parses HTML: it builds DOM nodes and every piece of text reaches the page through
// createTextNode / textContent. Only this subset is recognised; everything else stays literal:
//   blocks:  paragraphs (single newlines are line breaks), # headings, - / 1. lists (nested by
//            indentation), | tables | with alignment, ``` fenced code, --- rules
//   inline:  **bold**, *italics* / _italics_, `code`, [links](https://...) and bare http(s) URLs,
//            backslash escapes
// Links are kept only for absolute http(s) URLs and open in a new tab without a referrer.

const MAX_DEPTH = 6; // nesting of lists and emphasis; deeper input renders as plain text
const MAX_CHARS = 200000;
const PUNCTUATION = /[!-/:-@[-`{-~]/;
const WORD_CHAR = /[\p{L}\p{N}]/u;

// Status vocabulary of the answers (app/services/response_formatter.py marks included); the
// CLI keeps the same lists in app/cli_render.py.
const STATUS_WORDS = new Map();
const addStatus = (kind, words) => words.forEach((w) => STATUS_WORDS.set(w, kind));
addStatus("ok", ["active", "healthy", "ok", "online", "up", "connected", "completed", "complete",
  "done", "success", "succeeded", "delivered", "available", "confirmed", "executed"]);
addStatus("info", ["pending", "assigned", "in_progress", "in progress", "queued", "running",
  "starting", "retrying", "waiting", "scheduled", "awaiting_confirmation",
  "awaiting confirmation"]);
addStatus("warn", ["inactive", "degraded", "warning", "stale", "unknown", "already_confirmed"]);
addStatus("bad", ["error", "failed", "failure", "down", "offline", "unhealthy", "unavailable",
  "unreachable", "critical", "timeout", "timed out", "rejected", "denied", "forbidden",
  "invalid"]);
addStatus("muted", ["cancelled", "canceled", "skipped", "declined", "dropped"]);

// A leading mark is the answer's own verdict, so it wins over the word after it.
const STATUS_MARKS = [
  ["ok", ["✅", "🟢", "✔"]],
  ["info", ["⏳", "📌", "🔄", "🔵"]],
  ["warn", ["⚠", "🟡", "🟠", "❔"]],
  ["bad", ["❌", "🔴", "✖", "⛔"]],
  ["muted", ["🚫", "⚪", "⚫"]],
];

/** The colour family of a short status text ("🟢 active", "in_progress", "❌"), or null. */
export function statusKind(text) {
  const value = String(text ?? "").trim();
  if (!value || value.length > 32) return null;
  for (const [kind, marks] of STATUS_MARKS) {
    if (marks.some((mark) => value.startsWith(mark))) return kind;
  }
  const word = value.toLowerCase().replace(/^[^\p{L}\p{N}]+/u, "").replace(/[^\p{L}\p{N}]+$/u, "");
  return STATUS_WORDS.get(word) ?? null;
}

/** The URL when it is an absolute http(s) URL, else null (javascript:, data:, relative...). */
export function safeHref(url) {
  const value = String(url ?? "").trim();
  if (!/^https?:\/\//i.test(value)) return null;
  try {
    const parsed = new URL(value);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/** Render markdown text into a DocumentFragment (text nodes only; no HTML is ever parsed). */
export function renderMarkdown(source) {
  const fragment = document.createDocumentFragment();
  let text = String(source ?? "").replace(/\r\n?/g, "\n");
  if (text.length > MAX_CHARS) text = `${text.slice(0, MAX_CHARS)}\n…`;
  renderBlocks(text.split("\n"), fragment, 0);
  return fragment;
}

// ------------------------------------------------------------------------------------------
// Blocks
// ------------------------------------------------------------------------------------------

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)\s*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const LIST_ITEM = /^( *)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_SEPARATOR = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

const isBlank = (line) => line.trim() === "";

function isTableStart(lines, i) {
  return i + 1 < lines.length && lines[i].includes("|") && lines[i + 1].includes("|")
    && TABLE_SEPARATOR.test(lines[i + 1])
    && splitRow(lines[i]).length === splitRow(lines[i + 1]).length;
}

function startsBlock(lines, i) {
  const line = lines[i];
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || LIST_ITEM.test(line)
    || isTableStart(lines, i);
}

function renderBlocks(lines, parent, depth) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i += 1;
      continue;
    }
    let match = FENCE.exec(line);
    if (match) {
      i = renderFence(lines, i, match, parent);
      continue;
    }
    match = HEADING.exec(line);
    if (match) {
      const heading = document.createElement(`h${Math.min(match[1].length + 2, 6)}`);
      renderInline(match[2], heading, 0, true);
      parent.appendChild(heading);
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      parent.appendChild(document.createElement("hr"));
      i += 1;
      continue;
    }
    if (isTableStart(lines, i)) {
      i = renderTable(lines, i, parent);
      continue;
    }
    if (LIST_ITEM.test(line) && depth < MAX_DEPTH) {
      i = renderList(lines, i, parent, depth);
      continue;
    }
    i = renderParagraph(lines, i, parent);
  }
}

function renderFence(lines, start, match, parent) {
  const marker = match[1];
  const body = [];
  let i = start + 1;
  while (i < lines.length) {
    const close = lines[i].trim();
    if (close.startsWith(marker[0].repeat(marker.length)) && /^([`~])\1*$/.test(close)) {
      i += 1;
      break;
    }
    body.push(lines[i]);
    i += 1;
  }
  const pre = document.createElement("pre");
  const code = document.createElement("code");
  code.textContent = body.join("\n");
  pre.appendChild(code);
  parent.appendChild(pre);
  return i;
}

function renderParagraph(lines, start, parent) {
  const body = [lines[start].trim()];
  let i = start + 1;
  while (i < lines.length && !isBlank(lines[i]) && !startsBlock(lines, i)) {
    body.push(lines[i].trim());
    i += 1;
  }
  const paragraph = document.createElement("p");
  renderInline(body.join("\n"), paragraph, 0, true);
  parent.appendChild(paragraph);
  return i;
}

/** Cells of a table row; `|` inside `code` or escaped as `\|` does not split. */
function splitRow(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  const cells = [];
  let current = "";
  let inCode = false;
  for (let i = 0; i < row.length; i += 1) {
    const c = row[i];
    if (c === "\\" && row[i + 1] === "|") {
      // In code the backslash would show, so drop it there; elsewhere the inline pass unescapes.
      current += inCode ? "|" : "\\|";
      i += 1;
    } else if (c === "`") {
      inCode = !inCode;
      current += c;
    } else if (c === "|" && !inCode) {
      cells.push(current.trim());
      current = "";
    } else {
      current += c;
    }
  }
  cells.push(current.trim());
  return cells;
}

function alignments(separator) {
  return splitRow(separator).map((cell) => {
    const left = cell.startsWith(":");
    const right = cell.endsWith(":");
    if (left && right) return "center";
    if (right) return "right";
    return left ? "left" : null;
  });
}

function tableCell(tag, text, align) {
  const cell = document.createElement(tag);
  if (align) cell.classList.add(`align-${align}`);
  renderInline(text, cell, 0, true);
  const kind = tag === "td" ? statusKind(cell.textContent) : null;
  if (kind) {
    cell.classList.add("status", `status-${kind}`);
    cell.dataset.status = kind;
  }
  return cell;
}

function renderTable(lines, start, parent) {
  const header = splitRow(lines[start]);
  const align = alignments(lines[start + 1]);
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const table = document.createElement("table");
  const head = document.createElement("thead");
  const headRow = document.createElement("tr");
  header.forEach((text, c) => headRow.appendChild(tableCell("th", text, align[c])));
  head.appendChild(headRow);
  table.appendChild(head);
  const body = document.createElement("tbody");
  let i = start + 2;
  while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
    const cells = splitRow(lines[i]);
    const row = document.createElement("tr");
    header.forEach((_, c) => row.appendChild(tableCell("td", cells[c] ?? "", align[c])));
    body.appendChild(row);
    i += 1;
  }
  table.appendChild(body);
  wrap.appendChild(table);
  parent.appendChild(wrap);
  return i;
}

function renderList(lines, start, parent, depth) {
  const first = LIST_ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = document.createElement(ordered ? "ol" : "ul");
  if (ordered) {
    const number = Number.parseInt(first[2], 10);
    if (number !== 1) list.start = number;
  }
  let i = start;
  while (i < lines.length) {
    const match = LIST_ITEM.exec(lines[i]);
    if (!match || match[1].length !== indent || /\d/.test(match[2]) !== ordered) break;
    const content = [match[3]];
    const offset = match[1].length + match[2].length + 1;
    i += 1;
    while (i < lines.length) {
      const line = lines[i];
      const lineIndent = line.length - line.trimStart().length;
      if (isBlank(line)) {
        // A blank line ends the item unless the list (or this item) continues after it.
        const next = lines[i + 1];
        if (next === undefined || isBlank(next)) break;
        const nextIndent = next.length - next.trimStart().length;
        if (nextIndent > indent) {
          content.push("");
          i += 1;
          continue;
        }
        break;
      }
      if (lineIndent > indent) {
        content.push(line.slice(Math.min(lineIndent, offset)));
      } else if (!startsBlock(lines, i)) {
        content.push(line.trim()); // a lazy continuation of the item's text
      } else {
        break;
      }
      i += 1;
    }
    const item = document.createElement("li");
    renderBlocks(content, item, depth + 1);
    // Tight lists: an item whose first block is a paragraph shows it inline.
    if (item.firstChild && item.firstChild.nodeName === "P") {
      const paragraph = item.firstChild;
      while (paragraph.firstChild) item.insertBefore(paragraph.firstChild, paragraph);
      paragraph.remove();
    }
    list.appendChild(item);
    while (i < lines.length && isBlank(lines[i])) {
      const next = lines[i + 1];
      const nextMatch = next === undefined ? null : LIST_ITEM.exec(next);
      if (!nextMatch || nextMatch[1].length !== indent) break;
      i += 1;
    }
  }
  parent.appendChild(list);
  return i;
}

// ------------------------------------------------------------------------------------------
// Inline
// ------------------------------------------------------------------------------------------

function runLength(text, at) {
  let end = at;
  while (text[end] === text[at]) end += 1;
  return end - at;
}

/** Where a closing delimiter of `size` (1 or 2) for `ch` starts at or after `from`, else -1. */
function findCloser(text, from, ch, size) {
  for (let j = from; j < text.length; j += 1) {
    if (text[j] === "\\") {
      j += 1;
      continue;
    }
    if (text[j] === "`") {
      const n = runLength(text, j);
      const close = text.indexOf("`".repeat(n), j + n);
      if (close !== -1) j = close + n - 1;
      continue;
    }
    if (text[j] !== ch) continue;
    const n = runLength(text, j);
    const end = j + n;
    const closeAt = end - size;
    const usable = size === 2 ? n >= 2 : n !== 2;
    const before = text[closeAt - 1];
    const after = text[end];
    const flanking = before !== undefined && !/\s/.test(before)
      && (ch !== "_" || after === undefined || !WORD_CHAR.test(after));
    if (usable && flanking && closeAt > from) return closeAt;
    j = end - 1;
  }
  return -1;
}

/** Emphasis opening at `at`: {tag, inner, end} or null when the delimiters are literal. */
function emphasis(text, at) {
  const ch = text[at];
  const n = runLength(text, at);
  const before = text[at - 1];
  const after = text[at + n];
  if (after === undefined || /\s/.test(after)) return null;
  if (ch === "_" && before !== undefined && WORD_CHAR.test(before)) return null; // snake_case
  if (n >= 2) {
    const close = findCloser(text, at + 2, ch, 2);
    if (close !== -1) return { tag: "strong", inner: text.slice(at + 2, close), end: close + 2 };
  }
  if (n === 1 || n >= 3) {
    const close = findCloser(text, at + 1, ch, 1);
    if (close !== -1) return { tag: "em", inner: text.slice(at + 1, close), end: close + 1 };
  }
  return null;
}

const LINK = /^\[((?:\\.|[^\\\]\n])+)\]\(\s*([^\s()]+)\s*\)/;
const BARE_URL = /^https?:\/\/[^\s<>"'`|\\]+/i;

function renderInline(text, parent, depth, links) {
  let buffer = "";
  const flush = () => {
    if (buffer) parent.appendChild(document.createTextNode(buffer));
    buffer = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && i + 1 < text.length && PUNCTUATION.test(text[i + 1])) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "\n") {
      flush();
      parent.appendChild(document.createElement("br"));
      i += 1;
      continue;
    }
    if (c === "`") {
      const n = runLength(text, i);
      const close = text.indexOf("`".repeat(n), i + n);
      if (close !== -1 && runLength(text, close) === n) {
        flush();
        const code = document.createElement("code");
        code.textContent = text.slice(i + n, close).replace(/\n/g, " ");
        parent.appendChild(code);
        i = close + n;
      } else {
        buffer += "`".repeat(n);
        i += n;
      }
      continue;
    }
    if (c === "*" || c === "_") {
      const found = depth < MAX_DEPTH ? emphasis(text, i) : null;
      if (found && found.inner) {
        flush();
        const element = document.createElement(found.tag);
        renderInline(found.inner, element, depth + 1, links);
        parent.appendChild(element);
        i = found.end;
      } else {
        const n = runLength(text, i);
        buffer += c.repeat(n);
        i += n;
      }
      continue;
    }
    if (c === "[" && links) {
      const match = LINK.exec(text.slice(i));
      if (match) {
        flush();
        const href = safeHref(match[2]);
        if (href) {
          const anchor = link(href);
          renderInline(match[1], anchor, depth + 1, false);
          parent.appendChild(anchor);
        } else {
          // An unsafe target is shown, not followed: the reader sees what it was.
          renderInline(match[1], parent, depth + 1, false);
          parent.appendChild(document.createTextNode(` (${match[2]})`));
        }
        i += match[0].length;
        continue;
      }
    }
    if ((c === "h" || c === "H") && links && (i === 0 || !WORD_CHAR.test(text[i - 1]))) {
      const match = BARE_URL.exec(text.slice(i));
      if (match) {
        const url = match[0].replace(/[.,;:!?)\]*_]+$/, "");
        const href = safeHref(url);
        if (href) {
          flush();
          const anchor = link(href);
          anchor.textContent = url;
          parent.appendChild(anchor);
          i += url.length;
          continue;
        }
      }
    }
    buffer += c;
    i += 1;
  }
  flush();
}

function link(href) {
  const anchor = document.createElement("a");
  anchor.href = href;
  anchor.rel = "noopener noreferrer nofollow";
  anchor.target = "_blank";
  return anchor;
}
