// The image viewer: one canvas showing a stack (every frame of every image of a series), scrolled
// with the mouse wheel, the arrow keys or the slider, and windowed by dragging, by presets, by
// the header's values or by typing them.
//
// Grey images are fetched as native frames (WADO-RS frames, application/octet-stream) and
// windowed here, so dragging is immediate; other images (colour, palette, bit-packed) are
// rendered by the server (/api/instances/{uid}/preview), with the window asked for when grey.

import { raw } from "./api.js";
import { fill, h } from "./dom.js";
import { firstPart, modalityValues, paint } from "./pixels.js";

const CACHE = 96;
const CT_PRESETS = [
  { name: "Brain", center: 40, width: 80 },
  { name: "Soft tissue", center: 40, width: 400 },
  { name: "Lung", center: -600, width: 1500 },
  { name: "Bone", center: 400, width: 1800 },
  { name: "Liver", center: 60, width: 160 },
  { name: "Mediastinum", center: 50, width: 350 },
];
const FRAME_TYPE = 'multipart/related; type="application/octet-stream"';

export class Viewer {
  constructor(onImage) {
    this.onImage = onImage;
    this.stack = [];
    this.index = 0;
    this.window = null;
    this.cache = new Map();
    this.canvas = h("canvas", { width: 1, height: 1, role: "img", "aria-label": "The image shown" });
    this.context = this.canvas.getContext("2d", { willReadFrequently: true });
    this.overlays = {
      tl: h("div", { class: "overlay tl" }),
      tr: h("div", { class: "overlay tr" }),
      bl: h("div", { class: "overlay bl" }),
      br: h("div", { class: "overlay br" }),
    };
    this.status = h("div", { class: "status", role: "status" });
    this.stage = h("div", { class: "stage", tabindex: 0 }, this.canvas, Object.values(this.overlays), this.status);
    this.slider = h("input", { type: "range", min: 1, max: 1, value: 1, "aria-label": "Image number", oninput: () => this.show(Number(this.slider.value) - 1) });
    this.presets = h("select", { "aria-label": "Window preset", onchange: () => this.preset() });
    this.center = h("input", { type: "number", step: "any", "aria-label": "Window center", onchange: () => this.typed() });
    this.width = h("input", { type: "number", step: "any", min: 1, "aria-label": "Window width", onchange: () => this.typed() });
    this.position = h("span", { class: "position" });
    this.element = h(
      "div",
      { class: "viewer" },
      this.stage,
      h(
        "div",
        { class: "controls" },
        h("button", { type: "button", title: "Previous image (↑)", onclick: () => this.step(-1) }, "‹"),
        this.slider,
        h("button", { type: "button", title: "Next image (↓)", onclick: () => this.step(1) }, "›"),
        this.position,
        h("label", {}, "Window", this.presets),
        h("label", {}, "C", this.center),
        h("label", {}, "W", this.width),
        h("button", { type: "button", onclick: () => this.reset() }, "Reset"),
        h("span", { class: "hint" }, "Wheel or ↑↓: images · drag: window"),
      ),
    );
    this.bind();
  }

  bind() {
    this.stage.addEventListener("wheel", (event) => {
      event.preventDefault();
      this.step(event.deltaY > 0 ? 1 : -1);
    }, { passive: false });
    this.stage.addEventListener("pointerdown", (event) => {
      if (event.button !== 0 || !this.window || !this.current?.windowable) return;
      this.stage.setPointerCapture(event.pointerId);
      this.drag = { x: event.clientX, y: event.clientY, ...this.window };
    });
    this.stage.addEventListener("pointermove", (event) => {
      if (!this.drag) return;
      const scale = Math.max(this.current.range || this.drag.width, 1) / 400;
      this.setWindow({
        center: this.drag.center + (event.clientY - this.drag.y) * scale,
        width: Math.max(1, this.drag.width + (event.clientX - this.drag.x) * scale),
        name: "Custom",
      });
    });
    const stop = () => { this.drag = null; };
    this.stage.addEventListener("pointerup", stop);
    this.stage.addEventListener("pointercancel", stop);
    this.keys = (event) => {
      if (event.target.closest && event.target.closest("input, select, textarea")) return;
      const moves = { ArrowDown: 1, ArrowRight: 1, PageDown: 10, ArrowUp: -1, ArrowLeft: -1, PageUp: -10 };
      if (event.key in moves) this.step(moves[event.key]);
      else if (event.key === "Home") this.show(0);
      else if (event.key === "End") this.show(this.stack.length - 1);
      else return;
      event.preventDefault();
    };
    document.addEventListener("keydown", this.keys);
  }

  /** Remove the listeners this viewer put on the document. */
  destroy() {
    document.removeEventListener("keydown", this.keys);
  }

  /** Show a stack: [{study, series, instance, frame, frames, info, number}]. */
  load(stack, texts) {
    this.stack = stack;
    this.texts = texts;
    this.window = null;
    this.slider.max = Math.max(1, stack.length);
    this.slider.disabled = stack.length < 2;
    return this.show(0);
  }

  step(delta) {
    if (this.stack.length) this.show(Math.min(this.stack.length - 1, Math.max(0, this.index + delta)));
  }

  async show(index) {
    if (!this.stack.length) {
      this.message("This series has no image.");
      return;
    }
    this.index = index;
    this.slider.value = index + 1;
    const item = this.stack[index];
    const ticket = (this.ticket = Symbol("show"));
    this.updateTexts(item);
    if (this.onImage) this.onImage(item);
    if (!item.info.rows) {
      this.current = null;
      this.clear();
      this.message("This object has no image (a report or other document): its tags are below.");
      return;
    }
    try {
      const image = await this.image(item, this.window);
      if (ticket !== this.ticket) return;
      this.current = image;
      if (!this.window && image.windowable) this.window = this.initialWindow(item, image);
      this.message("");
      this.draw();
      this.fillPresets(item, image);
      this.prefetch(index);
    } catch (error) {
      if (ticket !== this.ticket) return;
      this.current = null;
      this.clear();
      this.message(`This image cannot be shown: ${error.message}`);
    }
  }

  prefetch(index) {
    for (const next of [index + 1, index + 2, index - 1]) {
      const item = this.stack[next];
      if (item && item.info.native) this.image(item, this.window).catch(() => {});
    }
  }

  key(item, window) {
    const suffix = item.info.native || !item.info.grey || !window ? "" : `@${window.center},${window.width}`;
    return `${item.instance}#${item.frame}${suffix}`;
  }

  /** The pixels of an item: {native, values, min, max, range} or {bitmap}; cached. */
  image(item, window) {
    const key = this.key(item, window);
    if (!this.cache.has(key)) {
      const loading = item.info.native ? this.nativeFrame(item) : this.rendered(item, window);
      loading.catch(() => this.cache.delete(key));
      this.cache.set(key, loading);
      while (this.cache.size > CACHE) this.cache.delete(this.cache.keys().next().value);
    }
    return this.cache.get(key);
  }

  async nativeFrame(item) {
    const path = `/dicom-web/studies/${item.study}/series/${item.series}/instances/${item.instance}/frames/${item.frame}`;
    const response = await raw("GET", path, { accept: FRAME_TYPE });
    const bytes = firstPart(await response.arrayBuffer(), response.headers.get("content-type"));
    const { values, min, max } = modalityValues(bytes, item.info);
    return { native: true, windowable: true, values, min, max, range: max - min, item };
  }

  async rendered(item, window) {
    const params = new URLSearchParams({ frame: item.frame, format: "png" });
    if (window && item.info.grey) params.set("window", `${window.center},${window.width}`);
    const response = await raw("GET", `/api/instances/${item.instance}/preview?${params}`, { accept: "image/png" });
    const bitmap = await createImageBitmap(await response.blob());
    return { native: false, windowable: item.info.grey, bitmap, item };
  }

  initialWindow(item, image) {
    const header = item.info.windows[0];
    if (header) return { ...header };
    if (image.native) {
      // the whole range, as the server renders an image without a window
      return { center: (image.min + image.max) / 2 + 0.5, width: image.max - image.min + 1, name: "Full range" };
    }
    return null;
  }

  fillPresets(item, image) {
    const options = [...item.info.windows];
    if (image.native) options.push({ name: "Full range", center: (image.min + image.max) / 2 + 0.5, width: image.max - image.min + 1 });
    if (item.info.modality === "CT") options.push(...CT_PRESETS);
    this.options = options;
    const chosen = this.window ? options.findIndex((o) => o.name === this.window.name && o.center === this.window.center && o.width === this.window.width) : -1;
    fill(
      this.presets,
      h("option", { value: "", selected: chosen < 0 }, this.window ? "Custom" : "—"),
      options.map((o, i) => h("option", { value: i, selected: i === chosen }, `${o.name} (${round(o.center)}/${round(o.width)})`)),
    );
    this.presets.disabled = !image.windowable;
    this.center.disabled = !image.windowable;
    this.width.disabled = !image.windowable;
  }

  preset() {
    const option = this.options && this.options[Number(this.presets.value)];
    if (this.presets.value !== "" && option) this.setWindow({ ...option });
  }

  typed() {
    const center = Number(this.center.value);
    const width = Number(this.width.value);
    if (Number.isFinite(center) && Number.isFinite(width) && width >= 1) this.setWindow({ center, width, name: "Custom" });
  }

  reset() {
    const item = this.stack[this.index];
    if (!item || !this.current) return;
    this.window = this.initialWindow(item, this.current);
    this.show(this.index);
  }

  setWindow(window) {
    if (!this.current || !this.current.windowable) return;
    this.window = window;
    if (this.current.native) {
      if (!this.frameRequested) {
        this.frameRequested = true;
        requestAnimationFrame(() => {
          this.frameRequested = false;
          this.draw();
        });
      }
    } else {
      clearTimeout(this.rerender);
      this.rerender = setTimeout(() => this.show(this.index), 150);
    }
    this.updateWindowTexts();
  }

  draw() {
    const image = this.current;
    if (!image) return;
    if (image.native) {
      const { rows, columns } = image.item.info;
      if (this.canvas.width !== columns || this.canvas.height !== rows) {
        this.canvas.width = columns;
        this.canvas.height = rows;
      }
      if (!this.pixels || this.pixels.width !== columns || this.pixels.height !== rows) {
        this.pixels = this.context.createImageData(columns, rows);
      }
      paint(this.pixels, image.values, image.item.info, this.window);
      this.context.putImageData(this.pixels, 0, 0);
    } else {
      this.canvas.width = image.bitmap.width;
      this.canvas.height = image.bitmap.height;
      this.context.drawImage(image.bitmap, 0, 0);
    }
    this.canvas.dataset.instance = image.item.instance;
    this.canvas.dataset.frame = image.item.frame;
    this.canvas.dataset.rendered = image.native ? "browser" : "server";
    this.updateWindowTexts();
  }

  clear() {
    this.canvas.width = 1;
    this.canvas.height = 1;
    delete this.canvas.dataset.instance;
  }

  message(text) {
    this.status.textContent = text;
  }

  updateTexts(item) {
    const texts = this.texts || {};
    fill(this.overlays.tl, texts.patient || "", h("br"), texts.patientId || "");
    fill(this.overlays.tr, texts.study || "", h("br"), item.seriesText || "");
    const frames = item.frames > 1 ? ` · frame ${item.frame}/${item.frames}` : "";
    fill(this.overlays.bl, `Image ${item.number ?? "?"}${frames}`, h("br"), `${this.index + 1} / ${this.stack.length}`);
    this.position.textContent = `${this.index + 1} / ${this.stack.length}`;
  }

  updateWindowTexts() {
    const w = this.window;
    this.overlays.br.textContent = w ? `C ${round(w.center)}  W ${round(w.width)}` : "";
    if (w && document.activeElement !== this.center) this.center.value = round(w.center);
    if (w && document.activeElement !== this.width) this.width.value = round(w.width);
  }
}

function round(value) {
  return Math.round(value * 100) / 100;
}
