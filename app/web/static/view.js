// DOM building blocks of the chat page. Every server-provided string goes through textContent
// or the strict markdown renderer; nothing here parses HTML.

import { renderMarkdown, statusKind } from "./markdown.js";

export function el(tag, { className, text, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, value);
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

export function formatTime(iso) {
  const date = iso ? new Date(iso) : new Date();
  if (Number.isNaN(date.getTime())) return "";
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function timeElement(iso) {
  const attrs = {};
  if (iso) attrs.datetime = String(iso);
  return el("time", { text: formatTime(iso), attrs });
}

function meta(who, iso, extra = []) {
  return el("header", { className: "msg-meta" }, [el("span", { className: "who", text: who }),
    timeElement(iso), ...extra]);
}

export function userMessage({ content, timestamp, note }) {
  const extra = note ? [el("span", { className: "note", text: note })] : [];
  return el("article", { className: "msg msg-user", attrs: { "data-role": "user" } }, [
    meta("You", timestamp, extra),
    el("div", { className: "msg-body plain", text: content }),
  ]);
}

function actionList(actions) {
  if (!Array.isArray(actions) || actions.length === 0) return null;
  const list = el("ul", { className: "msg-actions", attrs: { "aria-label": "Tools used" } });
  for (const action of actions) {
    if (!action || typeof action !== "object") continue;
    const kind = statusKind(action.status) ?? "other";
    list.appendChild(el("li", { className: `action status-${kind}` }, [
      el("code", { text: action.tool }),
      el("span", { className: "action-status", text: action.status }),
    ]));
  }
  return list;
}

export function assistantMessage({ content, timestamp, actions, planner, traceId }) {
  const extra = planner ? [el("span", { className: "note", text: planner })] : [];
  const body = el("div", { className: "msg-body markdown" });
  body.appendChild(renderMarkdown(content));
  const attrs = { "data-role": "assistant" };
  if (traceId) attrs["data-trace-id"] = String(traceId);
  return el("article", { className: "msg msg-assistant", attrs }, [
    meta("Orchestrator", timestamp, extra),
    body,
    actionList(actions),
  ]);
}

function summarySection(message) {
  let section = message.querySelector(".msg-summary");
  if (!section) {
    section = el("section", { className: "msg-summary streaming",
      attrs: { "aria-label": "Summary written by the language model" } }, [
      el("p", {
        className: "summary-label",
        text: "In short (a model's summary; the answer above is the record)",
      }),
      el("div", { className: "summary-body markdown" }),
    ]);
    message.querySelector(".msg-body").after(section);
  }
  return section;
}

/** Stream a piece of the model's summary in as plain text (markdown once it is complete). */
export function summaryPiece(message, piece) {
  const body = summarySection(message).querySelector(".summary-body");
  body.appendChild(document.createTextNode(piece));
}

export function summaryDone(message, content) {
  if (!content) {
    message.querySelector(".msg-summary")?.remove();
    return;
  }
  const section = summarySection(message);
  section.classList.remove("streaming");
  section.querySelector(".summary-body").replaceChildren(renderMarkdown(content));
}

export function notice(text, kind = "info") {
  return el("div", { className: `notice notice-${kind}`, text, attrs: { role: "status" } });
}

const STEP_LABELS = {
  planning: () => "Working out what you mean",
  formatting: () => "Writing the answer",
  calling: (frame) => {
    const tool = frame.tool ? String(frame.tool) : "a tool";
    const droplet = frame.droplet ?? frame.droplet_id;
    return droplet !== undefined && droplet !== null
      ? `Calling ${tool} on droplet ${droplet}` : `Calling ${tool}`;
  },
};

export function progressRow(traceId) {
  return el("article", {
    className: "msg msg-progress",
    attrs: { "data-trace-id": String(traceId ?? ""), "aria-live": "polite" },
  }, [
    el("div", { className: "progress-head" }, [
      el("span", { className: "spinner", attrs: { "aria-hidden": "true" } }),
      el("span", { className: "progress-label", text: "Sent" }),
    ]),
    el("ol", { className: "progress-steps" }),
  ]);
}

export function progressLabel(row, text) {
  row.querySelector(".progress-label").textContent = text;
}

export function progressStep(row, frame) {
  const step = String(frame.step ?? "working");
  const label = (STEP_LABELS[step] ?? (() => step))(frame);
  const steps = row.querySelector(".progress-steps");
  steps.querySelectorAll("li.current").forEach((li) => li.classList.replace("current", "done"));
  steps.appendChild(el("li", { className: "current", text: label, attrs: { "data-step": step } }));
  progressLabel(row, `${label}…`);
}

function argumentList(args) {
  const list = el("dl", { className: "pending-args" });
  for (const [name, value] of Object.entries(args ?? {})) {
    const shown = typeof value === "string" ? value : JSON.stringify(value);
    list.append(el("dt", { text: name }), el("dd", { text: shown }));
  }
  // The tool's own wording comes first; the raw arguments stay one click away.
  return el("details", { className: "pending-raw" }, [
    el("summary", { text: "Arguments" }),
    list,
  ]);
}

/** The Confirm / Cancel card of a pending write action. */
export function pendingCard(pending, { onConfirm, onCancel }) {
  const awaitingDetails = pending.awaiting === "details"
    || (Array.isArray(pending.missing) && pending.missing.length > 0);
  const confirm = el("button", {
    className: "btn btn-confirm", text: "Confirm", attrs: { type: "button" },
  });
  const cancel = el("button", {
    className: "btn btn-cancel", text: "Cancel", attrs: { type: "button" },
  });
  confirm.addEventListener("click", () => onConfirm(card));
  cancel.addEventListener("click", () => onCancel(card));
  const missing = awaitingDetails && pending.missing?.length
    ? el("p", { className: "pending-missing", text: `Still needed: ${pending.missing.join(", ")}. `
      + "Reply with the details, or cancel." })
    : null;
  const card = el("section", {
    className: "pending",
    attrs: { "aria-label": "Action waiting for your confirmation",
      "data-awaiting": awaitingDetails ? "details" : "confirmation" },
  }, [
    el("p", { className: "pending-title" }, [
      el("span", { text: awaitingDetails ? "Needs details: " : "Waiting for your confirmation: " }),
      el("code", { text: pending.tool }),
    ]),
    pending.summary
      ? el("p", { className: "pending-summary", text: pending.summary })
      : null,
    pending.preview
      ? el("div", { className: "pending-preview markdown" }, [renderMarkdown(pending.preview)])
      : null,
    argumentList(pending.args),
    missing,
    el("div", { className: "pending-buttons" }, awaitingDetails ? [cancel] : [confirm, cancel]),
  ]);
  return card;
}

/** A watch that fired ("Droplet 16 is back"): an event in the session, not an answer. */
export function notificationMessage({ text, timestamp }) {
  const body = el("div", { className: "msg-body" }, [el("p", { text: String(text ?? "") })]);
  return el("article", {
    className: "msg msg-assistant msg-notification",
    attrs: { "data-role": "notification", role: "status" },
  }, [meta("Notification", timestamp, []), body]);
}

/** Freeze a pending card once it is answered or superseded. */
export function settlePending(card, text) {
  card.classList.add("settled");
  card.querySelectorAll("button").forEach((button) => {
    button.disabled = true;
  });
  const result = card.querySelector(".pending-result")
    ?? card.appendChild(el("p", { className: "pending-result" }));
  result.textContent = text;
}

const SEVERITIES = new Set(["info", "warning", "critical"]);

export function eventItem(event) {
  const severity = SEVERITIES.has(event.severity) ? event.severity : "info";
  const ids = [];
  if (event.droplet_id !== undefined && event.droplet_id !== null) {
    ids.push(`droplet ${event.droplet_id}`);
  }
  if (event.task_id !== undefined && event.task_id !== null) ids.push(`task ${event.task_id}`);
  const kind = String(event.kind ?? "event");
  return el("li", { className: `event sev-${severity}`, attrs: { "data-kind": kind } }, [
    el("div", { className: "event-head" }, [
      el("span", { className: "sev", text: severity }),
      el("span", { className: "event-kind", text: kind.replaceAll("_", " ") }),
      timeElement(event.at),
    ]),
    el("p", { className: "event-summary", text: event.summary ?? "" }),
    ids.length ? el("p", { className: "event-ids", text: ids.join(" · ") }) : null,
  ]);
}

/** Change the log, following the newest message unless the reader scrolled up to read. */
export function followLog(log, change, { force = false } = {}) {
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
  change();
  if (force || nearBottom) log.scrollTop = log.scrollHeight;
}

export function appendToLog(log, node, options = {}) {
  followLog(log, () => log.appendChild(node), options);
  return node;
}
