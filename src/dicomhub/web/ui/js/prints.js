// Print jobs: who printed what, when and with which outcome, and a picture of each film
// print-to-archive kept (GET /api/print-jobs).

import { get } from "./api.js";
import { badge, fill, go, h, hashParams, moment, pager, table } from "./dom.js";

function films(job) {
  if (!job.films.length) return h("span", { class: "muted" }, "no film");
  return h("div", { class: "films" }, job.films.map((film) => {
    const archived = film.archived;
    const caption = `Film ${film.position} · ${film.image_display_format || "?"}`;
    if (!archived || !archived.png) return h("figure", {}, h("div", { class: "muted" }, "not archived"), h("figcaption", {}, caption));
    return h(
      "figure",
      {},
      h("a", { href: archived.png, target: "_blank", rel: "noopener", title: "Open the film" },
        h("img", { src: archived.png, alt: caption, class: "film", loading: "lazy" })),
      h("figcaption", {}, caption, " · ", h("a", { href: `#/study/${encodeURIComponent(archived.study_instance_uid)}?series=${encodeURIComponent(archived.series_instance_uid)}` }, "in archive")),
    );
  }));
}

export async function render(main) {
  const params = hashParams();
  const offset = Number(params.offset || 0);
  const page = await get("/api/print-jobs", { offset, limit: 20 });
  const columns = [
    { title: "Job", value: (j) => `#${j.id}` },
    { title: "Status", value: (j) => [badge(j.status), j.detail ? h("div", { class: "muted" }, j.detail) : ""] },
    { title: "Printed by", value: (j) => j.calling_ae_title },
    { title: "When", value: (j) => moment(j.created_at) },
    { title: "Layout", value: (j) => (j.layout || []).join(", ") },
    { title: "Copies", class: "num", value: (j) => j.number_of_copies },
    { title: "Films", value: films },
  ];
  fill(
    main,
    h("h1", {}, "Print jobs"),
    table(columns, page.items, { empty: "Nothing was printed yet." }),
    pager(page, (next) => go("/print-jobs", { offset: next })),
  );
}
