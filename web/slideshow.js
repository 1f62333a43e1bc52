// The slideshow: this session's frames and photos, replayed from the server's history.
//
// The strip of thumbnails grows as results arrive, from the images this page sent; entries the page
// never saw (a resumed session after a reload) show their reading until the server sends their image.

import { drawBoxes } from "./draw.js";

const SWIPE_PX = 40;

export class Slideshow {
  constructor(root, connection) {
    this.root = root;
    this.connection = connection;
    this.figure = root.querySelector("[data-testid=slide]");
    this.image = root.querySelector("[data-role=slide-image]");
    this.overlay = root.querySelector("[data-role=slide-overlay]");
    this.caption = root.querySelector("[data-role=slide-caption]");
    this.strip = root.querySelector("[data-role=strip]");
    this.placeholder = root.querySelector("[data-role=slide-placeholder]");
    this.hint = root.querySelector("[data-role=slide-hint]");
    this.legend = root.querySelector("[data-role=legend]");
    this.playButton = root.querySelector("[data-action=play]");
    this.speed = root.querySelector("[data-role=speed]");
    this.entries = new Map(); // seq -> {seq, kind, number, url, thumb}
    this.current = null;
    this.playing = false;
    this.running = 0; // realtime replays asked for whose replay_end has not come

    root.querySelector("[data-action=prev]").addEventListener("click", () => this.step(-1));
    root.querySelector("[data-action=next]").addEventListener("click", () => this.step(1));
    this.playButton.addEventListener("click", () => this.toggle());
    this.speed.addEventListener("change", () => this.speedChanged());
    this.strip.addEventListener("click", (event) => {
      const thumb = event.target.closest("[data-seq]");
      if (thumb) this.go(Number(thumb.dataset.seq));
    });
    // The strip is one Tab stop (the current thumbnail); arrow keys, Home and End move inside it.
    this.strip.addEventListener("keydown", (event) => {
      const seqs = [...this.entries.keys()];
      const target = { Home: seqs[0], End: seqs.at(-1) }[event.key];
      if (target === undefined) return;
      event.preventDefault();
      this.go(target);
    });
    this.listenForSwipes(root.querySelector("[data-role=stage]"));

    connection.addEventListener("slide", (e) => this.showSlide(e.detail.slide, e.detail.blob));
    connection.addEventListener("replay_end", () => this.replayEnded());
    connection.addEventListener("history", (e) => this.sync(e.detail.frames));
    connection.addEventListener("history_dropped", (e) => {
      e.detail.seqs.forEach((seq) => this.forget(seq));
      this.refreshControls(); // the count shown, too
    });
    connection.addEventListener("state", (e) => {
      if (e.detail.state === "connected") return;
      this.running = 0; // a replay ends with its socket
      this.setPlaying(false);
    });
  }

  /** A result arrived for an image this page sent: add it to the strip, when the history kept it. */
  add(result, blob) {
    if (result.seq === null) return; // a live frame reading what the last one kept read
    this.remember({ seq: result.seq, kind: result.kind, number: result.number }, blob);
    this.refreshControls();
  }

  /** The server's list of what it holds (after connecting or resuming): the strip follows it. */
  sync(frames) {
    const kept = new Set(frames.map((f) => f.seq));
    for (const seq of [...this.entries.keys()]) if (!kept.has(seq)) this.forget(seq);
    for (const frame of frames) if (!this.entries.has(frame.seq)) this.remember(frame, null);
    this.reorder();
    this.refreshControls();
  }

  remember(frame, blob) {
    const url = blob ? URL.createObjectURL(blob) : null;
    const entry = { seq: frame.seq, kind: frame.kind, number: frame.number ?? "", url, thumb: thumbnail(frame, url) };
    this.entries.set(frame.seq, entry);
    this.strip.append(entry.thumb);
    this.renumber();
    return entry;
  }

  forget(seq) {
    const entry = this.entries.get(seq);
    if (!entry) return;
    if (entry.url) URL.revokeObjectURL(entry.url);
    entry.thumb.remove();
    this.entries.delete(seq);
    this.renumber();
  }

  /** One numbering everywhere: a slide's place in the strip, from 1, in its thumbnail and in the caption. */
  renumber() {
    const count = this.entries.size;
    const focus = this.focusSeq();
    let place = 0;
    for (const entry of this.entries.values()) {
      place += 1;
      const what = entry.kind === "photo" ? "photo" : "camera frame";
      entry.thumb.setAttribute("aria-label", `${place} of ${count}, ${what}: ${entry.number || "no digit"}`);
      entry.thumb.tabIndex = entry.seq === focus ? 0 : -1;
    }
  }

  /** The thumbnail that takes the strip's one Tab stop: the current slide's, else the newest. */
  focusSeq() {
    return this.entries.has(this.current) ? this.current : [...this.entries.keys()].at(-1);
  }

  placeOf(seq) {
    return [...this.entries.keys()].indexOf(seq) + 1;
  }

  reorder() {
    const sorted = [...this.entries.values()].sort((a, b) => a.seq - b.seq);
    this.entries = new Map(sorted.map((e) => [e.seq, e]));
    this.strip.replaceChildren(...sorted.map((e) => e.thumb));
    this.renumber();
  }

  showSlide(slide, blob) {
    let entry = this.entries.get(slide.seq);
    if (!entry) {
      entry = this.remember({ ...slide, number: slide.result.number }, blob);
      this.reorder();
    }
    if (!entry.url) {
      entry.url = URL.createObjectURL(blob);
      setThumbImage(entry.thumb, entry.url);
    }
    this.current = slide.seq;
    this.image.src = entry.url;
    this.image.alt = slide.result.number ? `Slide showing ${slide.result.number}` : "Slide with no digits";
    drawBoxes(this.overlay, slide.result);
    const number = slide.result.number ?? "";
    Object.assign(this.figure.dataset, { seq: String(slide.seq), number, kind: slide.kind });
    this.figure.hidden = false;
    this.placeholder.hidden = true;
    const what = slide.kind === "photo" ? "photo" : "camera frame";
    const reading = number ? `read ${number}` : "no digit found";
    this.caption.textContent = `${this.placeOf(slide.seq)} of ${this.entries.size} · ${what} · ${reading}`;
    const focused = this.strip.contains(document.activeElement);
    for (const thumb of this.strip.children) thumb.setAttribute("aria-current", String(thumb === entry.thumb));
    this.renumber();
    if (focused) entry.thumb.focus({ preventScroll: true });
    // Centre the thumbnail in the strip without scrolling the page away from what the user watches.
    const thumb = entry.thumb;
    this.strip.scrollTo({ left: thumb.offsetLeft - (this.strip.clientWidth - thumb.offsetWidth) / 2 });
    this.refreshControls();
  }

  /** Ask for one slide (paused browsing). */
  go(seq) {
    if (this.playing) this.stopReplay();
    this.connection.control({ type: "replay", mode: "step", seq });
  }

  step(direction) {
    const seqs = [...this.entries.keys()];
    if (!seqs.length) return;
    const at = seqs.indexOf(this.current);
    const next = at === -1 ? (direction > 0 ? 0 : seqs.length - 1) : at + direction;
    if (next >= 0 && next < seqs.length) this.go(seqs[next]);
  }

  toggle() {
    if (this.playing) this.stopReplay();
    else this.play();
  }

  play() {
    const seqs = [...this.entries.keys()];
    if (!seqs.length) return;
    // Go on after the current slide; from the start when at the end or nowhere yet.
    const at = seqs.indexOf(this.current);
    const from = at === -1 || at === seqs.length - 1 ? seqs[0] : seqs[at + 1];
    const speed = Number(this.speed.value);
    if (this.connection.control({ type: "replay", mode: "realtime", speed, from })) {
      this.running += 1;
      this.setPlaying(true);
    }
  }

  stopReplay() {
    this.connection.control({ type: "replay_stop" });
    this.setPlaying(false);
  }

  /** A new speed while playing: a new replay from the next slide at that speed replaces the running one (the
   * server stops it), and the button stays on Pause throughout. */
  speedChanged() {
    if (this.playing) this.play();
  }

  /** Every realtime replay the server starts ends with one `replay_end`, a replaced or stopped one too: only the
   * last one's end stops the Play button (an older replay's end must not stop the one the user just started). */
  replayEnded() {
    this.running = Math.max(0, this.running - 1);
    if (this.running > 0) return;
    this.setPlaying(false);
  }

  setPlaying(playing) {
    this.playing = playing;
    this.playButton.setAttribute("aria-pressed", String(playing));
    this.playButton.querySelector("[data-role=label]").textContent = playing ? "Pause" : "Play";
    this.playButton.setAttribute("aria-label", playing ? "Pause slideshow" : "Play slideshow");
  }

  refreshControls() {
    const none = this.entries.size === 0;
    for (const button of this.root.querySelectorAll("[data-action]")) button.disabled = none;
    this.legend.hidden = none;
    if (this.current === null || none) {
      this.figure.hidden = true;
      this.placeholder.hidden = false;
      this.hint.textContent = none
        ? "Frames and photos you send will appear here, ready to replay."
        : `${this.entries.size} ${this.entries.size === 1 ? "image" : "images"} saved. ` +
          "Press Play, pick a thumbnail, or use ← → and space.";
    }
  }

  /** Keyboard: left/right browse, space plays or pauses (unless a control has the focus). */
  handleKey(event) {
    const target = event.target;
    if (target.closest?.("input, select, textarea")) return;
    if (event.key === "ArrowLeft") this.step(-1);
    else if (event.key === "ArrowRight") this.step(1);
    else if (event.key === " " && !target.closest?.("button, a, [role=tab]")) this.toggle();
    else return;
    event.preventDefault();
  }

  listenForSwipes(stage) {
    let startX = null;
    stage.addEventListener("pointerdown", (e) => {
      startX = e.clientX;
    });
    stage.addEventListener("pointerup", (e) => {
      if (startX === null) return;
      const dx = e.clientX - startX;
      startX = null;
      if (Math.abs(dx) >= SWIPE_PX) this.step(dx < 0 ? 1 : -1);
    });
    stage.addEventListener("pointercancel", () => {
      startX = null;
    });
  }
}

function thumbnail(frame, url) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "thumb";
  button.dataset.seq = String(frame.seq);
  button.dataset.kind = frame.kind;
  const number = frame.number ?? "";
  button.dataset.number = number;
  const label = document.createElement("span");
  label.className = "thumb-number";
  label.textContent = number || "–";
  button.append(label);
  if (url) setThumbImage(button, url);
  return button;
}

function setThumbImage(button, url) {
  const img = document.createElement("img");
  img.src = url;
  img.alt = "";
  img.decoding = "async";
  button.prepend(img);
}
