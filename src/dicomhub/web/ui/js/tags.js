// The tags of a DICOM JSON data set (PS3.18 F) as a readable tree: tag, keyword, VR and value,
// sequences as folding items. Keywords and names come from the server's data dictionary
// (GET /api/dictionary), asked once per tag and remembered.

import { get } from "./api.js";
import { fill, h, message } from "./dom.js";

const dictionary = new Map();
const CHUNK = 400;

function collect(dataset, found) {
  for (const [tag, element] of Object.entries(dataset || {})) {
    found.add(tag.toUpperCase());
    if (element.vr === "SQ") for (const item of element.Value || []) collect(item, found);
  }
  return found;
}

async function learn(dataset) {
  const missing = [...collect(dataset, new Set())].filter((tag) => !dictionary.has(tag));
  for (let i = 0; i < missing.length; i += CHUNK) {
    const answer = await get("/api/dictionary", { tags: missing.slice(i, i + CHUNK).join(",") });
    for (const [tag, entry] of Object.entries(answer)) dictionary.set(tag, entry);
  }
}

/** "00100010" as "(0010,0010)". */
export function tagText(tag) {
  return `(${tag.slice(0, 4)},${tag.slice(4)})`;
}

function personNameText(value) {
  if (!value || typeof value !== "object") return String(value ?? "");
  return ["Alphabetic", "Ideographic", "Phonetic"].map((k) => value[k] || "").join("=").replace(/=+$/, "");
}

/** The value of an element as one line of text (and a link for bulk data). */
export function valueOf(element) {
  if (element.BulkDataURI) {
    return h("a", { href: element.BulkDataURI, target: "_blank", rel: "noopener" }, "bulk data (not shown)");
  }
  if (element.InlineBinary !== undefined) {
    const bytes = Math.floor((element.InlineBinary.length * 3) / 4);
    return h("span", { class: "muted" }, `binary, about ${bytes} bytes`);
  }
  const values = element.Value || [];
  if (!values.length) return h("span", { class: "muted" }, "(empty)");
  const text = element.vr === "PN" ? values.map(personNameText) : values.map((v) => (v === null ? "" : String(v)));
  return text.join("\\");
}

function describe(tag) {
  return dictionary.get(tag) || { keyword: "", name: "Unknown tag", private: false };
}

function row(tag, element, entry) {
  return h(
    "div",
    { class: `row${entry.private ? " private" : ""}`, dataset: { tag } },
    h("span", { class: "tag" }, tagText(tag)),
    h("span", { class: "keyword", title: entry.name }, entry.keyword || entry.name),
    h("span", { class: "vr" }, element.vr || ""),
    h("span", { class: "value" }, element.vr === "SQ" ? h("span", { class: "muted" }, `${(element.Value || []).length} item(s)`) : valueOf(element)),
  );
}

function matches(tag, element, entry, needle) {
  if (!needle) return true;
  const text = `${tagText(tag)} ${tag} ${entry.keyword} ${entry.name} ${element.vr} ${element.vr === "SQ" ? "" : JSON.stringify(element.Value || "")}`;
  return text.toLowerCase().includes(needle);
}

/** The tree of a data set; only elements matching the filter (and the sequences holding them). */
function tree(dataset, needle) {
  const nodes = [];
  for (const tag of Object.keys(dataset || {}).sort()) {
    const element = dataset[tag];
    const key = tag.toUpperCase();
    const entry = describe(key);
    const own = matches(key, element, entry, needle);
    if (element.vr !== "SQ") {
      if (own) nodes.push(row(key, element, entry));
      continue;
    }
    const items = (element.Value || []).map((item, index) => {
      const inner = tree(item, own ? "" : needle);
      return inner.length || own ? [h("div", { class: "item-title" }, `Item ${index + 1}`), h("div", { class: "item" }, inner)] : null;
    });
    if (!own && !items.some(Boolean)) continue;
    nodes.push(h("details", { open: Boolean(needle) || items.length <= 3 }, h("summary", {}, row(key, element, entry)), items.filter(Boolean)));
  }
  return nodes;
}

/** A panel showing the tags of a DICOM JSON data set, with a filter. */
export async function tagPanel(dataset) {
  const panel = h("div", { class: "tags" });
  try {
    await learn(dataset);
  } catch (error) {
    return fill(panel, message(`The names of the tags could not be read: ${error.message}`));
  }
  const body = h("div", { class: "tree" });
  const filter = h("input", {
    class: "filter",
    type: "search",
    placeholder: "Filter: keyword, tag or value",
    "aria-label": "Filter the tags",
    oninput: () => fill(body, tree(dataset, filter.value.trim().toLowerCase())),
  });
  fill(body, tree(dataset, ""));
  return fill(panel, filter, body);
}
