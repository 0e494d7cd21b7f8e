// A minimal live view: one event stream, lines appended as text (never as HTML), following the
// end unless the reader scrolled up. The full page (filters, panes, ANSI) replaces this.
const MAX_LINES = 20000;
const log = document.getElementById("log");
const follow = document.getElementById("follow");
const connection = document.getElementById("connection");
const sources = document.getElementById("sources");
let following = true;
let waiting = 0;

function atBottom() {
  return log.scrollHeight - log.scrollTop - log.clientHeight < 4;
}

function append(text, note = false) {
  const node = note ? Object.assign(document.createElement("span"), { className: "note" }) : document.createTextNode("");
  node.textContent = text;
  log.append(node);
  while (log.childNodes.length > MAX_LINES) log.firstChild.remove();
  if (following) log.scrollTop = log.scrollHeight;
  else {
    waiting += text.split("\n").length - 1;
    follow.textContent = `${waiting} new lines below`;
    follow.hidden = false;
  }
}

function jumpToEnd() {
  following = true;
  waiting = 0;
  follow.hidden = true;
  log.scrollTop = log.scrollHeight;
}

log.addEventListener("scroll", () => {
  if (atBottom()) jumpToEnd();
  else following = false;
});
follow.addEventListener("click", jumpToEnd);
document.addEventListener("keydown", (e) => { if (e.key === "End") jumpToEnd(); });

function showState(info) {
  let el = document.getElementById(`src-${info.source || info.name}`);
  if (!el) {
    el = document.createElement("span");
    el.id = `src-${info.source || info.name}`;
    sources.append(el);
  }
  const detail = info.state === "exited" ? `exited ${info.status}` : info.state === "failed" ? `failed: ${info.reason}` : info.state;
  el.textContent = `${info.source || info.name}`;
  const state = Object.assign(document.createElement("span"), { className: "state", textContent: `(${detail})` });
  el.append(state);
}

const stream = new EventSource("api/events" + location.search);
stream.addEventListener("open", () => { connection.textContent = "live"; });
stream.addEventListener("error", () => { connection.textContent = "reconnecting…"; });
stream.addEventListener("source", (e) => showState(JSON.parse(e.data)));
stream.addEventListener("lines", (e) => {
  const text = e.data.slice(e.data.indexOf("\n") + 1);
  append(text + "\n");
});
stream.addEventListener("gap", (e) => append(`[${JSON.parse(e.data).count} lines skipped]\n`, true));
stream.addEventListener("state", (e) => {
  const info = JSON.parse(e.data);
  showState(info);
  if (info.history) return;
  if (info.state === "exited") append(`[exited with status ${info.status}]\n`, true);
  if (info.state === "failed") append(`[failed to start: ${info.reason}]\n`, true);
});
