// The page's book of alerts: states, news for notifications, channels, context, without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AlertBook, RECENT, contextRows, contextUrl, notification, span, stateText } from "../../perview/web/static/alerts.js";

const channel = (name, sent, failed, last_error = null) => ({ name, kind: "command", sent, failed, dropped: 0, last_error });
const firing = (alert, at, extra = {}) => ({
  alert,
  state: "firing",
  summary: `app: a line matched 'boom'`,
  source: "app",
  part: null,
  host: null,
  lines: [{ id: 7, part: null, host: null, text: `boom at ${at}` }],
  at,
  sent: true,
  ...extra,
});
const rule = (name, state, recent = [], extra = {}) => ({
  name,
  kind: "lines",
  state,
  since: 1000,
  active: state === "firing",
  silenced_until: null,
  silenced_by: null,
  sources: ["app"],
  channels: [channel("file", recent.length, 0)],
  recent,
  ...extra,
});
const event = (name, state, fired = null, extra = {}) => {
  const { recent, ...rest } = rule(name, state, [], extra);
  return { ...rest, firing: fired };
};

test("what fired before the page opened is not news; a firing a later poll finds is", () => {
  const book = new AlertBook();
  assert.deepEqual(book.load([rule("boom", "firing", [firing("boom", 10)])]), []);
  const later = firing("boom", 20);
  assert.deepEqual(book.load([rule("boom", "firing", [later, firing("boom", 10)])]), [later]);
  assert.deepEqual(book.load([rule("boom", "firing", [later, firing("boom", 10)])]), []);
});

test("a firing on the event stream is news once, and joins the rule's recent firings", () => {
  const book = new AlertBook();
  book.load([rule("boom", "ok")]);
  const fired = firing("boom", 30);
  assert.equal(book.apply(event("boom", "firing", fired)), fired);
  assert.equal(book.rules.get("boom").state, "firing");
  assert.deepEqual(book.rules.get("boom").recent, [fired]);
  assert.equal(book.rules.get("boom").active, true);
  assert.equal(book.rules.get("boom").firing, undefined, "the event's firing is not the rule's");
  // The same firing found again by a poll (after a reconnect, say) is not told twice.
  assert.deepEqual(book.load([rule("boom", "firing", [fired])]), []);
});

test("a change of state without a firing updates the rule and tells nothing", () => {
  const book = new AlertBook();
  book.load([rule("boom", "firing", [firing("boom", 10)])]);
  assert.equal(book.apply(event("boom", "silenced", null, { silenced_until: 5000, silenced_by: "olga" })), null);
  const now = book.rules.get("boom");
  assert.equal(now.state, "silenced");
  assert.equal(now.silenced_by, "olga");
  assert.equal(now.recent.length, 1, "an event has no recent firings: those held are kept");
});

test("whether a silenced rule's condition holds is the server's word, not a guess", () => {
  const book = new AlertBook();
  book.load([rule("boom", "firing", [firing("boom", 10)])]);
  book.apply(event("boom", "silenced", null, { active: true, silenced_until: 5000 }));
  assert.equal(book.rules.get("boom").active, true);
  // A whole cooldown without a match while silenced: no firing is sent, the rule is ok again.
  book.apply(event("boom", "silenced", null, { active: false, silenced_until: 5000 }));
  assert.equal(book.rules.get("boom").active, false);
});

test("a silenced rule's firing is recorded but raises no notification", () => {
  const book = new AlertBook();
  book.load([rule("boom", "silenced")]);
  assert.equal(book.apply(event("boom", "silenced", firing("boom", 40, { sent: false }))), null);
  assert.equal(book.rules.get("boom").recent.length, 1);
});

test("a rule keeps as many recent firings as the server does", () => {
  const book = new AlertBook();
  book.load([rule("boom", "ok")]);
  for (let at = 1; at <= RECENT + 5; at++) book.apply(event("boom", "firing", firing("boom", at)));
  const recent = book.rules.get("boom").recent;
  assert.equal(recent.length, RECENT);
  assert.equal(recent[0].at, RECENT + 5, "newest first");
});

test("the badge counts firing rules, not silenced or ok ones", () => {
  const book = new AlertBook();
  book.load([rule("a", "firing"), rule("b", "silenced"), rule("c", "ok"), rule("d", "firing")]);
  assert.equal(book.firingCount, 2);
  book.apply(event("a", "ok"));
  assert.equal(book.firingCount, 1);
});

test("a rule the config no longer has leaves the book; a new one from an event joins it", () => {
  const book = new AlertBook();
  book.load([rule("a", "ok"), rule("b", "ok")]);
  book.load([rule("b", "ok")]);
  assert.deepEqual([...book.rules.keys()], ["b"]);
  book.apply(event("c", "firing", firing("c", 5)));
  assert.deepEqual(book.list().map((r) => r.name), ["b", "c"]);
});

test("each channel is listed once with its sends and failures added up over the rules", () => {
  const book = new AlertBook();
  book.load([
    rule("a", "ok", [], { channels: [channel("mail", 3, 1, "exit status 1"), channel("hook", 2, 0)] }),
    rule("b", "ok", [], { channels: [channel("mail", 4, 2, "exit status 1")] }),
  ]);
  const [mail, hook] = book.channels();
  assert.deepEqual([mail.name, mail.sent, mail.failed, mail.last_error, mail.alerts], ["mail", 7, 3, "exit status 1", ["a", "b"]]);
  assert.deepEqual([hook.name, hook.sent, hook.alerts], ["hook", 2, ["a"]]);
});

test("states read as words with how long", () => {
  assert.equal(stateText(rule("a", "firing"), 1000 + 190), "firing for 3 min");
  assert.equal(stateText(rule("a", "ok"), 1000 + 7300), "ok for 2 h");
  assert.equal(stateText(rule("a", "ok", [], { since: null }), 5), "ok");
  const silenced = rule("a", "silenced", [], { silenced_until: 4600, silenced_by: "olga" });
  assert.equal(stateText(silenced, 1000), "silenced for 1 h more by olga");
  assert.equal(stateText(silenced, 1000.4), "silenced for 1 h more by olga", "not 59 min a moment later");
  assert.equal(stateText(silenced, 1061), "silenced for 59 min more by olga");
  assert.equal(span(59.4), "59 s");
  assert.equal(span(3 * 86400), "3 d");
});

test("a notification names the alert and quotes its first line, one per rule", () => {
  const n = notification(firing("boom", 1));
  assert.equal(n.title, "alert: boom");
  assert.equal(n.body, "app: a line matched 'boom'\nboom at 1");
  assert.equal(n.tag, "perview-alert-boom");
  assert.equal(notification({ ...firing("disk", 1), state: "resolved", lines: [], summary: "back" }).title, "resolved: disk");
});

test("context is the history around the firing, its own lines marked and gaps said", () => {
  const fired = firing("boom", 1000.5, { source: "my app", lines: [{ id: 9, host: null, text: "boom!" }] });
  assert.equal(contextUrl(fired), "api/sources/my%20app/history?since=940&until=1011&format=json");
  const body = [
    { type: "line", source: "my app", at: 999, line: 41, text: "before" },
    { type: "gap", source: "my app", count: 3, from: "T1", to: "T2" },
    { type: "line", source: "my app", at: 1000, line: 45, text: "boom!" },
    { type: "total", matches: 2 },
  ].map((r) => JSON.stringify(r)).join("\n") + "\n";
  assert.deepEqual(contextRows(body, fired), [
    { text: "before", time: 999, matched: false, note: false },
    { text: "3 lines not recorded (from T1 to T2)", time: null, matched: false, note: true },
    { text: "boom!", time: 1000, matched: true, note: false },
  ]);
});

test("a firing that arrives while the list is being fetched outlives the older list", () => {
  const book = new AlertBook();
  const fetch = book.begin(); // the page asks for api/alerts; the server answers "ok"...
  const fired = firing("boom", 30);
  // ...and the rule fires before that answer reaches the page, which is then told at once.
  assert.equal(book.apply(event("boom", "firing", fired)), fired);
  assert.deepEqual(book.load([rule("boom", "ok")], fetch), []);
  const [boom] = book.list();
  assert.equal(boom.state, "firing");
  assert.deepEqual(boom.recent, [fired]);
  assert.equal(book.fetching.size, 0);
});

test("events that came during a fetch are applied again in their order", () => {
  const book = new AlertBook();
  book.load([rule("boom", "ok")]);
  const fetch = book.begin();
  const fired = firing("boom", 40);
  book.apply(event("boom", "firing", fired));
  book.apply(event("boom", "ok"));
  book.load([rule("boom", "firing", [fired])], fetch); // answered between the two events
  assert.equal(book.list()[0].state, "ok");
  assert.deepEqual(book.list()[0].recent, [fired]);
});
