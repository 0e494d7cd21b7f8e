// Who the page is talking for: the user and role in the header, a log-out button when there is a
// session to end, and no stop/restart for a viewer. When the page has no credential, or the
// server refuses the one it has, it says so where the person is looking and how to get back in
// (the login page, or the token), instead of retrying for ever.

import { pageCredential } from "./credential.js";
import { $ } from "./dom.js";
import { setConnection } from "./status.js";
const credential = pageCredential();
const auth = document.body.dataset.auth; // how this server lets people in: "users", "token", "none"

/** Who the server says the page talks for; null when it refuses the credential. */
async function whoAmI() {
  const response = await credential.api("api/session", { cache: "no-store" });
  return response.ok ? response.json() : null;
}

/** Whether the way to this page began on another site (the server marks the page so). */
export function linked() {
  return document.body.dataset.arrival !== "direct" || credential.linked;
}

function loginUrl() {
  const next = encodeURIComponent(location.pathname + location.search);
  return `login?next=${next}${linked() ? "&arrival=linked" : ""}`;
}

function show(session) {
  document.body.dataset.role = session.role;
  if (session.user !== null) $("session-user").textContent = `${session.user} (${session.role})`;
  $("session").hidden = !session.logout;
}

/** Say that the page is not signed in (`why`), and how to get back in. Resolves once a token
 *  pasted here is taken; with users, the login page brings the person back instead. */
function askToSignIn(why) {
  document.body.dataset.signedIn = "no";
  $("session").hidden = true;
  setConnection("signed out");
  $("signin").hidden = false;
  const message = $("signin-message");
  if (auth === "users") {
    message.textContent = `${why} Log in to go on.`;
    $("signin-login").href = loginUrl();
    $("signin-login").hidden = false;
    return new Promise(() => {});
  }
  message.textContent = `${why} Open the URL Perview printed when it started (it ends in #token=…), or paste the token here:`;
  const form = $("signin-token");
  form.hidden = false;
  return new Promise((resolve) => {
    form.onsubmit = async (event) => {
      event.preventDefault();
      const input = form.elements.token;
      if (!(await credential.trade(input.value.trim()))) {
        message.textContent = "That token was refused. Paste the token Perview printed:";
        return;
      }
      input.value = "";
      $("signin").hidden = true;
      delete document.body.dataset.signedIn;
      resolve();
    };
  });
}

async function signIn() {
  const taken = await credential.arrive(location, history);
  const held = credential.value !== null;
  let who = await whoAmI();
  if (who === null && !held && taken && auth === "users") {
    location.replace(loginUrl()); // nothing to show yet: straight to the form
    return new Promise(() => {});
  }
  let why = !taken ? "The token in the address was refused." : held ? "Your login has ended, or was refused." : "Not signed in.";
  while (who === null) {
    await askToSignIn(why);
    who = await whoAmI();
    why = "Not signed in.";
  }
  show(who);
  credential.addEventListener("refused", async () => {
    await askToSignIn("Your login has ended, or was refused.");
    const again = await whoAmI();
    if (again) show(again);
  });
  $("logout").addEventListener("click", async () => {
    await credential.logOut();
    location.assign(auth === "users" ? "login" : "./");
  });
  return who;
}

/** Resolves with who the page talks for, once it has a credential the server takes (or needs
 *  none); until then nothing else of the page asks the server for anything. */
export const signedIn = signIn();
