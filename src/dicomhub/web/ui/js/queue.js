// The forwarding queue: what waits to be sent to other systems, what was delivered and what
// failed, with retry and drop (GET /api/queue, POST /api/queue/{id}/retry, /retry, /drop,
// DELETE /api/queue/{id}).

import { del, get, post } from "./api.js";
import { badge, fill, flash, go, h, hashParams, message, moment, pager, table, takeFlash } from "./dom.js";

const STATES = ["pending", "failed", "done"];

export async function render(main, route, session) {
  const params = hashParams();
  const offset = Number(params.offset || 0);
  const page = await get("/api/queue", { state: params.state, offset, limit: 50 });
  const done = takeFlash();
  const notice = h("div", {}, done ? message(done, "ok") : "");
  const reload = (sentence) => {
    flash(sentence);
    go("/queue", { state: params.state, offset });
  };
  const act = async (work, sentence) => {
    try {
      await work();
      reload(sentence);
    } catch (error) {
      fill(notice, message(error.message));
    }
  };
  const bulk = (label, body, question, sentence) => h("button", {
    type: "button",
    class: "admin-only",
    onclick: () => confirm(question) && act(() => post(body.all_failed ? "/api/queue/retry" : "/api/queue/drop", body), sentence),
  }, label);
  const columns = [
    { title: "State", value: (r) => badge(r.state) },
    { title: "Destination", value: (r) => r.destination },
    { title: "Rule", value: (r) => r.rule },
    { title: "SOP Instance UID", value: (r) => h("code", {}, r.sop_instance_uid) },
    { title: "Attempts", class: "num", value: (r) => r.attempts },
    { title: "Next attempt", value: (r) => (r.state === "done" ? "" : moment(r.next_attempt_at)) },
    { title: "Last error", value: (r) => r.last_error },
    { title: "Changed", value: (r) => moment(r.done_at || r.updated_at) },
    {
      title: "",
      value: (r) => (session.admin ? h("div", { class: "actions admin-only" },
        r.state !== "done" ? h("button", { type: "button", class: "small", onclick: () => act(() => post(`/api/queue/${r.id}/retry`), `Row ${r.id} will be sent again now.`) }, "Retry") : "",
        h("button", { type: "button", class: "small danger", onclick: () => confirm(`Drop row ${r.id}? It will not be sent.`) && act(() => del(`/api/queue/${r.id}`), `Row ${r.id} was dropped.`) }, "Drop")) : ""),
    },
  ];
  const counts = page.counts || {};
  fill(
    main,
    h("h1", {}, "Forwarding queue"),
    h(
      "div",
      { class: "toolbar" },
      h("div", { class: "counts" }, STATES.map((s) => h("a", { href: `#/queue?state=${s}`, title: `Show the ${s} rows` }, badge(`${s}: ${counts[s] ?? 0}`)))),
      h("label", { class: "inline" }, "Show", h("select", { onchange: (e) => go("/queue", { state: e.target.value }) },
        h("option", { value: "" }, "All"), STATES.map((s) => h("option", { value: s, selected: params.state === s }, s)))),
      h("span", { class: "grow" }),
      session.admin ? [
        bulk("Retry all failed", { all_failed: true }, "Send every failed row again now?", "Every failed row will be sent again now."),
        bulk("Drop all done", { state: "done" }, "Drop every delivered row from the list?", "The delivered rows were dropped."),
        bulk("Drop all failed", { state: "failed" }, "Drop every failed row? They will not be sent.", "The failed rows were dropped."),
      ] : "",
    ),
    notice,
    table(columns, page.items, { empty: "The queue is empty." }),
    pager(page, (next) => go("/queue", { state: params.state, offset: next })),
  );
}
