// The console's shell: hash routing between pages, the admin token prompt,
// kill and revive with a confirmation naming the flag, and live updates
// from `/v1/stream` (each new config version re-renders the open page).

import { AuthNeeded, api, forgetToken, hasToken, setToken } from "./api.js";
import { h } from "./dom.js";
import { routes } from "./pages.js";

const main = document.getElementById("main");
const notice = document.getElementById("notice");
const served = document.getElementById("served-version");
const liveState = document.getElementById("live-state");
const forget = document.getElementById("forget-token");

/** Renders are numbered: an older one finishing late is dropped. */
let renders = 0;

/** The last page asked for: the skip link's `#main` is not a page. */
let route = "flags";

function currentRoute() {
  if (location.hash.startsWith("#/")) route = location.hash.slice(2);
  const [path, query = ""] = route.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query) };
}

function say(text) {
  notice.textContent = text;
}

const ui = {
  kill: (flag) =>
    act(flag, {
      title: `Kill ${flag}?`,
      text: `Every evaluation of ${flag} will serve DISABLED (its off_variant, or no value, so the caller's default, when it declares none) until it is revived. The kill is kept across restarts.`,
      verb: `Kill ${flag}`,
      reason: true,
      path: `/v1/admin/flags/${encodeURIComponent(flag)}/kill`,
    }),
  revive: (flag) =>
    act(flag, {
      title: `Revive ${flag}?`,
      text: `${flag} will serve its rules again (unless the file sets enabled = false).`,
      verb: `Revive ${flag}`,
      reason: false,
      path: `/v1/admin/flags/${encodeURIComponent(flag)}/revive`,
    }),
};

/** Renders the page the hash names; `refresh` keeps focus where it is. */
async function render({ refresh = false } = {}) {
  const mine = ++renders;
  const { parts, query } = currentRoute();
  const page = routes.find((route) => route.matches(parts));
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.nav === page?.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!page) {
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, "No such page: pick one above."));
    return;
  }
  const focused = document.activeElement?.id;
  main.setAttribute("aria-busy", "true");
  try {
    const content = await page.render(parts, query, ui);
    if (mine !== renders) return;
    main.replaceChildren(...[content].flat(Infinity).filter(Boolean));
    document.title = `${page.title(parts)} · flags console`;
    if (refresh && focused) document.getElementById(focused)?.focus();
    if (!refresh) main.focus({ preventScroll: true });
  } catch (error) {
    if (mine !== renders) return;
    if (error instanceof AuthNeeded) {
      askForToken(error);
    } else {
      main.replaceChildren(h("h1", {}, "The server could not answer"), h("p", { class: "error", role: "alert" }, error.message));
    }
  } finally {
    if (mine === renders) main.setAttribute("aria-busy", "false");
  }
}

// ---------------------------------------------------------------- the token

function askForToken(error) {
  const why =
    !hasToken()
      ? "This server has tokens configured: the console needs an admin token."
      : error.status === 403
        ? "That token is not an admin token (the server answered 403). The console needs an admin token."
        : "The server does not accept that token (401). Enter an admin token.";
  forgetToken();
  forget.hidden = true;
  main.replaceChildren(
    h("h1", {}, "Admin token needed"),
    h("p", {}, why),
    h("button", { type: "button", onclick: () => openTokenDialog(why) }, "Enter the admin token"),
  );
  openTokenDialog(why);
}

function openTokenDialog(why) {
  const dialog = document.getElementById("token-dialog");
  document.getElementById("token-why").textContent = why;
  document.getElementById("token").value = "";
  if (!dialog.open) dialog.showModal();
}

document.getElementById("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = document.getElementById("token").value.trim();
  if (!token) return;
  setToken(token);
  forget.hidden = false;
  document.getElementById("token-dialog").close();
  render();
});

forget.addEventListener("click", () => {
  forgetToken();
  forget.hidden = true;
  say("The admin token is forgotten.");
  render();
});

// ---------------------------------------------------------------- actions

/** Asks to confirm an action on `flag`, then posts it and says what the server answered. */
async function act(flag, { title, text, verb, reason, path }) {
  const dialog = document.getElementById("confirm-dialog");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-yes").textContent = verb;
  const reasonField = document.getElementById("confirm-reason-field");
  const reasonInput = document.getElementById("confirm-reason");
  reasonField.hidden = !reason;
  reasonInput.value = "";
  dialog.returnValue = "";
  dialog.showModal();
  const confirmed = await new Promise((resolve) =>
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true }),
  );
  if (!confirmed) {
    say(`Nothing done: ${flag} is as it was.`);
    return;
  }
  const given = reasonInput.value.trim();
  try {
    const answer = await api(path, { method: "POST", body: reason && given ? { reason: given } : undefined });
    say(answer.persisted ? answer.message : `${answer.message} (${answer.persistence_error ?? "not stored"})`);
  } catch (error) {
    if (error instanceof AuthNeeded) return askForToken(error);
    say(`${verb} failed: ${error.message}`);
  }
  render({ refresh: true });
}

// ---------------------------------------------------------------- live updates

function follow() {
  const stream = new EventSource("/v1/stream");
  stream.addEventListener("open", () => {
    liveState.textContent = "live";
  });
  stream.addEventListener("error", () => {
    liveState.textContent = "reconnecting";
  });
  stream.addEventListener("message", async (event) => {
    const data = JSON.parse(event.data);
    served.textContent = data.etag;
    if (data.type !== "refetchEvaluation") return;
    await render({ refresh: true });
    say(`Version ${data.etag} is served; this page shows it.`);
  });
}

window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#/")) render();
});
forget.hidden = !hasToken();
render();
follow();
