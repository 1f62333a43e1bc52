// The reading panel: the number large and on one line, its confidence, each digit's top three as bars, and a
// polite announcement for screen readers whenever the reading changes.
//
// Its states (`data-state` on the panel): `idle` (nothing read yet), `busy` (a photo is being read), `number`,
// `none` (the picture was read and holds no digit, with the reason). A reading whose picture is no longer on
// screen is cleared; one whose source went quiet (a lost connection) is marked old (`data-old`).

// A digit the engine is less sure of than this is marked unsure: worth checking against the picture.
export const UNSURE_BELOW = 0.9;

export class ReadingPanel {
  constructor(root) {
    this.root = root;
    this.number = root.querySelector("[data-testid=reading]");
    this.verdict = root.querySelector("[data-role=verdict]");
    this.confidence = root.querySelector("[data-role=confidence]");
    this.hint = root.querySelector("[data-role=hint]");
    this.age = root.querySelector("[data-role=age]");
    this.bars = root.querySelector("[data-role=bars]");
    this.source = root.querySelector("[data-role=source]");
    this.announcer = document.querySelector("[data-role=announcer]");
    this.shownAt = 0;
    this.ageTimer = 0;
    new ResizeObserver(() => this.fit()).observe(this.root);
    this.clear();
  }

  /** Show a result; `source` says where it came from ("from the camera", "from the photo"). */
  show(result, source) {
    const number = result.number ?? "";
    const changed = number !== this.number.textContent || this.root.dataset.state !== (number ? "number" : "none");
    this.setOld(false);
    this.source.textContent = source;
    this.shownAt = performance.now();
    if (number) this.showNumber(result);
    else this.showNone(result);
    this.renderBars(result.digits ?? []);
    if (changed) this.announcer.textContent = number ? `Reading: ${spaced(number)}` : "No digit found";
  }

  showNumber(result) {
    this.root.dataset.state = "number";
    // Rebuilt only when it changed: the same live number frame after frame is left alone (no flicker).
    const shape = result.digits.map((d) => `${d.value}${d.confidence < UNSURE_BELOW ? "?" : ""}`).join("");
    if (this.number.dataset.shape !== shape) this.number.replaceChildren(...result.digits.map(digitSpan));
    this.number.dataset.shape = shape;
    const confidence = Math.min(...result.digits.map((d) => d.confidence));
    const unsure = result.digits.filter((d) => d.confidence < UNSURE_BELOW).length;
    this.root.dataset.unsure = String(unsure > 0);
    this.confidence.textContent = `${Math.round(confidence * 100)}% confident`;
    this.hint.textContent = unsure
      ? `Unsure of ${unsure === 1 ? "the underlined digit" : `the ${unsure} underlined digits`}: check them against the picture.`
      : "";
    this.verdict.textContent = "";
    this.fit();
  }

  showNone(result) {
    this.root.dataset.state = "none";
    this.root.dataset.unsure = "false";
    this.clearNumber();
    this.verdict.textContent = "No digit found";
    this.confidence.textContent = "";
    this.hint.textContent = plainReason(result.reason);
  }

  /** Nothing to show: the picture the reading belonged to is gone. */
  clear(hint = "Start the camera or take a photo.") {
    this.setState("idle", hint);
  }

  clearNumber() {
    this.number.replaceChildren();
    this.number.dataset.shape = "";
  }

  /** A photo is on its way to the server. */
  busy(hint) {
    this.setState("busy", hint);
  }

  setState(state, hint) {
    this.setOld(false);
    this.root.dataset.state = state;
    this.root.dataset.unsure = "false";
    this.clearNumber();
    this.verdict.textContent = "";
    this.confidence.textContent = "";
    this.source.textContent = "";
    this.hint.textContent = hint;
    this.bars.replaceChildren();
  }

  /** The source went quiet (a lost connection): the reading stays, dimmed, with its age. */
  markOld() {
    if (this.root.dataset.state !== "number" && this.root.dataset.state !== "none") return;
    this.setOld(true);
  }

  setOld(old) {
    this.root.dataset.old = String(old);
    clearInterval(this.ageTimer);
    this.age.textContent = "";
    if (!old) return;
    const render = () => {
      const seconds = Math.max(1, Math.round((performance.now() - this.shownAt) / 1000));
      this.age.textContent = `Last reading, ${seconds} s ago`;
    };
    render();
    this.ageTimer = setInterval(render, 1000);
  }

  /** The number on one line: its type shrinks until it fits the panel. */
  fit() {
    this.number.style.fontSize = "";
    const room = this.number.clientWidth;
    const needed = this.number.scrollWidth;
    if (room > 0 && needed > room) {
      const size = parseFloat(getComputedStyle(this.number).fontSize);
      this.number.style.fontSize = `${Math.floor((size * room) / needed)}px`;
    }
  }

  renderBars(digits) {
    const groups = digits.map((digit, position) => {
      const group = document.createElement("li");
      group.className = "digit-bars";
      group.dataset.unsure = String(digit.confidence < UNSURE_BELOW);
      const heading = document.createElement("span");
      heading.className = "digit-place";
      heading.textContent = ordinal(position + 1);
      group.setAttribute("aria-label", `${ordinal(position + 1)} digit: ${describe(digit.top3)}`);
      group.append(heading);
      for (const [value, probability] of digit.top3) group.append(bar(value, probability));
      return group;
    });
    this.bars.replaceChildren(...groups);
  }
}

function digitSpan(digit) {
  const span = document.createElement("span");
  span.textContent = String(digit.value);
  if (digit.confidence < UNSURE_BELOW) {
    span.className = "unsure";
    span.title = `Unsure: ${Math.round(digit.confidence * 100)}%`;
  }
  return span;
}

/** The engine's reasons, in the words a person would use. */
function plainReason(reason) {
  if (!reason) return "Nothing in the picture looks like a digit.";
  if (reason.startsWith("no ink")) return "The picture looks empty: no writing was found.";
  if (reason.startsWith("no digit-like") || reason.startsWith("no shape"))
    return "There are marks, but none looks like a digit. Try writing bigger and darker.";
  const guess = /best guess (\d), (\d+%)/.exec(reason);
  if (guess) return `It might be a ${guess[1]} (${guess[2]} sure), too unsure to say. Try a clearer, closer picture.`;
  return `${reason[0].toUpperCase()}${reason.slice(1)}.`;
}

function ordinal(n) {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  return `${n}${teen ? "th" : ({ 1: "st", 2: "nd", 3: "rd" })[n % 10] ?? "th"}`;
}

function bar(value, probability) {
  const row = document.createElement("div");
  row.className = "bar";
  const name = document.createElement("span");
  name.className = "bar-digit";
  name.textContent = String(value);
  const track = document.createElement("span");
  track.className = "bar-track";
  const fill = document.createElement("span");
  fill.className = "bar-fill";
  fill.style.width = `${Math.max(1, probability * 100).toFixed(1)}%`;
  track.append(fill);
  const percent = document.createElement("span");
  percent.className = "bar-percent";
  percent.textContent = probability < 0.001 ? "<0.1%" : `${(probability * 100).toFixed(probability < 0.1 ? 1 : 0)}%`;
  row.append(name, track, percent);
  row.setAttribute("aria-hidden", "true");
  return row;
}

function describe(top3) {
  return top3.map(([value, p]) => `${value} ${Math.round(p * 100)}%`).join(", ");
}

function spaced(number) {
  return number.split("").join(" ");
}

/** Keeps a live reading steady: a number is shown once it is the answer in `need` of the last `span` frames. */
export class Steady {
  constructor(need = 3, span = 5) {
    this.need = need;
    this.span = span;
    this.recent = [];
  }

  /** Add a frame's number (null for none); answers the steady value, or undefined while undecided. */
  push(number) {
    this.recent.push(number ?? "");
    if (this.recent.length > this.span) this.recent.shift();
    const votes = this.recent.filter((n) => n === (number ?? "")).length;
    return votes >= this.need ? number ?? "" : undefined;
  }

  reset() {
    this.recent = [];
  }
}
