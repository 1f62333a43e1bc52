// The page's side of docs/protocol.md (version 1): message framing, the session token and reconnection.
// Nothing else in the page knows the wire format.

export const PROTOCOL = 1;
export const KIND = { live: 1, photo: 2, slide: 3 };
export const HEADER_BYTES = 5;
// Where the history is kept: {type, shared, message}; shared false while the server keeps it on one worker only.
export const HISTORY_STORE = "history_store";
const TOKEN_KEY = "digits.session";
// A refused connection costs the server nothing: retry every second at most, so the page is back within about a
// second of the server answering. A busy server (1013) is given longer.
const BACKOFF_MS = [250, 500, 1000];
const BUSY_BACKOFF_MS = [2000, 4000, 8000];
const CLOSE_BUSY = 1013;
// A phone that loses its network may never see the socket close: ping, and give up on silence.
const PING_EVERY_MS = 15000;
const SILENCE_MS = 40000;
// After 4001 another tab or window holds this session (duplicated tabs share sessionStorage): retrying by
// itself would take it back, and the two would steal it from each other forever. Only the user reconnects.
const CLOSE_TAKEN_OVER = 4001;
// What the other close codes of docs/protocol.md mean to a user; the page retries after each of them.
const CLOSE_REASONS = {
  1008: "The server refused this connection.",
  1009: "The last image was too large for the server.",
  1013: "The server is busy.",
  1001: "The server is restarting.",
  1011: "The server hit an error on its side.",
};

/** A binary image message: kind, frame id (uint32 big-endian), then the file bytes. */
export function encodeImage(kind, frameId, bytes) {
  const out = new Uint8Array(HEADER_BYTES + bytes.byteLength);
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, frameId);
  out.set(new Uint8Array(bytes), HEADER_BYTES);
  return out.buffer;
}

/** A slide image from the server: {seq, bytes}, or null when the message is something else. */
export function decodeSlideImage(buffer) {
  if (buffer.byteLength < HEADER_BYTES) return null;
  const view = new DataView(buffer);
  if (view.getUint8(0) !== KIND.slide) return null;
  return { seq: view.getUint32(1), bytes: buffer.slice(HEADER_BYTES) };
}

export function socketUrl(token) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = token ? `?session=${encodeURIComponent(token)}` : "";
  return `${scheme}://${location.host}/ws${query}`;
}

/**
 * One WebSocket that keeps itself connected and resumes its session.
 *
 * Events (CustomEvent, payload in `detail`):
 *   "state"  {state: "connecting"|"connected"|"reconnecting"|"offline"|"taken_over", retryInMs, reason}
 *            ("taken_over": another tab or window resumed this session; no retry until connectNow())
 *   one event per server message type ("hello", "result", "skipped", "error", "history",
 *   "history_dropped", "history_store", "replay_end", "pong"), detail = the parsed message;
 *   "slide"  {slide, blob}: a slide message joined with the image that follows it.
 */
export class Connection extends EventTarget {
  constructor() {
    super();
    this.state = "offline";
    this.limits = null;
    this.socket = null;
    this.attempt = 0;
    this.retryTimer = 0;
    this.pingTimer = 0;
    this.lastHeard = 0;
    this.nextFrameId = 1;
    this.pendingSlide = null;
    this.reason = "";
    window.addEventListener("online", () => {
      if (this.state !== "taken_over") this.connectNow();
    });
    window.addEventListener("offline", () => {
      if (this.state !== "taken_over") this.setState("offline", 0, "This device is offline.");
    });
  }

  get open() {
    return this.state === "connected";
  }

  start() {
    this.connect();
  }

  /** Connect at once (the user pressed "Retry now" or "Use it here", or the device came back online). */
  connectNow() {
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    if (!this.socket) this.connect();
  }

  /** Send an image; answers the frame id it carries, or null when not connected. */
  sendImage(kind, bytes) {
    if (!this.open) return null;
    const frameId = this.nextFrameId;
    this.nextFrameId = (this.nextFrameId + 1) % 2 ** 32;
    this.socket.send(encodeImage(kind, frameId, bytes));
    return frameId;
  }

  /** Send a control message (replay, replay_stop, history, ping); false when not connected. */
  control(message) {
    if (!this.open) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  connect() {
    const first = this.attempt === 0 && !this.lastHeard;
    this.setState(first ? "connecting" : "reconnecting", 0, this.reason ?? "");
    const socket = new WebSocket(socketUrl(sessionStorage.getItem(TOKEN_KEY)));
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => this.receive(event.data));
    socket.addEventListener("close", (event) => this.closed(socket, event.code));
    this.socket = socket;
  }

  receive(data) {
    this.lastHeard = performance.now();
    if (typeof data !== "string") {
      this.receiveBinary(data);
      return;
    }
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.type === "hello") this.greeted(message);
    if (message.type === "slide") {
      this.pendingSlide = message;
      return;
    }
    this.emit(message.type, message);
  }

  receiveBinary(buffer) {
    const image = decodeSlideImage(buffer);
    const slide = this.pendingSlide;
    if (!image || !slide || slide.seq !== image.seq) return;
    this.pendingSlide = null;
    this.emit("slide", { slide, blob: new Blob([image.bytes]) });
  }

  greeted(hello) {
    sessionStorage.setItem(TOKEN_KEY, hello.session);
    this.limits = hello.limits;
    this.attempt = 0;
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.keepAlive(), PING_EVERY_MS);
    this.setState("connected", 0, "");
  }

  keepAlive() {
    if (performance.now() - this.lastHeard > SILENCE_MS) {
      this.socket?.close();
      this.closed(this.socket, 1006);
      return;
    }
    this.control({ type: "ping" });
  }

  closed(socket, code) {
    if (socket !== this.socket) return; // an old socket we already gave up on
    this.socket = null;
    this.pendingSlide = null;
    clearInterval(this.pingTimer);
    if (code === CLOSE_TAKEN_OVER) {
      this.setState("taken_over", 0, "This session is now open in another tab or window.");
      return;
    }
    const reason = CLOSE_REASONS[code] ?? "Connection lost.";
    if (!navigator.onLine) {
      this.setState("offline", 0, "This device is offline.");
      return;
    }
    const steps = code === CLOSE_BUSY ? BUSY_BACKOFF_MS : BACKOFF_MS;
    const delay = steps[Math.min(this.attempt, steps.length - 1)] * (0.8 + 0.4 * Math.random());
    this.attempt += 1;
    this.setState("reconnecting", delay, reason);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setState(state, retryInMs, reason) {
    this.state = state;
    this.reason = reason;
    this.emit("state", { state, retryInMs, reason });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
