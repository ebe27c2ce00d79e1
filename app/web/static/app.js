// The chat page: talks to /ws for turns and live events, and to /api/sessions/{id} to reload the
// conversation after a page reload or a reconnect. See shared/contracts/chat-api.md.

import { ChatSocket } from "./socket.js";
import * as view from "./view.js";

const KEYS = { session: "chat-orchestrator.session", token: "chat-orchestrator.token" };
const MAX_EVENTS = 100;
const MAX_RECALL = 50;
const MAX_MESSAGE_CHARS = 5000;
const SESSION_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

const byId = (id) => document.getElementById(id);

function storage(kind) {
  // Private modes and locked-down browsers may refuse storage; the page still works without it.
  try {
    return kind === "local" ? window.localStorage : window.sessionStorage;
  } catch {
    return null;
  }
}

/** A token passed as ?token=... is kept for this tab only and removed from the address bar. */
function takeToken() {
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token");
  if (token) {
    storage("session")?.setItem(KEYS.token, token);
    params.delete("token");
    const query = params.toString();
    window.history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}`);
    return token;
  }
  return storage("session")?.getItem(KEYS.token) ?? null;
}

function initialSession() {
  const fromUrl = new URLSearchParams(window.location.search).get("session");
  if (fromUrl && SESSION_ID.test(fromUrl)) {
    storage("local")?.setItem(KEYS.session, fromUrl);
    return fromUrl;
  }
  const stored = storage("local")?.getItem(KEYS.session);
  return stored && SESSION_ID.test(stored) ? stored : null;
}

class ChatPage {
  constructor() {
    this.ui = {
      log: byId("log"),
      form: byId("composer"),
      input: byId("input"),
      connection: byId("connection"),
      connectionText: byId("connection-text"),
      retry: byId("retry"),
      session: byId("session-id"),
      newSession: byId("new-session"),
      panel: byId("panel"),
      events: byId("events"),
      eventsToggle: byId("events-toggle"),
      alertBadge: byId("alert-badge"),
      alertCount: byId("alert-count"),
      clearEvents: byId("clear-events"),
    };
    this.token = takeToken();
    this.sessionId = initialSession();
    this.progress = new Map(); // trace_id -> progress row of a turn in flight
    this.sent = []; // what the user sent, oldest first, for Up / Down recall
    this.recall = -1;
    this.draft = "";
    this.online = false;
    this.alerts = 0;
    this.unseenAlerts = 0;
    this.socket = new ChatSocket({
      url: () => this.socketUrl(),
      onFrame: (frame) => this.onFrame(frame),
      onState: (state) => this.onState(state),
      isServerUp: () => this.isServerUp(),
    });
  }

  async start() {
    this.bind();
    this.showSession();
    if (this.sessionId) await this.loadHistory();
    this.socket.connect();
    this.ui.input.focus();
  }

  bind() {
    const { form, input, retry, newSession, eventsToggle, clearEvents } = this.ui;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => this.onKey(event));
    input.addEventListener("input", () => this.autosize());
    retry.addEventListener("click", () => this.socket.reconnectNow());
    newSession.addEventListener("click", () => this.startNewSession());
    eventsToggle.addEventListener("click", () => this.togglePanel());
    clearEvents.addEventListener("click", () => {
      this.ui.events.replaceChildren();
      this.alerts = 0;
      this.updateAlertCounts();
    });
    document.querySelectorAll("[data-say]").forEach((chip) => {
      chip.addEventListener("click", () => {
        input.value = chip.dataset.say;
        this.submit();
      });
    });
  }

  // -- connection ---------------------------------------------------------------------------

  socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams();
    if (this.sessionId) params.set("session_id", this.sessionId);
    if (this.token) params.set("token", this.token);
    const query = params.toString();
    return `${scheme}://${window.location.host}/ws${query ? `?${query}` : ""}`;
  }

  async isServerUp() {
    try {
      const response = await fetch("/health", { cache: "no-store" });
      return response.ok || response.status === 503;
    } catch {
      return false;
    }
  }

  headers() {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  onState(status) {
    const { connection, connectionText, retry } = this.ui;
    connection.dataset.state = status.state;
    document.body.dataset.connection = status.state;
    retry.hidden = status.state !== "closed" && status.state !== "refused";
    if (status.state === "connecting") {
      connectionText.textContent = status.attempt ? "Reconnecting…" : "Connecting…";
    } else if (status.state === "open") {
      connectionText.textContent = "Connected";
      const wasOffline = !this.online;
      this.online = true;
      if (status.reconnected && wasOffline) this.catchUp();
    } else if (status.state === "closed") {
      const seconds = Math.max(1, Math.round(status.delayMs / 1000));
      connectionText.textContent = `Offline · retrying in ${seconds} s`;
      this.connectionLost("Connection lost; reconnecting…");
    } else if (status.state === "refused") {
      connectionText.textContent = "Refused";
      this.connectionLost("Connection lost.");
      this.note(`The server refused the live connection (${status.reason}). If this page's `
        + `address (${window.location.origin}) is not in the service's CORS_ORIGINS, add it; `
        + "if chat authentication is on, open the page with ?token=<your JWT>.", "error");
    }
  }

  async catchUp() {
    // Answers that completed while we were away are in the session's history.
    if (this.sessionId) await this.loadHistory();
    this.note("Reconnected.", "info");
  }

  connectionLost(text) {
    if (!this.online) return;
    this.online = false;
    for (const row of this.progress.values()) {
      row.replaceWith(view.notice("The connection dropped before the answer arrived. "
        + "Ask again once the page has reconnected.", "warn"));
    }
    this.progress.clear();
    this.note(text, "warn");
  }

  // -- frames -------------------------------------------------------------------------------

  onFrame(frame) {
    switch (frame.type) {
      case "ack":
        if (frame.trace_id && frame.received !== "follow") this.progressFor(frame.trace_id);
        break;
      case "typing":
        if (frame.trace_id) view.progressLabel(this.progressFor(frame.trace_id), "Thinking…");
        break;
      case "progress":
        if (frame.trace_id) view.progressStep(this.progressFor(frame.trace_id), frame);
        break;
      case "message":
        this.onMessage(frame);
        break;
      case "summary_delta":
      case "summary":
        this.onSummary(frame);
        break;
      case "event":
        this.onEvent(frame.event);
        break;
      case "notification":
        view.appendToLog(this.ui.log, view.notificationMessage({
          text: frame.text, timestamp: frame.timestamp,
        }));
        break;
      case "error":
        this.onError(frame);
        break;
      default:
        break; // welcome, pong: nothing to show
    }
  }

  progressFor(traceId) {
    let row = this.progress.get(traceId);
    if (!row) {
      row = view.progressRow(traceId);
      this.progress.set(traceId, row);
      view.appendToLog(this.ui.log, row);
    }
    return row;
  }

  onMessage(frame) {
    if (typeof frame.session_id === "string" && SESSION_ID.test(frame.session_id)) {
      this.adoptSession(frame.session_id);
    }
    const row = this.progress.get(frame.trace_id);
    if (frame.role === "user") {
      // A turn typed elsewhere (another tab, the CLI) in this session.
      view.appendToLog(this.ui.log, view.userMessage({
        content: frame.content, timestamp: frame.timestamp, note: "elsewhere",
      }));
      return;
    }
    if (!row && typeof frame.in_reply_to === "string") {
      view.appendToLog(this.ui.log, view.userMessage({
        content: frame.in_reply_to, timestamp: frame.timestamp, note: "elsewhere",
      }));
    }
    this.settleOpenCards("No longer current.");
    const message = view.assistantMessage({
      content: frame.content,
      timestamp: frame.timestamp,
      actions: frame.actions,
      planner: frame.planner,
      traceId: frame.trace_id,
    });
    if (frame.pending_confirmation && typeof frame.pending_confirmation === "object") {
      message.appendChild(this.pendingCard(frame.pending_confirmation));
    }
    if (row) {
      row.replaceWith(message);
      this.progress.delete(frame.trace_id);
    } else {
      view.appendToLog(this.ui.log, message);
    }
    this.ui.log.scrollTop = this.ui.log.scrollHeight;
  }

  /** A model's phrasing of an answer, streamed after it (LLM_SUMMARIZE); the answer stays. */
  onSummary(frame) {
    if (!frame.trace_id) return;
    const message = [...this.ui.log.querySelectorAll("article.msg-assistant")]
      .find((article) => article.dataset.traceId === String(frame.trace_id));
    if (!message) return;
    const content = typeof frame.content === "string" ? frame.content : "";
    view.followLog(this.ui.log, () => {
      if (frame.type === "summary_delta") view.summaryPiece(message, content);
      else view.summaryDone(message, frame.complete ? content : "");
    });
  }

  onError(frame) {
    let text = typeof frame.error === "string" ? frame.error : "Something went wrong.";
    if (Number.isFinite(frame.retry_after_s)) {
      text += ` Try again in ${Math.ceil(frame.retry_after_s)} s.`;
    }
    const row = frame.trace_id ? this.progress.get(frame.trace_id) : null;
    const notice = view.notice(text, "error");
    if (row) {
      row.replaceWith(notice);
      this.progress.delete(frame.trace_id);
    } else {
      view.appendToLog(this.ui.log, notice);
    }
  }

  onEvent(event) {
    if (!event || typeof event !== "object") return;
    this.ui.events.prepend(view.eventItem(event));
    while (this.ui.events.children.length > MAX_EVENTS) this.ui.events.lastElementChild.remove();
    if (event.severity === "warning" || event.severity === "critical") {
      this.alerts += 1;
      if (!document.body.classList.contains("panel-open")) this.unseenAlerts += 1;
      this.updateAlertCounts();
    }
  }

  updateAlertCounts() {
    const { alertBadge, alertCount } = this.ui;
    alertBadge.textContent = String(this.unseenAlerts);
    alertBadge.hidden = this.unseenAlerts === 0;
    alertCount.textContent = `${this.alerts} alert${this.alerts === 1 ? "" : "s"}`;
    alertCount.hidden = this.alerts === 0;
  }

  togglePanel() {
    const open = document.body.classList.toggle("panel-open");
    this.ui.eventsToggle.setAttribute("aria-expanded", String(open));
    if (open) {
      this.unseenAlerts = 0;
      this.updateAlertCounts();
    }
  }

  // -- pending actions ----------------------------------------------------------------------

  pendingCard(pending) {
    return view.pendingCard(pending, {
      onConfirm: (card) => this.answerPending(card, "confirm", pending.proposal_id),
      onCancel: (card) => this.answerPending(card, "cancel", pending.proposal_id),
    });
  }

  /** Confirm or cancel exactly the proposal this card shows: a changed one needs a new click. */
  answerPending(card, kind, proposalId) {
    const frame = { type: kind, session_id: this.sessionId };
    if (proposalId) frame.proposal_id = proposalId;
    if (!this.sessionId || !this.socket.send(frame)) {
      this.note("Not connected; try again once the page has reconnected.", "warn");
      return;
    }
    view.settlePending(card, kind === "confirm" ? "You confirmed." : "You cancelled.");
    view.appendToLog(this.ui.log, view.userMessage({
      content: kind === "confirm" ? "Confirm" : "Cancel",
    }), { force: true });
  }

  settleOpenCards(text) {
    this.ui.log.querySelectorAll(".pending:not(.settled)").forEach((card) => {
      view.settlePending(card, text);
    });
  }

  // -- sessions -----------------------------------------------------------------------------

  adoptSession(sessionId) {
    if (sessionId === this.sessionId) return;
    this.sessionId = sessionId;
    storage("local")?.setItem(KEYS.session, sessionId);
    this.showSession();
  }

  showSession() {
    const { session } = this.ui;
    session.textContent = this.sessionId ? this.sessionId.slice(0, 12) : "new";
    session.title = this.sessionId ?? "A session starts with your first message";
  }

  startNewSession() {
    this.sessionId = null;
    storage("local")?.removeItem(KEYS.session);
    this.progress.clear();
    this.ui.log.replaceChildren();
    this.showSession();
    this.socket.reconnectNow(); // stop following the old session's messages
    this.ui.input.focus();
  }

  async loadHistory() {
    const sessionId = this.sessionId;
    let response;
    try {
      response = await fetch(`/api/sessions/${encodeURIComponent(sessionId)}`, {
        headers: this.headers(),
      });
    } catch {
      this.note("Could not load the conversation history (network error).", "warn");
      return;
    }
    if (sessionId !== this.sessionId) return; // the user started a new session meanwhile
    if (response.status === 404) {
      this.sessionId = null;
      storage("local")?.removeItem(KEYS.session);
      this.showSession();
      this.note("The previous conversation is gone; this is a new session.", "info");
      return;
    }
    if (!response.ok) {
      this.note(`Could not load the conversation history (HTTP ${response.status}).`, "warn");
      return;
    }
    const session = await response.json();
    this.renderHistory(session);
  }

  renderHistory(session) {
    const { log } = this.ui;
    log.replaceChildren();
    this.progress.clear();
    let lastAssistant = null;
    for (const entry of Array.isArray(session.history) ? session.history : []) {
      if (entry.role === "user") {
        log.appendChild(view.userMessage({ content: entry.content, timestamp: entry.timestamp }));
        this.remember(String(entry.content ?? ""));
      } else {
        lastAssistant = view.assistantMessage({
          content: entry.content,
          timestamp: entry.timestamp,
          actions: entry.actions,
          traceId: entry.trace_id,
        });
        log.appendChild(lastAssistant);
      }
    }
    if (lastAssistant && session.pending_confirmation) {
      lastAssistant.appendChild(this.pendingCard(session.pending_confirmation));
    }
    log.scrollTop = log.scrollHeight;
  }

  note(text, kind) {
    view.appendToLog(this.ui.log, view.notice(text, kind));
  }

  // -- composer -----------------------------------------------------------------------------

  submit() {
    const { input } = this.ui;
    const text = input.value.trim();
    if (!text) return;
    if (text.length > MAX_MESSAGE_CHARS) {
      this.note(`A message can be at most ${MAX_MESSAGE_CHARS} characters.`, "warn");
      return;
    }
    const frame = { type: "message", content: text };
    if (this.sessionId) frame.session_id = this.sessionId;
    if (!this.socket.send(frame)) {
      this.note("Not connected; your message is still in the box. Send it again once the page "
        + "has reconnected.", "warn");
      return;
    }
    view.appendToLog(this.ui.log, view.userMessage({ content: text }), { force: true });
    this.remember(text);
    input.value = "";
    this.recall = -1;
    this.autosize();
  }

  remember(text) {
    if (!text || this.sent[this.sent.length - 1] === text) return;
    this.sent.push(text);
    if (this.sent.length > MAX_RECALL) this.sent.shift();
  }

  onKey(event) {
    const { input } = this.ui;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.submit();
    } else if (event.key === "ArrowUp" && this.sent.length
      && !input.value.slice(0, input.selectionStart).includes("\n")) {
      event.preventDefault();
      if (this.recall === -1) {
        this.draft = input.value;
        this.recall = this.sent.length - 1;
      } else if (this.recall > 0) {
        this.recall -= 1;
      }
      this.showRecalled(this.sent[this.recall]);
    } else if (event.key === "ArrowDown" && this.recall !== -1
      && !input.value.slice(input.selectionEnd).includes("\n")) {
      event.preventDefault();
      if (this.recall < this.sent.length - 1) {
        this.recall += 1;
        this.showRecalled(this.sent[this.recall]);
      } else {
        this.recall = -1;
        this.showRecalled(this.draft);
      }
    } else if (event.key === "Escape") {
      input.value = "";
      this.recall = -1;
      this.autosize();
    }
  }

  showRecalled(text) {
    const { input } = this.ui;
    input.value = text;
    input.setSelectionRange(text.length, text.length);
    this.autosize();
  }

  autosize() {
    const { input } = this.ui;
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }
}

const page = new ChatPage();
page.start();
