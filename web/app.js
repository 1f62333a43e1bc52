// Wires the page together: connection state, camera, photos, the reading and the slideshow.

import { clearBoxes, drawBoxes } from "./draw.js";
import { cameraSupport, LiveCamera } from "./live.js";
import { PhotoSender } from "./photo.js";
import { Connection, HISTORY_STORE, PROTOCOL } from "./protocol.js";
import { ReadingPanel, Steady } from "./reading.js";
import { Slideshow } from "./slideshow.js";

const IDLE_HINT = "Start the camera or take a photo.";
const TOAST_MS = 6000;
// What the server's errors about a photo mean to its user (docs/protocol.md lists the codes).
const PHOTO_ERRORS = {
  bad_image: "This file isn't a picture. Try a photo in JPEG or PNG.",
  too_many_pixels: "This picture is too big to read. Try a smaller one.",
  too_large: "This file is too big to send. Try a smaller picture.",
  rate_limited: "The server is busy right now. Try again in a moment.",
  internal: "Something went wrong while reading this picture. Try again.",
};

const $ = (selector) => document.querySelector(selector);

const connection = new Connection();
const reading = new ReadingPanel($(".reading"));
const live = new LiveCamera($("[data-role=video]"), connection);
const photos = new PhotoSender(connection);
const slideshow = new Slideshow($(".slideshow"), connection);
const steady = new Steady();
const sentImages = new Map(); // frame id -> Blob, until the server answers for it

const ui = {
  statusPill: $("[data-role=status-pill]"),
  status: $("[data-testid=status]"),
  banner: $("[data-role=banner]"),
  bannerText: $("[data-role=banner-text]"),
  retry: $("[data-role=retry]"),
  cameraToggle: $("[data-role=camera-toggle]"),
  cameraFrame: $("[data-role=camera-frame]"),
  cameraPlaceholder: $("[data-role=camera-placeholder]"),
  cameraProblem: $("[data-testid=camera-problem]"),
  cameraProblemText: $("[data-role=camera-problem-text]"),
  liveOverlay: $("[data-testid=live-overlay]"),
  stats: $("[data-testid=stats]"),
  photoFrame: $("[data-role=photo-frame]"),
  photoPlaceholder: $("[data-role=photo-placeholder]"),
  photoImage: $("[data-role=photo-image]"),
  photoOverlay: $("[data-testid=photo-overlay]"),
  photoStatus: $("[data-testid=photo-status]"),
  photoProblem: $("[data-testid=photo-problem]"),
  readingCard: $(".reading"),
  toast: $("[data-role=toast]"),
  storeNotice: $("[data-testid=store-notice]"),
};

// ---- connection ---------------------------------------------------------------------------------

let everConnected = false;
let countdown = 0;

connection.addEventListener("state", ({ detail }) => {
  ui.status.textContent = detail.state.replace("_", " ");
  ui.statusPill.dataset.state = detail.state;
  const takenOver = detail.state === "taken_over";
  const lost = takenOver || detail.state === "reconnecting" || detail.state === "offline";
  ui.banner.hidden = !lost;
  ui.retry.textContent = takenOver ? "Use it here" : "Retry now";
  clearInterval(countdown);
  // The other tab or window has the session now: this one stops filming until the user takes it back.
  if (takenOver && live.running) stopCamera();
  if (!lost) return;
  // The video goes on while no answer comes: its boxes would belong to an older picture.
  clearBoxes(ui.liveOverlay);
  if (readingFrom === "camera") reading.markOld();
  const retryAt = performance.now() + detail.retryInMs;
  const render = () => {
    ui.bannerText.textContent = bannerText(detail.state, detail.reason, retryAt - performance.now());
  };
  render();
  if (detail.retryInMs > 0) countdown = setInterval(render, 1000);
});

function bannerText(state, reason, retryInMs) {
  if (state === "taken_over") return `${reason} Use it here to take it back.`;
  if (state === "offline") return `${reason} Photos and the camera wait until the server is back.`;
  const when = retryInMs > 0 ? `in ${Math.ceil(retryInMs / 1000)} s` : "now";
  return `${reason} Reconnecting ${when}…`;
}

connection.addEventListener("hello", ({ detail }) => {
  if (detail.protocol !== PROTOCOL) toast("The server was updated: reload this page to keep up with it.");
  else if (everConnected) toast(detail.resumed ? "Reconnected." : "Reconnected to a new session: a fresh slideshow.");
  everConnected = true;
  ui.storeNotice.hidden = true; // a new socket starts on the shared store; the server says so at once otherwise
  connection.control({ type: "history" });
});

// The server's shared history store failed (or is back): the slideshow may not survive a reconnect meanwhile.
connection.addEventListener(HISTORY_STORE, ({ detail }) => {
  ui.storeNotice.textContent = detail.message;
  ui.storeNotice.hidden = detail.shared;
  if (detail.shared) toast(detail.message);
});

connection.addEventListener("result", ({ detail: result }) => {
  const blob = sentImages.get(result.frame);
  sentImages.delete(result.frame);
  slideshow.add(result, blob);
  if (result.kind === "live") liveResult(result);
  else if (photos.answered(result.frame)) photoResult(result);
});

connection.addEventListener("skipped", ({ detail }) => {
  for (const frame of detail.frames) {
    sentImages.delete(frame);
    live.answered(frame, false);
  }
});

connection.addEventListener("error", ({ detail: error }) => {
  sentImages.delete(error.frame);
  if (photos.answered(error.frame)) {
    photoFailed(PHOTO_ERRORS[error.code] ?? `That picture could not be read: ${error.message}.`);
    return;
  }
  if (error.code === "rate_limited") {
    live.rateLimited(error.frame);
    return;
  }
  live.answered(error.frame, false);
  toast(error.message);
});

// ---- live camera --------------------------------------------------------------------------------

live.addEventListener("sent", ({ detail }) => rememberSent(detail));
photos.addEventListener("sent", ({ detail }) => rememberSent(detail));

function rememberSent({ frameId, blob }) {
  sentImages.set(frameId, blob);
  // Answers for frames lost with a dropped socket never come: keep only the recent ones.
  if (sentImages.size > 16) sentImages.delete(sentImages.keys().next().value);
}

function liveResult(result) {
  live.answered(result.frame, true);
  if (!live.running) return;
  drawBoxes(ui.liveOverlay, result);
  // Only a number seen in most of the last few frames reaches the reading: no flicker.
  if (steady.push(result.number) !== undefined) showReading(result, "camera");
}

let readingFrom = null; // "camera" or "photo": what the reading on screen belongs to
let lastPhoto = null; // the result of the photo on the photo tab, shown again when the user comes back to it

function showReading(result, source) {
  readingFrom = source;
  reading.show(result, `from the ${source}`);
}

function clearReading(hint = IDLE_HINT) {
  readingFrom = null;
  reading.clear(hint);
}

// Not `disabled` while the camera starts: a disabled button loses the keyboard's focus.
let cameraStarting = false;
ui.cameraToggle.addEventListener("click", () => {
  if (cameraStarting) return;
  if (live.running) stopCamera();
  else startCamera();
});
$("[data-role=use-photo]").addEventListener("click", () => selectTab($("#tab-photo")));

async function startCamera() {
  cameraStarting = true;
  ui.cameraToggle.setAttribute("aria-disabled", "true");
  ui.cameraProblem.hidden = true;
  try {
    await live.start();
    steady.reset();
    ui.cameraFrame.hidden = false;
    ui.cameraPlaceholder.hidden = true;
    setCameraButton(true);
  } catch (error) {
    live.stop();
    ui.cameraProblemText.textContent = error.message;
    ui.cameraProblem.dataset.code = error.code ?? "failed";
    ui.cameraProblem.hidden = false;
  } finally {
    cameraStarting = false;
    ui.cameraToggle.removeAttribute("aria-disabled");
  }
}

function stopCamera() {
  live.stop();
  clearBoxes(ui.liveOverlay);
  if (readingFrom === "camera") clearReading();
  ui.cameraFrame.hidden = true;
  ui.cameraPlaceholder.hidden = false;
  ui.stats.textContent = "";
  setCameraButton(false);
}

function setCameraButton(on) {
  ui.cameraToggle.textContent = on ? "Stop camera" : "Start camera";
  ui.cameraToggle.setAttribute("aria-pressed", String(on));
}

setInterval(() => {
  if (!live.running) return;
  const latency = live.latencyMs === null ? "–" : `${Math.round(live.latencyMs)} ms`;
  ui.stats.textContent = `${live.fps.toFixed(1)} fps · ${latency} round trip`;
}, 500);

// ---- photos -------------------------------------------------------------------------------------

// Buttons, not labels, open the file pickers: a label does not answer Enter, a button answers Enter and Space.
$("[data-role=take-photo]").addEventListener("click", () => $("[data-testid=photo-input]").click());
$("[data-role=choose-picture]").addEventListener("click", () => $("[data-testid=photo-file]").click());

for (const input of document.querySelectorAll("input[type=file]")) {
  input.addEventListener("change", () => {
    const [file] = input.files;
    input.value = ""; // choosing the same file again must fire "change" again
    if (file) submitPhoto(file);
  });
}

async function submitPhoto(file) {
  ui.photoProblem.hidden = true;
  ui.photoStatus.textContent = "";
  ui.photoFrame.dataset.state = "reading";
  readingFrom = null;
  lastPhoto = null;
  reading.busy("Reading the photo…");
  try {
    const blob = await photos.submit(file);
    showPhoto(blob);
    if (!connection.open) ui.photoStatus.textContent = "Waiting for the server…";
  } catch {
    photoFailed("This file isn't a picture this browser can open. Try a photo in JPEG or PNG.");
  }
}

function photoFailed(message) {
  ui.photoFrame.hidden = true;
  ui.photoPlaceholder.hidden = false;
  ui.photoFrame.dataset.state = "failed";
  ui.photoStatus.textContent = "";
  ui.photoProblem.textContent = message;
  ui.photoProblem.hidden = false;
  clearBoxes(ui.photoOverlay);
  lastPhoto = null;
  clearReading("Try another picture.");
}

// A tiny picture (a crop, a screenshot of one digit) is shown enlarged to this long side, up to 4x.
const SMALL_PICTURE_PX = 240;

function showPhoto(blob) {
  if (ui.photoImage.src) URL.revokeObjectURL(ui.photoImage.src);
  ui.photoImage.style.width = "";
  ui.photoImage.onload = () => {
    const { naturalWidth: w, naturalHeight: h } = ui.photoImage;
    const grow = Math.min(4, SMALL_PICTURE_PX / Math.max(w, h));
    if (grow > 1) ui.photoImage.style.width = `${Math.round(w * grow)}px`;
  };
  ui.photoImage.src = URL.createObjectURL(blob);
  clearBoxes(ui.photoOverlay);
  ui.photoFrame.hidden = false;
  ui.photoPlaceholder.hidden = true;
}

function photoResult(result) {
  drawBoxes(ui.photoOverlay, result);
  ui.photoFrame.dataset.state = "done";
  const size = `${result.width}×${result.height}`;
  ui.photoStatus.textContent = `${size} px · read in ${Math.round(result.timings?.total_ms ?? 0)} ms on the server`;
  lastPhoto = result;
  showReading(result, "photo");
  // On a phone the photo fills the screen: bring its reading into view.
  if (!inView(ui.readingCard)) ui.readingCard.scrollIntoView({ behavior: "smooth", block: "nearest" });
}

function inView(element) {
  const box = element.getBoundingClientRect();
  return box.top >= 0 && box.top + Math.min(box.height, 160) <= innerHeight;
}

// ---- tabs, keyboard, messages -------------------------------------------------------------------

const tabs = [...document.querySelectorAll("[role=tab]")];

function selectTab(tab) {
  for (const other of tabs) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
  }
  // The camera only runs while its tab is shown: no hidden uploads, no drained phone battery.
  if (tab.id !== "tab-camera" && live.running) stopCamera();
  // A reading stays only beside its picture.
  if (tab.id === "tab-photo" && lastPhoto) showReading(lastPhoto, "photo");
  else if (readingFrom && readingFrom !== tab.id.slice(4)) clearReading();
}

for (const tab of tabs) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    event.preventDefault();
    event.stopPropagation();
    const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
    selectTab(next);
    next.focus();
  });
}

document.addEventListener("keydown", (event) => slideshow.handleKey(event));
ui.retry.addEventListener("click", () => connection.connectNow());

let toastTimer = 0;

function toast(message) {
  ui.toast.textContent = message;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    ui.toast.hidden = true;
  }, TOAST_MS);
}

// ---- start --------------------------------------------------------------------------------------

const unsupported = cameraSupport();
if (unsupported) {
  ui.cameraProblemText.textContent = unsupported.message;
  ui.cameraProblem.dataset.code = unsupported.code;
  ui.cameraProblem.hidden = false;
  ui.cameraToggle.disabled = true;
  ui.photoStatus.textContent = unsupported.message;
  selectTab($("#tab-photo"));
} else if (matchMedia("(pointer: coarse)").matches && !matchMedia("(hover: hover)").matches) {
  selectTab($("#tab-photo")); // a phone: one photo is what it is for here
}
connection.start();
