// Pixel work for the viewer: what a header says about its pixels, native frames from WADO-RS
// turned into modality values (Rescale Slope/Intercept), and the VOI window (PS3.3 C.11.2.1.2)
// applied to them, as the server's own rendering does.

/** The first value of an attribute of a DICOM JSON data set (tag "00280010"). */
export function first(dataset, tag) {
  const element = dataset && dataset[tag];
  const values = element && element.Value;
  return values && values.length ? values[0] : undefined;
}

/** All values of an attribute (an empty list when absent). */
export function all(dataset, tag) {
  const element = dataset && dataset[tag];
  return (element && element.Value) || [];
}

/** What the header says about the pixels, and whether the browser can window them itself. */
export function describe(header) {
  const number = (tag, fallback) => {
    const value = Number(first(header, tag));
    return Number.isFinite(value) ? value : fallback;
  };
  const centers = all(header, "00281050").map(Number);
  const widths = all(header, "00281051").map(Number);
  const explanations = all(header, "00281055");
  const windows = [];
  for (let i = 0; i < Math.min(centers.length, widths.length); i += 1) {
    if (Number.isFinite(centers[i]) && Number.isFinite(widths[i]) && widths[i] >= 1) {
      windows.push({ center: centers[i], width: widths[i], name: explanations[i] || `Header ${i + 1}` });
    }
  }
  const info = {
    rows: number("00280010", 0),
    columns: number("00280011", 0),
    samples: number("00280002", 1),
    bitsAllocated: number("00280100", 16),
    bitsStored: number("00280101", number("00280100", 16)),
    signed: number("00280103", 0) === 1,
    photometric: String(first(header, "00280004") || "MONOCHROME2").trim(),
    slope: number("00281053", 1),
    intercept: number("00281052", 0),
    frames: Math.max(1, number("00280008", 1)),
    modality: String(first(header, "00080060") || ""),
    voiFunction: String(first(header, "00281056") || "LINEAR").trim().toLowerCase().replace("_", "-"),
    windows,
  };
  info.grey = info.samples === 1 && /^MONOCHROME[12]$/.test(info.photometric);
  // Windowed here: grey pixels of 8, 16 or 32 bits with a linear modality transformation.
  info.native = info.grey && [8, 16, 32].includes(info.bitsAllocated) &&
    !("00283000" in header) && !("7FE00008" in header) && !("7FE00009" in header) &&
    info.rows > 0 && info.columns > 0;
  return info;
}

/** The first part of a multipart/related answer, as bytes. */
export function firstPart(buffer, contentType) {
  const match = /boundary="?([^";]+)"?/i.exec(contentType || "");
  const bytes = new Uint8Array(buffer);
  if (!match) return bytes;
  const boundary = new TextEncoder().encode(`--${match[1]}`);
  const find = (needle, from) => {
    outer: for (let i = from; i <= bytes.length - needle.length; i += 1) {
      for (let j = 0; j < needle.length; j += 1) if (bytes[i + j] !== needle[j]) continue outer;
      return i;
    }
    return -1;
  };
  const start = find(boundary, 0);
  const headersEnd = find(new Uint8Array([13, 10, 13, 10]), start);
  if (start < 0 || headersEnd < 0) throw new Error("the frame answer is not multipart");
  const bodyStart = headersEnd + 4;
  const end = find(boundary, bodyStart);
  return bytes.subarray(bodyStart, end < 0 ? bytes.length : end - 2);
}

/** Modality values (Float32Array) of a native little-endian frame, with their range. */
export function modalityValues(bytes, info) {
  const count = info.rows * info.columns;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = info.bitsAllocated / 8;
  if (bytes.byteLength < count * size) throw new Error("the frame holds fewer pixels than its header says");
  const stored = Math.min(info.bitsStored, info.bitsAllocated);
  const mask = stored >= 32 ? 0xffffffff : (2 ** stored) - 1;
  const signBit = 2 ** (stored - 1);
  const values = new Float32Array(count);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < count; i += 1) {
    let v;
    if (size === 1) v = view.getUint8(i);
    else if (size === 2) v = view.getUint16(i * 2, true);
    else v = view.getUint32(i * 4, true);
    v = stored >= 32 ? v : v & mask;
    if (info.signed && v >= signBit) v -= 2 * signBit;
    const value = v * info.slope + info.intercept;
    values[i] = value;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  return { values, min, max };
}

/** Grey levels 0..255 of values through a window {center, width} (and the VOI LUT Function). */
export function paint(target, values, info, window) {
  const { center: c, width: w } = window;
  const data = target.data;
  const invert = info.photometric === "MONOCHROME1";
  const fn = info.voiFunction;
  for (let i = 0; i < values.length; i += 1) {
    const x = values[i];
    let y;
    if (fn === "linear-exact") y = (x - c) / w + 0.5;
    else if (fn === "sigmoid") y = 1 / (1 + Math.exp(-4 * (x - c) / w));
    else if (w > 1) y = (x - (c - 0.5)) / (w - 1) + 0.5;
    else y = x >= c ? 1 : 0;
    y = y < 0 ? 0 : y > 1 ? 1 : y;
    if (invert) y = 1 - y;
    const grey = Math.round(y * 255);
    const o = i * 4;
    data[o] = grey;
    data[o + 1] = grey;
    data[o + 2] = grey;
    data[o + 3] = 255;
  }
}
