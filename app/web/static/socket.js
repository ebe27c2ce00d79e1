// The WebSocket to /ws, reconnected with exponential backoff and jitter when it drops.
//
// States reported to `onState`: "connecting", "open", "closed" (retrying in `delayMs`) and
// "refused": the server closed with 1008, or it answers HTTP but turned the handshake down
// (browsers report that only as 1006, so `isServerUp` tells the two apart). A wrong origin or a
// missing token will not fix itself, so a refused socket waits for the user instead of retrying.

const FIRST_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const PING_EVERY_MS = 25000; // keeps idle proxies from closing a quiet socket

export class ChatSocket {
  constructor({ url, onFrame, onState, isServerUp }) {
    this.url = url;
    this.isServerUp = isServerUp;
    this.onFrame = onFrame;
    this.onState = onState;
    this.socket = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.stopped = false;
    this.everOpened = false;
  }

  get isOpen() {
    return this.socket !== null && this.socket.readyState === WebSocket.OPEN;
  }

  connect() {
    this.stopped = false;
    clearTimeout(this.retryTimer);
    this.onState({ state: "connecting", attempt: this.attempt });
    let socket;
    try {
      socket = new WebSocket(this.url());
    } catch (error) {
      this.scheduleRetry(String(error));
      return;
    }
    this.socket = socket;
    let pingTimer = null;
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.attempt = 0;
      pingTimer = setInterval(() => this.send({ type: "ping" }), PING_EVERY_MS);
      this.onState({ state: "open", reconnected });
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // the server only sends JSON; anything else is not ours to show
      }
      if (frame && typeof frame === "object") this.onFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      clearInterval(pingTimer);
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      if (event.code === 1008) {
        this.onState({ state: "refused", reason: event.reason || "not allowed" });
        return;
      }
      if (!opened) {
        this.handshakeFailed();
        return;
      }
      this.scheduleRetry(event.reason);
    });
  }

  async handshakeFailed() {
    const up = this.isServerUp ? await this.isServerUp() : false;
    if (this.stopped || this.socket !== null) return; // reconnectNow() took over meanwhile
    if (up) {
      this.onState({ state: "refused", reason: "the server turned the WebSocket down" });
    } else {
      this.scheduleRetry("server unreachable");
    }
  }

  scheduleRetry(reason) {
    const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const delayMs = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    this.attempt += 1;
    this.onState({ state: "closed", delayMs, reason, attempt: this.attempt });
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }

  /** Send a frame now; false when the socket is not open (the caller keeps the user's text). */
  send(frame) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /** Close and reconnect at once (the "reconnect now" button, a new session). */
  reconnectNow() {
    this.attempt = 0;
    const old = this.socket;
    this.socket = null;
    if (old) old.close(1000, "reconnecting");
    this.connect();
  }
}
