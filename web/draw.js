// Boxes and digits over an image. The overlay canvas takes the result's pixel size and CSS stretches
// it over the picture, so boxes stay in the image's own coordinates whatever size it is shown at.

const BOX = "#2dd4bf";
const HALO = "rgba(4, 47, 46, 0.85)";

/** Draw a result's digit boxes on `canvas`; `canvas.dataset.boxes` tells how many were drawn. */
export function drawBoxes(canvas, result) {
  const digits = result?.digits ?? [];
  if (result?.width && result?.height) {
    canvas.width = result.width;
    canvas.height = result.height;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const unit = Math.max(2, Math.round(Math.max(canvas.width, canvas.height) / 200));
  ctx.textBaseline = "bottom";
  for (const digit of digits) {
    const [x, y, w, h] = digit.box;
    ctx.lineWidth = unit * 2;
    ctx.strokeStyle = HALO;
    ctx.strokeRect(x, y, w, h);
    ctx.lineWidth = unit;
    ctx.strokeStyle = BOX;
    ctx.strokeRect(x, y, w, h);
    label(ctx, String(digit.value), digit.box, unit);
  }
  canvas.dataset.boxes = String(digits.length);
}

export function clearBoxes(canvas) {
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  canvas.dataset.boxes = "0";
}

/** The digit's value on a tab above its box (below it at the top edge), sized to the box: a small digit's label
 * must not cover its neighbours' ink, so that a misread can be checked against the picture. */
function label(ctx, text, [x, y, w, h], unit) {
  const height = Math.max(8, Math.min(unit * 11, Math.round(h * 0.6)));
  const pad = Math.round(height / 5);
  ctx.font = `600 ${Math.round(height * 0.8)}px system-ui, sans-serif`;
  const width = ctx.measureText(text).width + pad * 2;
  const top = y - height - unit >= 0 ? y - height - unit : y + h + unit;
  ctx.fillStyle = BOX;
  ctx.fillRect(x, top, width, height);
  ctx.fillStyle = HALO;
  ctx.fillText(text, x + pad, top + height - pad / 2);
}
