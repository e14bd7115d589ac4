// The console's only way to the server: the JSON API, with the admin token
// (when one was given) as `Authorization: Bearer`, never in a URL. The
// token lives in this tab's sessionStorage: gone when the tab closes.

const TOKEN_KEY = "flags-admin-token";

/** The server wants a (better) token: 401 without one, 403 for a client token. */
export class AuthNeeded extends Error {
  constructor(status, details) {
    super(details);
    this.status = status;
  }
}

/** Any other failure, with the server's `errorDetails`. */
export class ApiFailure extends Error {
  constructor(status, details) {
    super(`${status}: ${details}`);
    this.status = status;
  }
}

export function hasToken() {
  return sessionStorage.getItem(TOKEN_KEY) !== null;
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** `method path` with an optional JSON body; the parsed answer, or a thrown error. */
export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  const details = data?.errorDetails ?? text;
  if (response.status === 401 || response.status === 403) {
    throw new AuthNeeded(response.status, details);
  }
  if (!response.ok) throw new ApiFailure(response.status, details);
  return data;
}
