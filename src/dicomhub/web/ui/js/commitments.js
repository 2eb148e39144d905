// Storage commitment transactions in both roles: asked of dicomhub (SCP) and asked by it (SCU),
// with the outcome of every instance and every step (GET /api/commitments, /api/commitments/{id}).

import { get } from "./api.js";
import { badge, factList, fill, go, h, hashParams, moment, pager, table } from "./dom.js";

const ROLES = { scp: "asked of dicomhub", scu: "asked by dicomhub" };
const REASONS = {
  0x0110: "processing failure",
  0x0112: "no such object instance (not in the archive)",
  0x0119: "class–instance conflict",
  0x0122: "SOP class not supported",
  0x0131: "duplicate transaction UID",
  0x0213: "resource limitation",
};

async function list(main) {
  const params = hashParams();
  const offset = Number(params.offset || 0);
  const page = await get("/api/commitments", { role: params.role, offset, limit: 50 });
  const columns = [
    { title: "State", value: (t) => badge(t.state) },
    { title: "Role", value: (t) => ROLES[t.role] || t.role },
    { title: "Peer", value: (t) => h("a", { href: `#/commitments/${t.id}` }, t.peer_ae_title) },
    { title: "Instances", class: "num", value: (t) => t.instances },
    { title: "Committed", class: "num", value: (t) => t.committed },
    { title: "Failed", class: "num", value: (t) => (t.failed ? h("span", { class: "badge bad" }, t.failed) : 0) },
    { title: "Attempts", class: "num", value: (t) => t.attempts },
    { title: "Last error", value: (t) => t.last_error },
    { title: "Asked", value: (t) => moment(t.created_at) },
  ];
  fill(
    main,
    h("h1", {}, "Storage commitment"),
    h("div", { class: "toolbar" }, h("label", { class: "inline" }, "Role", h("select", { onchange: (e) => go("/commitments", { role: e.target.value }) },
      h("option", { value: "" }, "Both"), Object.entries(ROLES).map(([v, t]) => h("option", { value: v, selected: params.role === v }, t))))),
    table(columns, page.items, { onRow: (t) => go(`/commitments/${t.id}`), empty: "No storage commitment transaction yet." }),
    pager(page, (next) => go("/commitments", { ...params, offset: next })),
  );
}

async function detail(main, id) {
  const t = await get(`/api/commitments/${encodeURIComponent(id)}`);
  const facts = [
    ["State", badge(t.state)],
    ["Role", ROLES[t.role] || t.role],
    ["Peer / called AE", `${t.peer_ae_title} / ${t.called_ae_title}`],
    ["Transaction UID", h("code", {}, t.transaction_uid)],
    ["Instances", `${t.instances}: ${t.committed} committed, ${t.failed} failed`],
    ["Attempts", t.attempts],
    ["Last error", t.last_error],
    ["Asked / changed / completed", `${moment(t.created_at)} / ${moment(t.updated_at)} / ${moment(t.completed_at) || "—"}`],
  ];
  const hex = (n) => `0x${n.toString(16).toUpperCase().padStart(4, "0")}`;
  fill(
    main,
    h("div", { class: "toolbar" }, h("a", { href: "#/commitments" }, "‹ Storage commitment")),
    h("h1", {}, `Storage commitment transaction ${t.id}`),
    h("section", { class: "card" }, factList(facts)),
    h("h2", {}, "Instances"),
    table([
      { title: "Outcome", value: (i) => badge(i.outcome) },
      { title: "SOP Instance UID", value: (i) => h("code", {}, i.sop_instance_uid) },
      { title: "SOP Class UID", value: (i) => h("code", {}, i.sop_class_uid) },
      { title: "Reason", value: (i) => (i.failure_reason != null ? `${hex(i.failure_reason)} ${REASONS[i.failure_reason] || ""}` : "") },
      { title: "Detail", value: (i) => i.detail },
    ], t.items),
    h("h2", {}, "Events"),
    table([
      { title: "When", value: (e) => moment(e.occurred_at) },
      { title: "Event", value: (e) => e.event },
      { title: "Detail", value: (e) => e.detail },
    ], t.events),
  );
}

export async function render(main, route) {
  return route.id ? detail(main, route.id) : list(main);
}
