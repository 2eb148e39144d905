// Small DOM helpers and the formatting of DICOM values for people.

/** An element: h("a", {href: "#/x", class: "y", onclick: f}, "text", child, ...). */
export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      node.className = value;
    } else if (name === "dataset") {
      Object.assign(node.dataset, value);
    } else if (name in node && typeof value !== "string") {
      node[name] = value;
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the children of a node. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** A message box: kind is "error", "ok" or "info". */
export function message(text, kind = "error") {
  return h("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

/** A definition list of [label, value] pairs; pairs without a value are left out. */
export function factList(pairs, className = "facts") {
  const shown = pairs.filter(([, value]) => value !== "" && value !== null && value !== undefined);
  return h("dl", { class: className }, shown.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]));
}

/** A status badge coloured by its meaning. */
export function badge(text) {
  const value = String(text || "").toUpperCase();
  const kinds = {
    ok: ["COMPLETED", "DONE", "COMMITTED", "REPORTED", "OK", "SUCCESS"],
    warn: ["IN PROGRESS", "PENDING", "PRINTING", "REQUESTED", "CHECKED"],
    bad: ["DISCONTINUED", "CANCELLED", "FAILED", "FAILURE", "UNDELIVERABLE"],
    info: ["SCHEDULED"],
  };
  const kind = Object.keys(kinds).find((k) => kinds[k].includes(value)) || "";
  return h("span", { class: `badge ${kind}` }, text || "—");
}

/** "20240131" as "2024-01-31". */
export function dicomDate(value) {
  const text = String(value || "");
  return /^\d{8}$/.test(text) ? `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6)}` : text;
}

/** "093015.123" as "09:30". */
export function dicomTime(value) {
  const text = String(value || "").replace(/:/g, "");
  return /^\d{4}/.test(text) ? `${text.slice(0, 2)}:${text.slice(2, 4)}` : text;
}

/** "DOE^JANE^^DR" as "DOE, JANE, DR". */
export function personName(value) {
  const text = typeof value === "object" && value ? value.Alphabetic || "" : String(value || "");
  return text.split("^").filter(Boolean).join(", ");
}

/** An ISO 8601 moment in local time, "2026-01-31 14:05:09". */
export function moment(iso) {
  if (!iso) return "";
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  const pad = (n) => String(n).padStart(2, "0");
  return `${when.getFullYear()}-${pad(when.getMonth() + 1)}-${pad(when.getDate())} ` +
    `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}`;
}

/**
 * A table. columns: [{title, value(row) -> node|text, sort: keyword, class}];
 * options: {sort: "-StudyDate", onSort(keyword), onRow(row), empty: "text"}.
 */
export function table(columns, rows, options = {}) {
  const current = (options.sort || "").split(",")[0];
  const head = columns.map((column) => {
    if (!column.sort || !options.onSort) return h("th", { class: column.class }, column.title);
    const arrow = current === column.sort ? "▲" : current === `-${column.sort}` ? "▼" : "";
    return h(
      "th",
      {
        class: `sortable ${column.class || ""}`,
        title: "Sort by this column",
        dataset: { sort: column.sort },
        onclick: () => options.onSort(current === column.sort ? `-${column.sort}` : column.sort),
      },
      column.title,
      arrow && h("span", { class: "arrow" }, arrow),
    );
  });
  const body = rows.length
    ? rows.map((row) =>
      h(
        "tr",
        {
          class: options.onRow ? "clickable" : "",
          onclick: options.onRow ? (event) => {
            if (!event.target.closest("button, a, input, select")) options.onRow(row);
          } : null,
        },
        columns.map((column) => h("td", { class: column.class }, column.value(row))),
      ))
    : [h("tr", {}, h("td", { class: "empty", colspan: columns.length }, options.empty || "Nothing to show."))];
  return h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, head)), h("tbody", {}, body)));
}

/** "Previous / Next" for a page of {offset, limit, has_more, total?}. */
export function pager(page, go) {
  const shown = page.items.length;
  const first = shown ? page.offset + 1 : 0;
  const total = page.total !== undefined ? ` of ${page.total}` : "";
  return h(
    "div",
    { class: "pager" },
    h("span", {}, shown ? `${first}–${page.offset + shown}${total}` : `0${total}`),
    h("button", { disabled: page.offset <= 0, onclick: () => go(Math.max(0, page.offset - page.limit)) }, "‹ Previous"),
    h("button", { disabled: !page.has_more, onclick: () => go(page.offset + page.limit) }, "Next ›"),
  );
}

let flashed = "";

/** A sentence for the next page shown (what an action did), kept in memory, not in the address. */
export function flash(text) {
  flashed = text;
}

/** The sentence of the last action, once. */
export function takeFlash() {
  const text = flashed;
  flashed = "";
  return text;
}

/** The parameters of the current hash ("#/studies?PatientName=X" -> {PatientName: "X"}). */
export function hashParams() {
  const query = location.hash.split("?")[1] || "";
  return Object.fromEntries(new URLSearchParams(query));
}

/** Go to a page with parameters (empty ones left out). */
export function go(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const target = `#${path}${query.toString() ? `?${query}` : ""}`;
  if (location.hash === target) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = target;
}
