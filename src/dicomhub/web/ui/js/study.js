// A study: its patient and facts, its series as thumbnails, the viewer, and the tags of the
// image shown (GET /api/studies/{uid}, /api/studies/{uid}/series, WADO-RS series metadata,
// /api/instances/{uid}/header).

import { call, get } from "./api.js";
import { dicomDate, dicomTime, factList, fill, h, message, personName } from "./dom.js";
import { describe, first } from "./pixels.js";
import { tagPanel } from "./tags.js";
import { Viewer } from "./viewer.js";

/** The viewer's stack of a series: every frame of every instance, in InstanceNumber order. */
export function stackOf(study, series, metadata, seriesText) {
  const instances = metadata.map((header) => ({
    header,
    uid: first(header, "00080018"),
    number: Number(first(header, "00200013")),
  }));
  instances.sort((a, b) => (Number.isFinite(a.number) ? a.number : Infinity) - (Number.isFinite(b.number) ? b.number : Infinity) ||
    String(a.uid).localeCompare(String(b.uid)));
  const stack = [];
  for (const { header, uid, number } of instances) {
    const info = describe(header);
    for (let frame = 1; frame <= info.frames; frame += 1) {
      stack.push({ study, series, instance: uid, frame, frames: info.frames, info, number: Number.isFinite(number) ? number : undefined, seriesText });
    }
  }
  return stack;
}

function facts(study) {
  const pairs = [
    ["Patient", `${personName(study.PatientName)}${study.PatientID ? ` (${study.PatientID})` : ""}`],
    ["Birth date / sex", `${dicomDate(study.PatientBirthDate) || "—"} / ${study.PatientSex || "—"}`],
    ["Study date", `${dicomDate(study.StudyDate)} ${dicomTime(study.StudyTime)}`.trim()],
    ["Description", study.StudyDescription],
    ["Accession", study.AccessionNumber],
    ["Referring physician", personName(study.ReferringPhysicianName)],
    ["Modalities", (study.ModalitiesInStudy || []).join(", ")],
    ["Series / images", `${study.NumberOfStudyRelatedSeries ?? "?"} / ${study.NumberOfStudyRelatedInstances ?? "?"}`],
    ["Study Instance UID", h("code", {}, study.StudyInstanceUID)],
  ];
  return factList(pairs, "facts wide");
}

export async function render(main, route) {
  const uid = route.id;
  const [study, series] = await Promise.all([
    get(`/api/studies/${encodeURIComponent(uid)}`),
    get(`/api/studies/${encodeURIComponent(uid)}/series`, { limit: 1000 }),
  ]);
  const texts = {
    patient: personName(study.PatientName),
    patientId: study.PatientID || "",
    study: study.StudyDescription || dicomDate(study.StudyDate),
  };
  const tagsTitle = h("h2", {}, "Tags");
  const tagsBody = h("div", {}, h("p", { class: "muted" }, "Choose an image to see its tags."));
  let shownTags = "";
  const showTags = async (item) => {
    if (shownTags === item.instance) return;
    shownTags = item.instance;
    fill(tagsTitle, `Tags of image ${item.number ?? ""}`.trim(), " ", h("code", { class: "muted" }, item.instance));
    fill(tagsBody, h("p", { class: "muted" }, "Reading the header…"));
    try {
      const header = await get(`/api/instances/${encodeURIComponent(item.instance)}/header`);
      if (shownTags !== item.instance) return;
      fill(tagsBody, await tagPanel(header));
    } catch (error) {
      if (shownTags === item.instance) fill(tagsBody, message(error.message));
    }
  };
  const tagsCard = h("section", { class: "card", id: "tags" }, tagsTitle, tagsBody);
  const tagsButton = h("button", { type: "button", "aria-expanded": "false", onclick: () => {
    tagsCard.hidden = !tagsCard.hidden;
    tagsButton.setAttribute("aria-expanded", String(!tagsCard.hidden));
    tagsButton.textContent = tagsCard.hidden ? "Show tags" : "Hide tags";
    if (!tagsCard.hidden && viewer.stack[viewer.index]) showTags(viewer.stack[viewer.index]);
  } }, "Show tags");
  tagsCard.hidden = true;
  const viewer = new Viewer((item) => { if (!tagsCard.hidden) showTags(item); });
  const problem = h("div");
  const list = h("div", { class: "series-list", role: "list" });
  const buttons = new Map();

  const open = async (one) => {
    for (const [key, button] of buttons) button.classList.toggle("active", key === one.SeriesInstanceUID);
    fill(problem);
    const seriesText = [one.Modality, one.SeriesNumber != null ? `#${one.SeriesNumber}` : "", one.SeriesDescription].filter(Boolean).join(" ");
    try {
      const metadata = await call("GET", `/dicom-web/studies/${encodeURIComponent(uid)}/series/${encodeURIComponent(one.SeriesInstanceUID)}/metadata`, { accept: "application/dicom+json" });
      const stack = stackOf(uid, one.SeriesInstanceUID, metadata || [], seriesText);
      await viewer.load(stack, texts);
      if (stack.length && !stack[0].info.rows && tagsCard.hidden) tagsButton.click();
    } catch (error) {
      fill(problem, message(error.message));
    }
    history.replaceState(null, "", `#/study/${encodeURIComponent(uid)}?series=${encodeURIComponent(one.SeriesInstanceUID)}`);
  };

  for (const one of series.items) {
    const thumbnail = h("img", {
      src: `/api/series/${encodeURIComponent(one.SeriesInstanceUID)}/preview?size=160&format=jpeg`,
      alt: `Series ${one.SeriesNumber ?? ""}`,
      loading: "lazy",
      onerror: (event) => { event.target.replaceWith(h("div", { class: "muted" }, "no picture")); },
    });
    const button = h(
      "button",
      { class: "series-item", type: "button", role: "listitem", dataset: { series: one.SeriesInstanceUID }, onclick: () => open(one) },
      thumbnail,
      h("span", { class: "caption" }, h("strong", {}, `${one.Modality || "?"} ${one.SeriesNumber ?? ""}`), " ", one.SeriesDescription || "", h("br"), h("span", { class: "muted" }, `${one.NumberOfSeriesRelatedInstances ?? "?"} image(s)`)),
    );
    buttons.set(one.SeriesInstanceUID, button);
    list.append(button);
  }

  fill(
    main,
    h("div", { class: "toolbar" }, h("a", { href: "#/studies" }, "‹ Studies"), h("span", { class: "grow" }), tagsButton),
    h("h1", {}, personName(study.PatientName) || "(no name)", " ", h("span", { class: "muted" }, study.StudyDescription || "")),
    h("section", { class: "card" }, facts(study)),
    problem,
    series.items.length
      ? h("div", { class: "study" }, list, viewer.element)
      : message("This study has no series left (deleted?).", "info"),
    tagsCard,
  );
  const wanted = new URLSearchParams(location.hash.split("?")[1] || "").get("series");
  const chosen = series.items.find((s) => s.SeriesInstanceUID === wanted) || series.items[0];
  if (chosen) open(chosen);
  return () => viewer.destroy();
}
