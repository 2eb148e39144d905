// The web UI's frame: who is signed in, the navigation bar, and which page shows.
//
// Pages are modules with render(main, route, session); a route is the part of the address after
// "#" ("#/study/1.2.3" -> {page: "study", id: "1.2.3", action: ""}). A page may answer a
// function that is called when another page replaces it (to remove its listeners).

import { ApiError, get } from "./api.js";
import { fill, h, message } from "./dom.js";
import * as commitments from "./commitments.js";
import * as mpps from "./mpps.js";
import * as peers from "./peers.js";
import * as prints from "./prints.js";
import * as queue from "./queue.js";
import * as studies from "./studies.js";
import * as study from "./study.js";
import * as worklist from "./worklist.js";

const PAGES = {
  studies, study, worklist, mpps, commitments, "print-jobs": prints, queue, peers,
};
const NAV_OF = { study: "studies" };

/** Who uses the UI: {name, role, admin, authentication}. */
const session = { name: "", role: "read", admin: false, authentication: false };
let leave = null;

function parse() {
  const path = (location.hash.replace(/^#/, "").split("?")[0] || "/studies").replace(/^\/+/, "");
  const [page, id = "", action = ""] = path.split("/").map(decodeURIComponent);
  return { page: page || "studies", id, action };
}

async function show() {
  const route = parse();
  const main = document.getElementById("main");
  if (typeof leave === "function") leave();
  leave = null;
  const module = PAGES[route.page];
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === (NAV_OF[route.page] || route.page));
  }
  if (!module) {
    fill(main, message(`There is no page "${route.page}". Choose one in the bar above.`));
    return;
  }
  fill(main, h("p", { class: "muted" }, "Loading…"));
  try {
    leave = await module.render(main, route, session);
  } catch (error) {
    fill(main, message(error instanceof ApiError ? error.message : `This page failed: ${error.message}`));
  }
}

async function start() {
  try {
    const who = await get("/api/whoami");
    Object.assign(session, who, { admin: who.role === "admin" });
  } catch (error) {
    fill(document.getElementById("main"), message(error.message));
    return;
  }
  document.body.classList.toggle("read-only", !session.admin);
  const who = document.getElementById("who");
  who.textContent = session.authentication
    ? `${session.name} · ${session.admin ? "admin" : "read only"}`
    : "open server (no sign-in)";
  if (!session.admin) {
    const banner = document.getElementById("banner");
    banner.hidden = false;
    banner.textContent =
      `You are signed in as ${session.name} with read-only access: you can look at everything, ` +
      "but scheduling, editing, retrying and other changes need an admin user.";
  }
  window.addEventListener("hashchange", show);
  await show();
}

start();
