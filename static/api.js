// Thin fetch wrapper for the node's JSON API.
//
// Every error the server sends is `{"error": code, "detail": text}`; we turn it into an
// ApiError whose message is something a person can read in the alert area.

export class ApiError extends Error {
  constructor(status, code, detail, field) {
    super(readableMessage(status, code, detail));
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.detail = detail;
    // The request field a 422 is about ("title"), to show the error next to it.
    this.field = typeof field === 'string' ? field : undefined;
  }
}

const STATUS_TEXT = {
  400: 'The request was not valid.',
  401: 'You need to log in first.',
  403: 'You are not allowed to do that.',
  404: 'Not found.',
  409: 'That is not possible right now.',
  413: 'That is too large.',
  429: 'Too many attempts; wait a moment and try again.',
  500: 'The server had a problem. Try again.',
  502: 'The server is unreachable. Try again.',
  503: 'The server is busy. Try again.',
};

function readableMessage(status, code, detail) {
  if (detail && typeof detail === 'string') {
    const text = detail.trim();
    return text.charAt(0).toUpperCase() + text.slice(1);
  }
  if (code && typeof code === 'string') {
    const text = code.replace(/[_-]+/g, ' ');
    return text.charAt(0).toUpperCase() + text.slice(1);
  }
  return STATUS_TEXT[status] || `Request failed (HTTP ${status}).`;
}

/**
 * Call the API. `body` (if given) is sent as JSON. Returns the parsed JSON body,
 * or null for an empty response (204). Throws ApiError on a non-2xx status and on
 * network failure (status 0).
 */
export async function api(method, path, body) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, 'network', 'Could not reach the server. Check your connection.');
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const code = data && typeof data === 'object' ? data.error : undefined;
    const detail = data && typeof data === 'object' ? data.detail : undefined;
    const field = data && typeof data === 'object' ? data.field : undefined;
    throw new ApiError(response.status, code, detail, field);
  }
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);
export const del = (path) => api('DELETE', path);
export const patch = (path, body) => api('PATCH', path, body);

/** Path of a room's API resource (ids are URL-safe already, but be strict). */
export function roomPath(roomId, suffix = '') {
  return `/api/v1/rooms/${encodeURIComponent(roomId)}${suffix}`;
}

export function memberPath(roomId, username, suffix = '') {
  return roomPath(roomId, `/members/${encodeURIComponent(username)}${suffix}`);
}
