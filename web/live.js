// Live mode: the webcam, a frame pump paced by the server's answers, and the frame-rate/latency figures.

import { KIND } from "./protocol.js";

const LONGEST_SIDE = 640;
const JPEG_QUALITY = 0.8;
// Two frames in flight hide the encode time without letting a queue build up on a slow link.
const MAX_IN_FLIGHT = 2;
// A frame unanswered this long was lost with its socket; stop waiting for it.
const LOST_AFTER_MS = 5000;
const RATE_LIMIT_PAUSE_MS = 1000;
// Enough for a steady reading; more would only load a server shared with other users.
const MAX_FPS = 15;

/** Why the camera could not start, in words a user can act on. */
export class CameraError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export function cameraProblem(error) {
  if (error instanceof CameraError) return error;
  switch (error?.name) {
    case "NotAllowedError":
    case "SecurityError":
      return new CameraError(
        "denied",
        "Camera permission was denied. Allow the camera for this site in the browser's settings " +
          (matchMedia("(pointer: coarse)").matches
            ? "(on a phone: the site's settings, from the menu or the icon beside the address)"
            : "(the camera icon in the address bar)") +
          ", then press Start camera again — or use a photo.",
      );
    case "NotFoundError":
    case "OverconstrainedError":
      return new CameraError("missing", "No camera was found on this device. Use a photo instead.");
    case "NotReadableError":
    case "AbortError":
      return new CameraError("busy", "The camera is in use by another app. Close it and try again.");
    default:
      return new CameraError("failed", `The camera could not start (${error?.message || error}).`);
  }
}

export function cameraSupport() {
  if (navigator.mediaDevices?.getUserMedia) return null;
  if (!window.isSecureContext) {
    return new CameraError(
      "insecure",
      "Browsers only allow the camera on secure pages (https://, or localhost). " +
        "Run the server with --certfile and --keyfile and open it over https:// — photos work here as they are.",
    );
  }
  return new CameraError("unsupported", "This browser cannot use a camera. Use a photo instead.");
}

export class LiveCamera extends EventTarget {
  constructor(video, connection) {
    super();
    this.video = video;
    this.connection = connection;
    this.canvas = document.createElement("canvas");
    this.stream = null;
    this.inFlight = new Map(); // frame id -> time sent
    this.capturing = false;
    this.pauseUntil = 0;
    this.lastSentAt = 0;
    this.timer = 0;
    this.watchdog = 0;
    this.answers = []; // times of recent answers, for frames per second
    this.latencyMs = null;
    connection.addEventListener("state", () => {
      this.inFlight.clear();
      this.pump();
    });
  }

  get running() {
    return this.stream !== null;
  }

  async start() {
    const unsupported = cameraSupport();
    if (unsupported) throw unsupported;
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "environment", width: { ideal: 1280 }, height: { ideal: 720 } },
        audio: false,
      });
    } catch (error) {
      throw cameraProblem(error);
    }
    this.video.srcObject = this.stream;
    await this.video.play();
    this.watchdog = setInterval(() => this.forgetLost(), 1000);
    this.pump();
  }

  stop() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.video.srcObject = null;
    clearInterval(this.watchdog);
    clearTimeout(this.timer);
    this.inFlight.clear();
    this.answers = [];
    this.latencyMs = null;
  }

  /** The server answered (result, skipped or error) for a live frame: note it and send the next. */
  answered(frameId, withResult) {
    const sentAt = this.inFlight.get(frameId);
    if (sentAt === undefined) return;
    this.inFlight.delete(frameId);
    if (withResult) {
      const now = performance.now();
      const rtt = now - sentAt;
      this.latencyMs = this.latencyMs === null ? rtt : 0.8 * this.latencyMs + 0.2 * rtt;
      this.answers.push(now);
      this.answers = this.answers.filter((t) => now - t < 2000);
    }
    this.pump();
  }

  rateLimited(frameId) {
    this.pauseUntil = performance.now() + RATE_LIMIT_PAUSE_MS;
    this.answered(frameId, false);
  }

  /** Frames per second answered over the last two seconds. */
  get fps() {
    const now = performance.now();
    return this.answers.filter((t) => now - t < 2000).length / 2;
  }

  forgetLost() {
    const now = performance.now();
    for (const [id, sentAt] of this.inFlight) if (now - sentAt > LOST_AFTER_MS) this.inFlight.delete(id);
    this.pump();
  }

  /** Send the next frame if the camera runs, the socket is open and there is room in flight. */
  pump() {
    clearTimeout(this.timer);
    if (!this.running || this.capturing || !this.connection.open || this.inFlight.size >= MAX_IN_FLIGHT) return;
    const fps = Math.min(MAX_FPS, this.connection.limits?.max_fps || MAX_FPS);
    const wait = Math.max(this.pauseUntil, this.lastSentAt + 1000 / fps) - performance.now();
    if (wait > 0) {
      this.timer = setTimeout(() => this.pump(), wait);
      return;
    }
    this.sendFrame();
  }

  async sendFrame() {
    this.capturing = true;
    let blob = null;
    try {
      blob = await this.capture();
      if (blob && this.running) {
        const frameId = this.connection.sendImage(KIND.live, await blob.arrayBuffer());
        if (frameId !== null) {
          this.lastSentAt = performance.now();
          this.inFlight.set(frameId, this.lastSentAt);
          this.dispatchEvent(new CustomEvent("sent", { detail: { frameId, blob } }));
        }
      }
    } finally {
      this.capturing = false;
    }
    // No picture yet (the video is still starting): look again shortly rather than spin.
    if (blob) this.pump();
    else this.timer = setTimeout(() => this.pump(), 100);
  }

  capture() {
    const { videoWidth: w, videoHeight: h } = this.video;
    if (!w || !h) return Promise.resolve(null);
    const scale = Math.min(1, LONGEST_SIDE / Math.max(w, h));
    this.canvas.width = Math.round(w * scale);
    this.canvas.height = Math.round(h * scale);
    this.canvas.getContext("2d").drawImage(this.video, 0, 0, this.canvas.width, this.canvas.height);
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  }
}
