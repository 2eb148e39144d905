// Peers: the DICOM systems dicomhub knows by name; add, change and remove them, and test the
// connection with C-ECHO (GET /api/peers, POST/PUT/DELETE /api/peers/{name},
// POST /api/peers/{name}/echo).

import { del, get, post, put } from "./api.js";
import { fill, flash, go, h, message, table, takeFlash } from "./dom.js";

const SERVICES = ["verification", "storage", "query", "retrieve", "worklist", "mpps", "storage-commitment", "print"];

async function echo(peer, out) {
  fill(out, h("span", { class: "muted" }, "Testing…"));
  out.className = "echo-result";
  try {
    const answer = await post(`/api/peers/${encodeURIComponent(peer.name)}/echo`);
    if (answer.ok) {
      out.classList.add("ok");
      fill(out, `Echo succeeded: ${peer.ae_title} at ${peer.host}:${peer.port} answered in ${answer.milliseconds} ms.`);
    } else {
      out.classList.add("bad");
      fill(out, `${peer.ae_title} answered the echo with status 0x${answer.status.toString(16).toUpperCase().padStart(4, "0")} instead of success.`);
    }
  } catch (error) {
    out.classList.add("bad");
    const advice = error.status === 502
      ? " Check the host, the port and the AE title, and that the other system is running and accepts dicomhub."
      : "";
    fill(out, `Echo failed: ${peer.ae_title} at ${peer.host}:${peer.port} did not answer (${error.message}).${advice}`);
  }
}

function peerForm(peer, done, cancel) {
  const problem = h("div");
  const services = new Set(peer ? peer.services : SERVICES);
  const submit = async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const name = (peer ? peer.name : String(data.get("name") || "")).trim();
    if (!name) {
      fill(problem, message("Give the peer a name (for example the room or the system)."));
      return;
    }
    const body = {
      ae_title: String(data.get("ae_title") || "").trim(),
      host: String(data.get("host") || "").trim(),
      port: Number(data.get("port")),
      services: data.getAll("services"),
    };
    try {
      if (peer) await put(`/api/peers/${encodeURIComponent(name)}`, body);
      else await post(`/api/peers/${encodeURIComponent(name)}`, body);
      done(name);
    } catch (error) {
      fill(problem, message(error.message));
    }
  };
  return h(
    "form",
    { class: "grid card", onsubmit: submit, id: "peer-form" },
    h("h2", { style: "grid-column: 1 / -1; margin: 0" }, peer ? `Change peer ${peer.name}` : "Add a peer"),
    h("div", { style: "grid-column: 1 / -1" }, problem),
    h("label", {}, "Name *", h("input", { name: "name", value: peer ? peer.name : "", required: true, disabled: Boolean(peer), maxlength: 64 })),
    h("label", {}, "AE title *", h("input", { name: "ae_title", value: peer ? peer.ae_title : "", required: true, maxlength: 16 })),
    h("label", {}, "Host *", h("input", { name: "host", value: peer ? peer.host : "", required: true, placeholder: "192.0.2.10 or pacs.example" })),
    h("label", {}, "Port *", h("input", { name: "port", type: "number", min: 1, max: 65535, value: peer ? peer.port : "104", required: true })),
    h("fieldset", {}, h("legend", {}, "May use on dicomhub"), SERVICES.map((s) =>
      h("label", { class: "inline" }, h("input", { type: "checkbox", name: "services", value: s, checked: services.has(s) }), s))),
    h("div", { class: "form-actions" }, h("button", { class: "primary", type: "submit" }, peer ? "Save" : "Add peer"), h("button", { type: "button", onclick: cancel }, "Back without saving")),
  );
}

export async function render(main, route, session) {
  const answer = await get("/api/peers");
  const done = takeFlash();
  const notice = h("div", {}, done ? message(done, "ok") : "");
  const formSlot = h("div");
  const reload = (sentence) => {
    flash(sentence);
    go("/peers");
  };
  const openForm = (peer) => {
    fill(formSlot, peerForm(peer, (name) => reload(peer ? `Peer ${name} was changed.` : `Peer ${name} was added.`), () => fill(formSlot)));
    formSlot.querySelector("input:not([disabled])").focus();
  };
  const remove = async (peer) => {
    if (!confirm(`Remove peer ${peer.name} (${peer.ae_title})? dicomhub will no longer accept it or send to it.`)) return;
    try {
      await del(`/api/peers/${encodeURIComponent(peer.name)}`);
      reload(`Peer ${peer.name} was removed.`);
    } catch (error) {
      fill(notice, message(error.message));
    }
  };
  const columns = [
    { title: "Name", value: (p) => h("strong", {}, p.name) },
    { title: "AE title", value: (p) => h("code", {}, p.ae_title) },
    { title: "Address", value: (p) => `${p.host}:${p.port}` },
    { title: "May use", value: (p) => p.services.join(", ") },
    { title: "Declared in", value: (p) => (p.source === "config" ? "configuration file" : "database") },
    {
      title: "",
      value: (p) => {
        const out = h("div", { class: "echo-result", dataset: { peer: p.name } });
        return [
          h("div", { class: "actions" },
            session.admin ? h("button", { type: "button", class: "small admin-only", onclick: () => echo(p, out) }, "Test (C-ECHO)") : "",
            session.admin && p.source !== "config" ? [
              h("button", { type: "button", class: "small admin-only", onclick: () => openForm(p) }, "Edit"),
              h("button", { type: "button", class: "small danger admin-only", onclick: () => remove(p) }, "Remove"),
            ] : ""),
          out,
        ];
      },
    },
  ];
  fill(
    main,
    h("h1", {}, "Peers"),
    h("div", { class: "toolbar" }, h("span", { class: "muted grow" }, "DICOM systems dicomhub knows by name. Peers of the configuration file are changed there."),
      session.admin ? h("button", { class: "primary admin-only", type: "button", onclick: () => openForm(null) }, "Add a peer") : ""),
    notice,
    formSlot,
    table(columns, answer.items, { empty: "No peer yet." }),
  );
}
