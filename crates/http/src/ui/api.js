// The dashboard's only door to the server: authenticated JSON requests and
// server-sent event streams read with fetch, so they carry the bearer token
// (EventSource cannot send an Authorization header).

const TOKEN_KEY = "crus.token";

/** The API root: the dashboard is served at <root>/ui/, so the API is one level up. */
const ROOT = new URL("../", window.location.href);

/** An API answer that is not a success: its status and the problem document's detail. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(describe(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

function describe(status, problem) {
  if (status === 401) {
    return "The server refused the token (401 Unauthorized): check it and sign in again.";
  }
  if (status === 403) {
    return "This token may not do that (403 Forbidden).";
  }
  const title = problem && problem.title ? problem.title : `HTTP ${status}`;
  const detail = problem && problem.detail ? `: ${problem.detail}` : "";
  return `${title}${detail}`;
}

/** The token kept for this tab, or null. */
export function token() {
  return window.sessionStorage.getItem(TOKEN_KEY);
}

/** Keeps `value` as this tab's token; null forgets it. */
export function setToken(value) {
  if (value) {
    window.sessionStorage.setItem(TOKEN_KEY, value);
  } else {
    window.sessionStorage.removeItem(TOKEN_KEY);
  }
}

function headers(extra) {
  const result = { Accept: "application/json", ...extra };
  const current = token();
  if (current) {
    result.Authorization = `Bearer ${current}`;
  }
  return result;
}

/** `method path` with an optional JSON body; resolves to the parsed answer, rejects with ApiError. */
export async function request(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
  }
  const response = await fetch(new URL(path, ROOT), init);
  const text = await response.text();
  let parsed = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { detail: text.slice(0, 200) };
    }
  }
  if (!response.ok) {
    throw new ApiError(response.status, parsed);
  }
  return parsed;
}

/**
 * Follows the SSE stream at `path` until `signal` aborts or the server ends it.
 * `onMessage({id, event, data})` gets each message; data is parsed JSON.
 * A dropped connection is reopened with Last-Event-ID, so no kept event is missed.
 * `onStatus(text)` hears about connection changes; `onEnd()` runs when the server ends the stream.
 */
export async function follow(path, { signal, onMessage, onStatus, onEnd, onAuthError }) {
  let lastEventId = null;
  let delay = 500;
  while (!signal.aborted) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastEventId !== null) {
        extra["Last-Event-ID"] = lastEventId;
      }
      const response = await fetch(new URL(path, ROOT), { headers: headers(extra), signal });
      if (response.status === 401 || response.status === 403) {
        onAuthError(new ApiError(response.status, null));
        return;
      }
      if (!response.ok || !response.body) {
        throw new ApiError(response.status, null);
      }
      onStatus("live");
      delay = 500;
      const ended = await readMessages(response.body, (message) => {
        if (message.id !== null) {
          lastEventId = message.id;
        }
        onMessage(message);
      });
      if (ended) {
        onEnd();
        return;
      }
    } catch (error) {
      if (signal.aborted) {
        return;
      }
      onStatus(`reconnecting (${error.message || error})`);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 8000);
  }
}

// Reads SSE messages from a byte stream; true when the server closed it cleanly.
async function readMessages(body, onMessage) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return true;
    }
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const message = parseBlock(block);
      if (message) {
        onMessage(message);
      }
    }
  }
}

// One SSE block ("id:", "event:", "data:" lines; ":" comments) as a message, or null.
function parseBlock(block) {
  let id = null;
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) {
      continue;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    if (field === "id") {
      id = value;
    } else if (field === "event") {
      event = value;
    } else if (field === "data") {
      data.push(value);
    }
  }
  if (data.length === 0) {
    return null;
  }
  let parsed;
  try {
    parsed = JSON.parse(data.join("\n"));
  } catch {
    parsed = data.join("\n");
  }
  return { id, event, data: parsed };
}
