// Modality Performed Procedure Steps: what modalities reported, the worklist item each one
// performs, its history and the series it performed against those the archive received
// (GET /api/mpps, /api/mpps/{id}).

import { get } from "./api.js";
import { badge, dicomDate, dicomTime, factList, fill, go, h, hashParams, moment, pager, personName, table } from "./dom.js";
import { tagPanel } from "./tags.js";

const STATUSES = ["IN PROGRESS", "COMPLETED", "DISCONTINUED"];

async function list(main) {
  const params = hashParams();
  const offset = Number(params.offset || 0);
  const page = await get("/api/mpps", { status: params.status, offset, limit: 50 });
  const columns = [
    { title: "Status", value: (m) => badge(m.status) },
    { title: "Started", value: (m) => `${dicomDate(m.start_date)} ${dicomTime(m.start_time)}` },
    { title: "Patient", value: (m) => h("a", { href: `#/mpps/${m.id}` }, personName(m.patient_name) || "(no name)") },
    { title: "Patient ID", value: (m) => m.patient_id },
    { title: "Procedure", value: (m) => m.description },
    { title: "Station", value: (m) => m.performed_station_ae_title || m.calling_ae_title },
    { title: "Worklist item", value: (m) => (m.worklist_item_id ? h("a", { href: `#/worklist/${m.worklist_item_id}` }, `#${m.worklist_item_id}`) : h("span", { class: "muted" }, m.unscheduled ? "unscheduled" : "—")) },
    { title: "Last change", value: (m) => moment(m.updated_at) },
  ];
  fill(
    main,
    h("h1", {}, "Performed procedure steps (MPPS)"),
    h("div", { class: "toolbar" }, h("label", { class: "inline" }, "Status", h("select", { onchange: (e) => go("/mpps", { status: e.target.value }) },
      h("option", { value: "" }, "All"), STATUSES.map((s) => h("option", { value: s, selected: params.status === s }, s))))),
    table(columns, page.items, { onRow: (m) => go(`/mpps/${m.id}`), empty: "No modality has reported a procedure step yet." }),
    pager(page, (next) => go("/mpps", { ...params, offset: next })),
  );
}

async function detail(main, id) {
  const step = await get(`/api/mpps/${encodeURIComponent(id)}`);
  const item = step.worklist_item;
  const facts = [
    ["Status", badge(step.status)],
    ["Patient", `${personName(step.patient_name)} (${step.patient_id})`],
    ["Procedure", step.description],
    ["Started", `${dicomDate(step.start_date)} ${dicomTime(step.start_time)}`],
    ["Station", `${step.performed_station_ae_title || "—"} (calling AE ${step.calling_ae_title})`],
    ["Worklist item", item ? h("a", { href: `#/worklist/${item.id}` }, `#${item.id}: ${personName(item.patient_name)}, ${item.procedure || item.modality} (${item.status})`) : step.unscheduled ? "none: an unscheduled procedure" : "none found"],
    ["SOP Instance UID", h("code", {}, step.sop_instance_uid)],
    ["Created / changed / completed", `${moment(step.created_at)} / ${moment(step.updated_at)} / ${moment(step.completed_at) || "—"}`],
  ];
  const series = table([
    { title: "Series Instance UID", value: (s) => h("code", {}, s.series_instance_uid) },
    { title: "Performed", class: "num", value: (s) => s.performed },
    { title: "Received", class: "num", value: (s) => s.received },
    { title: "Missing", class: "num", value: (s) => (s.missing ? h("span", { class: "badge bad" }, s.missing) : h("span", { class: "badge ok" }, "0")) },
  ], step.series, { empty: "The step names no performed series (yet)." });
  const history = table([
    { title: "When", value: (e) => moment(e.occurred_at) },
    { title: "Message", value: (e) => e.action },
    { title: "Status", value: (e) => [e.status_before ? `${e.status_before} → ` : "", e.status_after] },
    { title: "From", value: (e) => e.calling_ae_title },
  ], step.history);
  fill(
    main,
    h("div", { class: "toolbar" }, h("a", { href: "#/mpps" }, "‹ MPPS")),
    h("h1", {}, `Performed procedure step ${step.id}`),
    h("section", { class: "card" }, factList(facts)),
    h("h2", {}, "Performed series against received series"),
    series,
    h("h2", {}, "History"),
    history,
    h("h2", {}, "Attributes"),
    h("section", { class: "card" }, await tagPanel(step.attributes)),
  );
}

export async function render(main, route) {
  return route.id ? detail(main, route.id) : list(main);
}
