// The reading panel: the number large, its confidence, each digit's top three as bars, and a polite
// announcement for screen readers whenever the reading changes.

const MAX_DIGIT_BARS = 6;

export class ReadingPanel {
  constructor(root) {
    this.number = root.querySelector("[data-testid=reading]");
    this.confidence = root.querySelector("[data-role=confidence]");
    this.hint = root.querySelector("[data-role=hint]");
    this.bars = root.querySelector("[data-role=bars]");
    this.source = root.querySelector("[data-role=source]");
    this.announcer = document.querySelector("[data-role=announcer]");
  }

  /** Show a result (or null for "nothing yet"); `source` says where it came from (camera, photo). */
  show(result, source, idleHint) {
    const number = result?.number ?? "";
    const changed = number !== this.number.textContent;
    if (changed) this.number.textContent = number;
    this.number.dataset.confidence = number ? String(confidenceOf(result)) : "";
    this.confidence.textContent = number ? `${Math.round(confidenceOf(result) * 100)}% confident` : "";
    this.hint.textContent = number ? "" : hintFor(result, idleHint);
    this.source.textContent = source;
    this.renderBars(result?.digits ?? []);
    if (changed) this.announcer.textContent = number ? `Reading: ${spaced(number)}` : "No digits";
  }

  renderBars(digits) {
    const groups = digits.slice(0, MAX_DIGIT_BARS).map((digit, position) => {
      const group = document.createElement("li");
      group.className = "digit-bars";
      group.setAttribute("aria-label", `Digit ${position + 1}: ${describe(digit.top3)}`);
      for (const [value, probability] of digit.top3) group.append(bar(value, probability));
      return group;
    });
    this.bars.replaceChildren(...groups);
  }
}

/** A number's confidence is its least certain digit's. */
function confidenceOf(result) {
  return Math.min(...result.digits.map((d) => d.confidence));
}

function hintFor(result, idleHint) {
  if (!result) return idleHint;
  return result.reason ? `No digits: ${result.reason}.` : "No digits found.";
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
