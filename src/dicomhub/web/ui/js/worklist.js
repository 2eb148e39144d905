// Modality Worklist: the scheduled procedure steps with the status they reached (from MPPS);
// schedule, edit and cancel them (GET/POST /api/worklist, GET/PUT /api/worklist/{id},
// POST /api/worklist/{id}/cancel).

import { get, post, put } from "./api.js";
import { badge, dicomDate, dicomTime, factList, fill, go, h, hashParams, message, moment, pager, personName, table } from "./dom.js";
import { first } from "./pixels.js";
import { tagPanel } from "./tags.js";

const STATUSES = ["SCHEDULED", "IN PROGRESS", "COMPLETED", "DISCONTINUED", "CANCELLED"];
const FINAL = ["COMPLETED", "DISCONTINUED", "CANCELLED"];
const STEP = "00400100";

/** The form's fields: name (of the REST API's plain form), label, tag, VR, and where it lives. */
const FIELDS = [
  { name: "patient_name", label: "Patient name (FAMILY^GIVEN)", tag: "00100010", vr: "PN", required: true },
  { name: "patient_id", label: "Patient ID", tag: "00100020", vr: "LO", required: true },
  { name: "birth_date", label: "Birth date", tag: "00100030", vr: "DA", type: "date" },
  { name: "sex", label: "Sex", tag: "00100040", vr: "CS", options: ["", "F", "M", "O"] },
  { name: "accession", label: "Accession number", tag: "00080050", vr: "SH" },
  { name: "procedure", label: "Requested procedure", tag: "00321060", vr: "LO" },
  { name: "requested_procedure_id", label: "Requested procedure ID", tag: "00401001", vr: "SH" },
  { name: "referring_physician", label: "Referring physician", tag: "00080090", vr: "PN" },
  { name: "modality", label: "Modality", tag: "00080060", vr: "CS", step: true, required: true, list: ["CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF", "OT"] },
  { name: "station_ae", label: "Station AE title", tag: "00400001", vr: "AE", step: true },
  { name: "station_name", label: "Station name", tag: "00400010", vr: "SH", step: true },
  { name: "date", label: "Start date", tag: "00400002", vr: "DA", step: true, type: "date", required: true },
  { name: "time", label: "Start time", tag: "00400003", vr: "TM", step: true, type: "time" },
  { name: "step_description", label: "Step description", tag: "00400007", vr: "LO", step: true },
  { name: "step_id", label: "Step ID", tag: "00400009", vr: "SH", step: true },
  { name: "performing_physician", label: "Performing physician", tag: "00400006", vr: "PN", step: true },
];

function stepOf(attributes) {
  return first(attributes, STEP) || {};
}

/** The form value of a field from an item's DICOM JSON attributes. */
function fieldValue(attributes, field) {
  const value = first(field.step ? stepOf(attributes) : attributes, field.tag);
  if (value === undefined || value === null) return "";
  if (field.vr === "PN") return value.Alphabetic || "";
  if (field.type === "date") return dicomDate(value);
  if (field.type === "time") return dicomTime(value);
  return String(value);
}

/** DICOM text of a form value ("2026-12-01" -> "20261201", "09:30" -> "0930"). */
function dicomText(field, text) {
  const value = String(text || "").trim();
  if (field.type === "date" || field.type === "time") return value.replace(/[-:]/g, "");
  if (["CS", "AE"].includes(field.vr)) return field.vr === "CS" ? value.toUpperCase() : value;
  return value;
}

/** The item's attributes with the form's values put in (everything else kept as it was). */
export function edited(attributes, values) {
  const dataset = structuredClone(attributes);
  const step = structuredClone(stepOf(attributes));
  for (const field of FIELDS) {
    const target = field.step ? step : dataset;
    const text = dicomText(field, values[field.name]);
    if (text === dicomText(field, fieldValue(attributes, field))) continue; // unchanged: kept as is
    const element = { vr: field.vr };
    if (text) element.Value = [field.vr === "PN" ? { Alphabetic: text } : text];
    target[field.tag] = element;
  }
  dataset[STEP] = { vr: "SQ", Value: [step] };
  const texts = FIELDS.map((f) => String(values[f.name] || ""));
  // the values are Unicode here: a changed non-ASCII value needs UTF-8
  if (texts.some((t) => /[^\x00-\x7f]/.test(t))) dataset["00080005"] = { vr: "CS", Value: ["ISO_IR 192"] };
  return dataset;
}

/** The REST API's plain fields of the form's values (a new item). */
function plainFields(values) {
  const body = {};
  for (const field of FIELDS) {
    if (!["date", "time"].includes(field.name)) body[field.name] = dicomText(field, values[field.name]);
  }
  const date = dicomText(FIELDS.find((f) => f.name === "date"), values.date);
  const time = dicomText(FIELDS.find((f) => f.name === "time"), values.time);
  body.start = `${date} ${time}`.trim();
  return body;
}

function input(field, value) {
  if (field.options) {
    return h("select", { name: field.name }, field.options.map((o) => h("option", { value: o, selected: o === value }, o || "—")));
  }
  return h("input", {
    name: field.name,
    value,
    type: field.type || "text",
    required: field.required,
    list: field.list ? `${field.name}-list` : undefined,
  });
}

async function cancel(item, after) {
  if (!confirm(`Cancel the worklist item of ${personName(item.patient_name)} (${item.procedure || item.modality})? Modalities will no longer see it.`)) return;
  await post(`/api/worklist/${item.id}/cancel`);
  after();
}

function actions(item, session, after, report) {
  if (!session.admin || FINAL.includes(item.status)) return "";
  return h(
    "div",
    { class: "actions admin-only" },
    h("a", { class: "button small", href: `#/worklist/${item.id}/edit` }, "Edit"),
    h("button", { class: "small danger", type: "button", onclick: () => cancel(item, after).catch((e) => report(e)) }, "Cancel"),
  );
}

async function list(main, session) {
  const params = hashParams();
  const offset = Number(params.offset || 0);
  const problem = h("div");
  const results = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const report = (error) => fill(problem, message(error.message));
  fill(
    main,
    h("h1", {}, "Worklist"),
    h(
      "div",
      { class: "toolbar" },
      h("label", { class: "inline" }, "Status", h("select", { onchange: (e) => go("/worklist", { status: e.target.value }) },
        h("option", { value: "" }, "All"), STATUSES.map((s) => h("option", { value: s, selected: params.status === s }, s)))),
      h("span", { class: "grow" }),
      session.admin ? h("a", { class: "button primary admin-only", href: "#/worklist/new" }, "New worklist item") : "",
    ),
    problem,
    results,
  );
  const page = await get("/api/worklist", { status: params.status, offset, limit: 50 });
  const reload = () => go("/worklist", params);
  const columns = [
    { title: "Status", value: (i) => badge(i.status) },
    { title: "Scheduled", value: (i) => `${dicomDate(i.start_date)} ${dicomTime(i.start_time)}` },
    { title: "Patient", value: (i) => h("a", { href: `#/worklist/${i.id}` }, personName(i.patient_name) || "(no name)") },
    { title: "Patient ID", value: (i) => i.patient_id },
    { title: "Modality", value: (i) => i.modality },
    { title: "Station", value: (i) => i.station_ae_title },
    { title: "Procedure", value: (i) => i.procedure },
    { title: "Accession", value: (i) => i.accession_number },
    { title: "", value: (i) => actions(i, session, reload, report) },
  ];
  fill(results,
    table(columns, page.items, { onRow: (i) => go(`/worklist/${i.id}`), empty: "No worklist item." }),
    pager(page, (next) => go("/worklist", { ...params, offset: next })));
}

async function detail(main, id, session) {
  const item = await get(`/api/worklist/${encodeURIComponent(id)}`);
  const problem = h("div");
  const facts = [
    ["Status", badge(item.status)],
    ["Patient", `${personName(item.patient_name)} (${item.patient_id})`],
    ["Scheduled", `${dicomDate(item.start_date)} ${dicomTime(item.start_time)}`],
    ["Modality / station", `${item.modality || "—"} / ${item.station_ae_title || "any"}`],
    ["Procedure", item.procedure],
    ["Accession", item.accession_number],
    ["Step ID", item.step_id],
    ["Study Instance UID", h("code", {}, item.study_instance_uid)],
    ["Source", item.source + (item.order_key ? ` (order ${item.order_key})` : "")],
    ["Created / changed", `${moment(item.created_at)} / ${moment(item.updated_at)}`],
  ];
  const mpps = item.mpps.length
    ? table([
      { title: "MPPS", value: (m) => h("a", { href: `#/mpps/${m.id}` }, m.sop_instance_uid) },
      { title: "Status", value: (m) => badge(m.status) },
      { title: "Updated", value: (m) => moment(m.updated_at) },
    ], item.mpps)
    : h("p", { class: "muted" }, "No modality has reported this step yet (no MPPS).");
  fill(
    main,
    h("div", { class: "toolbar" }, h("a", { href: "#/worklist" }, "‹ Worklist"), h("span", { class: "grow" }),
      actions(item, session, () => go(`/worklist/${item.id}`), (e) => fill(problem, message(e.message)))),
    h("h1", {}, `Worklist item ${item.id}`),
    problem,
    h("section", { class: "card" }, factList(facts)),
    h("h2", {}, "Performed procedure steps"),
    mpps,
    h("h2", {}, "Attributes"),
    h("section", { class: "card" }, await tagPanel(item.attributes)),
  );
}

async function form(main, id, session) {
  const title = id ? `Change worklist item ${id}` : "New worklist item";
  if (!session.admin) {
    fill(main, h("h1", {}, title), message(`You are signed in as ${session.name} with read-only access: scheduling and changing worklist items needs an admin user.`));
    return;
  }
  const item = id ? await get(`/api/worklist/${encodeURIComponent(id)}`) : null;
  if (item && FINAL.includes(item.status)) {
    fill(main, h("h1", {}, title), message(`This item is ${item.status}: it cannot be changed any more.`));
    return;
  }
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  const defaults = {
    date: `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`,
    time: `${pad(now.getHours())}:${pad(now.getMinutes())}`,
  };
  const problem = h("div");
  const value = (field) => (item ? fieldValue(item.attributes, field) : defaults[field.name] || "");
  const group = (legend, fields) => h("fieldset", {}, h("legend", {}, legend), fields.map((f) =>
    h("label", {}, f.label + (f.required ? " *" : ""), input(f, value(f)), f.list ? h("datalist", { id: `${f.name}-list` }, f.list.map((o) => h("option", { value: o }))) : "")));
  const submit = async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(event.target));
    fill(problem);
    try {
      const saved = item
        ? await put(`/api/worklist/${item.id}`, { dataset: edited(item.attributes, values) })
        : await post("/api/worklist", plainFields(values));
      go(`/worklist/${saved.id}`);
    } catch (error) {
      fill(problem, message(error.message));
    }
  };
  fill(
    main,
    h("div", { class: "toolbar" }, h("a", { href: item ? `#/worklist/${item.id}` : "#/worklist" }, "‹ Back")),
    h("h1", {}, title),
    problem,
    h(
      "form",
      { class: "grid card", onsubmit: submit },
      group("Patient", FIELDS.slice(0, 4)),
      group("Order", FIELDS.slice(4, 8)),
      group("Scheduled procedure step", FIELDS.slice(8)),
      h("div", { class: "form-actions" },
        h("button", { class: "primary", type: "submit" }, item ? "Save changes" : "Schedule"),
        h("a", { class: "button", href: item ? `#/worklist/${item.id}` : "#/worklist" }, "Back without saving")),
    ),
  );
}

export async function render(main, route, session) {
  if (route.id === "new") return form(main, "", session);
  if (route.id && route.action === "edit") return form(main, route.id, session);
  if (route.id) return detail(main, route.id, session);
  return list(main, session);
}
