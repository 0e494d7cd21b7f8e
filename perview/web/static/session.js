// Who the page is talking for: the user and role in the header, a log-out button when there is a
// login to end, and no stop/restart for a viewer. When the stream drops and the server no longer
// knows this browser (the login expired, or was ended elsewhere), it asks for a login again
// instead of retrying for ever.

const $ = (id) => document.getElementById(id);

async function whoAmI() {
  const response = await fetch("api/session", { cache: "no-store" });
  return response.ok ? response.json() : null;
}

function show(session) {
  document.body.dataset.role = session.role;
  if (session.user !== null) $("session-user").textContent = `${session.user} (${session.role})`;
  $("session").hidden = !session.logout;
}

function loginAgainWhenRefused(session) {
  if (session.user === null) return; // a token login: there is no login page to go back to
  let checking = false;
  new MutationObserver(async () => {
    if ($("connection").dataset.state !== "reconnecting" || checking) return;
    checking = true;
    try {
      const response = await fetch("api/session", { cache: "no-store" });
      if (response.status === 401) {
        location.assign(`login?next=${encodeURIComponent(location.pathname + location.search)}`);
      }
    } catch {
      // the server is away: the stream's own reconnecting goes on
    } finally {
      checking = false;
    }
  }).observe($("connection"), { attributes: true, attributeFilter: ["data-state"] });
}

const session = await whoAmI();
if (session) {
  show(session);
  loginAgainWhenRefused(session);
}
