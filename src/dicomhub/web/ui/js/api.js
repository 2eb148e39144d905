// Talking to the dicomhub server: every failure becomes a sentence a person understands.
//
// Requests go to the same origin with the browser's own credentials: when the server has users,
// the browser asks for a user name and password once (HTTP Basic) and sends them with every
// request, images included.

/** A failed request: message is a sentence to show as it is; status the HTTP status (0: none). */
export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

const FALLBACK = {
  400: "The server did not understand the request.",
  403: "You may look but not change anything: this needs an admin user.",
  404: "This was not found on the server (removed meanwhile?).",
  409: "This cannot be done in the state it is in now.",
  413: "This is larger than the server accepts.",
  422: "Some of the values are missing or not valid.",
  502: "The other DICOM system could not be reached or refused.",
  503: "The server cannot answer right now; try again in a moment.",
};

function url(path, params) {
  const query = new URLSearchParams(
    Object.entries(params || {}).filter(([, value]) => value !== "" && value !== undefined && value !== null),
  );
  return query.toString() ? `${path}?${query}` : path;
}

async function sentence(response) {
  let text = "";
  try {
    const body = await response.json();
    text = typeof body.error === "string" ? body.error : "";
  } catch {
    text = "";
  }
  if (response.status === 401) {
    return `${text || "You are not signed in."} Reload the page to sign in again.`;
  }
  if (text) return text;
  return FALLBACK[response.status] ||
    `The server could not do this (HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}).`;
}

/** A request; answers the Response when it succeeded, throws ApiError otherwise. */
export async function raw(method, path, { params, json, accept } = {}) {
  const headers = {};
  if (accept) headers.Accept = accept;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url(path, params), {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(
      "The dicomhub server does not answer. Check that it is running and that this computer reaches it, then try again.",
      0,
    );
  }
  if (!response.ok) throw new ApiError(await sentence(response), response.status);
  return response;
}

/** A JSON request; its answer. */
export async function call(method, path, options = {}) {
  const response = await raw(method, path, { accept: "application/json", ...options });
  return response.status === 204 ? null : response.json();
}

export const get = (path, params) => call("GET", path, { params });
export const post = (path, json) => call("POST", path, { json: json ?? {} });
export const put = (path, json) => call("PUT", path, { json });
export const del = (path) => call("DELETE", path);

/** The URL of a GET with parameters (for images). */
export const href = url;
