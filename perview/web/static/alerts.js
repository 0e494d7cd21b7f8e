// The alerts the server evaluates, as the page knows them: each rule from api/alerts, kept up to
// date by the stream's `alert` events, and which firings are news (for a browser notification).
// Pure: no DOM, no fetch, so Node tests import it.

export const RECENT = 10; // firings kept per rule, as the server keeps (alerts/rules.py RECENT)
export const SILENCE_FOR = "1h"; // the operator's one button: long enough to fix, short enough to forget
// A firing is evaluated as its block arrives, so its lines were written just before `at`: this
// much history before it (and a little after, for what followed) shows them in context.
export const CONTEXT_BEFORE = 60;
export const CONTEXT_AFTER = 10;
const NOTIFIED = 200; // firings remembered as already told, so a poll and an event tell one once

/** The key that names one firing across the API and the event stream. */
const keyOf = (firing) => `${firing.alert}@${firing.at}`;

/** Every rule's state; `load` and `apply` say which firings are news. */
export class AlertBook {
  constructor() {
    this.rules = new Map(); // name -> the rule as /api/alerts describes it (recent newest first)
    this.loaded = false;
    this.told = new Set();
    this.fetching = new Set(); // per api/alerts fetch in flight: the events applied meanwhile
  }

  /** A fetch of api/alerts starts. Its answer may predate events that arrive before it does, so
   *  `load(list, fetch)` applies those events again over it, in their order. */
  begin() {
    const since = [];
    this.fetching.add(since);
    return since;
  }

  /** The whole list from api/alerts. Returns the firings not seen before, oldest first: none on
   *  the first load (what fired before the page opened is not news). */
  load(list, fetch = null) {
    const fresh = [];
    const names = new Set();
    for (const rule of list) {
      names.add(rule.name);
      const recent = rule.recent ?? [];
      for (const firing of [...recent].reverse()) if (this.note(firing) && this.loaded) fresh.push(firing);
      this.rules.set(rule.name, { ...rule, recent });
    }
    for (const name of [...this.rules.keys()]) if (!names.has(name)) this.rules.delete(name);
    this.loaded = true;
    if (fetch) {
      this.fetching.delete(fetch);
      for (const event of fetch) this.update(event); // told when they came: not news again
    }
    return fresh.filter(worthTelling);
  }

  /** One rule as the server answered a silence (the whole rule, with its recent firings). */
  replace(rule) {
    for (const firing of rule.recent ?? []) this.note(firing);
    this.rules.set(rule.name, { ...rule, recent: rule.recent ?? [] });
  }

  /** An `alert` event: the rule without `recent`, and `firing` the firing it sent (or null).
   *  Returns that firing when it is news worth a notification, else null. */
  apply(event) {
    for (const since of this.fetching) since.push(event);
    const news = event.firing ? this.note(event.firing) : false;
    this.update(event);
    return news && worthTelling(event.firing) ? event.firing : null;
  }

  update(event) {
    const { firing, ...rule } = event;
    const old = this.rules.get(rule.name);
    let recent = old?.recent ?? [];
    if (firing && !recent.some((f) => keyOf(f) === keyOf(firing))) recent = [firing, ...recent].slice(0, RECENT);
    this.rules.set(rule.name, { ...old, ...rule, recent });
  }

  /** Rules in the order the config names them. */
  list() {
    return [...this.rules.values()];
  }

  /** How many rules are firing now (a silenced one is not counted: someone already knows). */
  get firingCount() {
    return this.list().filter((rule) => rule.state === "firing").length;
  }

  /** Every channel the rules notify, once, with the rules' counts added up. */
  channels() {
    const byName = new Map();
    for (const rule of this.rules.values()) {
      for (const channel of rule.channels ?? []) {
        const sum = byName.get(channel.name);
        if (!sum) {
          byName.set(channel.name, { ...channel, alerts: [rule.name] });
          continue;
        }
        for (const key of ["sent", "failed", "dropped"]) sum[key] += channel[key];
        sum.alerts.push(rule.name);
      }
    }
    return [...byName.values()];
  }

  /** Remember `firing`; true when it was not known before. */
  note(firing) {
    const key = keyOf(firing);
    if (this.told.has(key)) return false;
    this.told.add(key);
    if (this.told.size > NOTIFIED) this.told.delete(this.told.values().next().value);
    return true;
  }
}

/** A firing a notification is for: one that went to the channels (a silenced rule's did not). */
function worthTelling(firing) {
  return firing.sent !== false;
}

/** "5 s", "3 min", "2 h", "4 d": how long `seconds` is, roughly. */
export function span(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

/** What a rule's state says in words at `now` (epoch seconds): "firing for 3 min",
 *  "silenced for 55 min more by olga", "ok for 2 h", "ok". */
export function stateText(rule, now) {
  if (rule.state === "silenced") {
    const by = rule.silenced_by ? ` by ${rule.silenced_by}` : "";
    // Rounded up to the minute: "1 h more" just after a silence for 1 h, whatever the clocks.
    const left = Math.ceil((rule.silenced_until - now) / 60) * 60;
    return `silenced for ${span(left)} more${by}`;
  }
  if (rule.since === null || rule.since === undefined) return rule.state;
  return `${rule.state} for ${span(now - rule.since)}`;
}

/** A browser notification's title, body and tag (one per rule: a newer firing replaces it). */
export function notification(firing) {
  const first = firing.lines?.[0]?.text;
  const title = firing.state === "resolved" ? `resolved: ${firing.alert}` : `alert: ${firing.alert}`;
  return { title, body: first ? `${firing.summary}\n${first}` : firing.summary, tag: `perview-alert-${firing.alert}` };
}

/** The history request that shows a firing's lines among those around them (a path for api()). */
export function contextUrl(firing) {
  const query = new URLSearchParams({
    since: String(Math.floor(firing.at - CONTEXT_BEFORE)),
    until: String(Math.ceil(firing.at + CONTEXT_AFTER)),
    format: "json",
  });
  return `api/sources/${encodeURIComponent(firing.source)}/history?${query}`;
}

/** History's JSON lines (the body of `contextUrl`) as rows {text, time, matched, note}: the
 *  firing's own lines marked, and what history lacks said in place. Marked by text: history
 *  numbers lines its own way (across restarts), not by the ring's ids the firing carries. */
export function contextRows(body, firing) {
  const texts = new Set(firing.lines.map((line) => line.text));
  const rows = [];
  for (const raw of body.split("\n")) {
    if (!raw.trim()) continue;
    const record = JSON.parse(raw);
    if (record.type === "line") {
      rows.push({ text: record.text, time: record.at, matched: texts.has(record.text), note: false });
    } else if (record.type === "gap" || record.type === "damaged") {
      const what = record.type === "gap" ? "not recorded" : "unreadable";
      rows.push({ text: `${record.count} lines ${what} (from ${record.from} to ${record.to})`, time: null, matched: false, note: true });
    } else if (record.type === "event") {
      rows.push({ text: record.text, time: record.at, matched: false, note: true });
    }
  }
  return rows;
}
