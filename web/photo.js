// Photo mode: a picture from the phone's camera app or the disk, sent once, answered once.
//
// Every picture is first decoded here, with its EXIF orientation applied, whatever its format: one that is
// small, in a format the server reads and within its pixel limit goes as it is (the server applies EXIF
// orientation, and nothing is lost to re-encoding); any other (large, HEIC, a 9000x9000 PNG) is scaled to at
// most 2048 px and sent as JPEG: a 12-megapixel phone photo then costs ~0.5 MB instead of 4-8 MB, and digits
// stay far larger than the 28 px the classifier needs. Boxes always refer to the image that was sent, which is
// what is shown. A file the browser cannot decode is no picture: `photoBlob` rejects it.

import { HEADER_BYTES, KIND } from "./protocol.js";

const SERVER_FORMATS = ["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp"];
const SEND_AS_IS_BYTES = 2 * 2 ** 20;
const LONGEST_SIDE = 2048;
const JPEG_QUALITY = 0.9;

/** The bytes to send for `file`, as a Blob (the file itself, or a scaled JPEG). */
export async function photoBlob(file, limits = {}) {
  const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  try {
    const maxBytes = Math.min(SEND_AS_IS_BYTES, (limits.max_message_bytes ?? Infinity) - HEADER_BYTES);
    const pixels = bitmap.width * bitmap.height;
    if (SERVER_FORMATS.includes(file.type) && file.size <= maxBytes && pixels <= (limits.max_pixels ?? Infinity)) {
      return file;
    }
    const scale = Math.min(1, LONGEST_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return await new Promise((resolve, reject) =>
      canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("could not encode"))), "image/jpeg", JPEG_QUALITY),
    );
  } finally {
    bitmap.close();
  }
}

/**
 * Sends photos and remembers the one awaiting an answer, so a photo sent just before the connection
 * dropped is sent again once it is back. Events: "sent" {frameId, blob}.
 */
export class PhotoSender extends EventTarget {
  constructor(connection) {
    super();
    this.connection = connection;
    this.waiting = null; // {blob, frameId}
    connection.addEventListener("state", (event) => {
      if (event.detail.state === "connected" && this.waiting) this.send(this.waiting.blob);
    });
  }

  async submit(file) {
    const blob = await photoBlob(file, this.connection.limits ?? {});
    this.waiting = { blob, frameId: null };
    if (this.connection.open) await this.send(blob);
    return blob;
  }

  async send(blob) {
    const frameId = this.connection.sendImage(KIND.photo, await blob.arrayBuffer());
    if (frameId === null) return;
    this.waiting = { blob, frameId };
    this.dispatchEvent(new CustomEvent("sent", { detail: { frameId, blob } }));
  }

  /** The server answered frame `frameId`: answers true when it was the photo we were waiting for. */
  answered(frameId) {
    // An error about no frame (null) is not about a photo still waiting to be sent (frame id null too).
    if (frameId === null || this.waiting?.frameId !== frameId) return false;
    this.waiting = null;
    return true;
  }
}
