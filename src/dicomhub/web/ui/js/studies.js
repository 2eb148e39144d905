// The study browser: a PACS work list searched by patient, date, modality, accession and
// description, sorted by any column, a page at a time (GET /api/studies).

import { get } from "./api.js";
import { dicomDate, dicomTime, fill, go, h, hashParams, message, pager, personName, table } from "./dom.js";

const PAGE_SIZE = 25;
const MODALITIES = ["CR", "CT", "DX", "MG", "MR", "NM", "OT", "PT", "RF", "SC", "SR", "US", "XA"];

/** A C-FIND value matching what a person typed: wildcards as given, else "starts with". */
function startsWith(text) {
  const value = text.trim();
  if (!value) return "";
  return /[*?]/.test(value) ? value : `${value}*`;
}

function contains(text) {
  const value = text.trim();
  if (!value) return "";
  return /[*?]/.test(value) ? value : `*${value}*`;
}

/** The /api/studies filters of the search form's values. */
export function filters(form) {
  const from = (form.from || "").replace(/-/g, "");
  const to = (form.to || "").replace(/-/g, "");
  return {
    PatientName: startsWith(form.name || ""),
    PatientID: startsWith(form.id || ""),
    AccessionNumber: startsWith(form.accession || ""),
    StudyDescription: contains(form.description || ""),
    ModalitiesInStudy: form.modality || "",
    StudyDate: from || to ? (from === to ? from : `${from}-${to}`) : "",
  };
}

function field(name, label, value, attributes = {}) {
  return h("label", {}, label, h("input", { name, value: value || "", ...attributes }));
}

export async function render(main) {
  const params = hashParams();
  const sort = params.sort || "-StudyDate,-StudyTime";
  const offset = Number(params.offset || 0);
  const search = (changes) => go("/studies", { ...params, offset: 0, ...changes });

  const form = h(
    "form",
    {
      class: "search card",
      onsubmit: (event) => {
        event.preventDefault();
        const values = Object.fromEntries(new FormData(event.target));
        go("/studies", { ...values, sort: params.sort });
      },
    },
    field("name", "Patient name", params.name, { placeholder: "DOE^JANE or doe", autofocus: true }),
    field("id", "Patient ID", params.id),
    field("from", "Study date from", params.from, { type: "date" }),
    field("to", "to", params.to, { type: "date" }),
    h(
      "label",
      {},
      "Modality",
      h(
        "select",
        { name: "modality" },
        h("option", { value: "" }, "Any"),
        MODALITIES.map((m) => h("option", { value: m, selected: params.modality === m }, m)),
      ),
    ),
    field("accession", "Accession number", params.accession),
    field("description", "Description", params.description),
    h(
      "div",
      { class: "actions" },
      h("button", { class: "primary", type: "submit" }, "Search"),
      h("button", { type: "button", onclick: () => go("/studies", {}) }, "Clear"),
    ),
  );
  const results = h("div", {}, h("p", { class: "muted" }, "Searching…"));
  fill(main, h("h1", {}, "Studies"), form, results);

  let page;
  try {
    page = await get("/api/studies", { ...filters(params), sort, offset, limit: PAGE_SIZE });
  } catch (error) {
    fill(results, message(error.message));
    return;
  }
  const columns = [
    { title: "Patient name", sort: "PatientName", value: (s) => h("a", { href: `#/study/${encodeURIComponent(s.StudyInstanceUID)}` }, personName(s.PatientName) || "(no name)") },
    { title: "Patient ID", sort: "PatientID", value: (s) => s.PatientID || "" },
    { title: "Birth date", sort: "PatientBirthDate", value: (s) => dicomDate(s.PatientBirthDate) },
    { title: "Sex", sort: "PatientSex", value: (s) => s.PatientSex || "" },
    { title: "Study date", sort: "StudyDate", value: (s) => `${dicomDate(s.StudyDate)} ${dicomTime(s.StudyTime)}`.trim() },
    { title: "Modalities", sort: "ModalitiesInStudy", value: (s) => (s.ModalitiesInStudy || []).join(", ") },
    { title: "Accession", sort: "AccessionNumber", value: (s) => s.AccessionNumber || "" },
    { title: "Description", sort: "StudyDescription", value: (s) => s.StudyDescription || "" },
    { title: "Series", sort: "NumberOfStudyRelatedSeries", class: "num", value: (s) => s.NumberOfStudyRelatedSeries ?? "" },
    { title: "Images", sort: "NumberOfStudyRelatedInstances", class: "num", value: (s) => s.NumberOfStudyRelatedInstances ?? "" },
  ];
  fill(
    results,
    table(columns, page.items, {
      sort,
      onSort: (keyword) => search({ sort: keyword }),
      onRow: (s) => go(`/study/${encodeURIComponent(s.StudyInstanceUID)}`),
      empty: "No study matches this search.",
    }),
    pager(page, (next) => go("/studies", { ...params, offset: next })),
  );
}
