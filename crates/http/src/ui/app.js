// The dashboard's entry point: sign-in, and which view the address shows
// (#/ the sessions, #/session/<id> one session).

import { ApiError, request, setToken, token } from "./api.js";
import { showSessions } from "./sessions.js";
import { showSession } from "./session.js";

const views = {
  signIn: document.getElementById("sign-in"),
  sessions: document.getElementById("sessions-view"),
  session: document.getElementById("session-view"),
};

/** What the view on screen must do when another replaces it. */
let leaveView = () => {};

function showOnly(name) {
  for (const [key, element] of Object.entries(views)) {
    element.hidden = key !== name;
  }
}

/** Shows the sign-in box with `message` (why the last token failed, if it did). */
function askForToken(message) {
  leaveView();
  leaveView = () => {};
  showOnly("signIn");
  document.getElementById("sign-out").hidden = true;
  document.getElementById("sign-in-error").textContent = message || "";
  document.getElementById("token").focus();
}

/** Called by views when the server answers 401: the token is wrong or expired. */
function onAuthError(error) {
  setToken(null);
  askForToken(error.message);
}

function route() {
  leaveView();
  document.getElementById("sign-out").hidden = !token();
  const match = window.location.hash.match(/^#\/session\/([0-9a-fA-F-]{36})$/);
  const context = { onAuthError, setConnection };
  if (match) {
    showOnly("session");
    leaveView = showSession(match[1], context);
  } else {
    showOnly("sessions");
    leaveView = showSessions(context);
  }
}

function setConnection(text) {
  document.getElementById("connection").textContent = text;
}

// Checks a token (or none) with a cheap authenticated read before showing any view.
async function signIn() {
  try {
    await request("GET", "session");
    route();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      const hadToken = Boolean(token());
      setToken(null);
      askForToken(hadToken ? error.message : "");
    } else {
      askForToken(`The server cannot be reached: ${error.message}`);
    }
  }
}

document.getElementById("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("token");
  const value = input.value.trim();
  if (!value) {
    return;
  }
  setToken(value);
  input.value = "";
  document.getElementById("sign-in-error").textContent = "Checking the token…";
  signIn();
});

document.getElementById("sign-out").addEventListener("click", () => {
  setToken(null);
  askForToken("Signed out.");
});

window.addEventListener("hashchange", () => {
  if (views.signIn.hidden) {
    route();
  }
});

signIn();
