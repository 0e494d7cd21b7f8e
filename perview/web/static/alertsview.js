// The alerts view: each rule's state and recent firings with their lines (and those lines in
// context), every notification channel's sends and failures, an operator's silence, the header
// button's badge while something fires, and browser notifications once the person allows them.
// What the rules are and which firings are news is alerts.js's; this module owns the DOM.

import { AlertBook, SILENCE_FOR, contextRows, contextUrl, notification, stateText } from "./alerts.js";
import { api, pageCredential } from "./credential.js";
import { $, el } from "./dom.js";
import { flash } from "./status.js";

// Without an event stream (no pane open) or while the view is open, polls keep the states, and
// the channels' counts (which change without an event), current; 5 s is as the metrics poll.
const POLL_MS = 5000;

const clockOf = (at) => {
  const when = new Date(at * 1000);
  const today = when.toDateString() === new Date().toDateString();
  return today ? when.toLocaleTimeString() : when.toLocaleString();
};

/** The view, with `page`: streaming() (alert events arrive), metricsShown(), hideOthers() (the
 *  metrics view), openSource(name) (the source's pane, showing what its ring holds). */
export class AlertsView {
  constructor(page) {
    this.page = page;
    this.book = new AlertBook();
    this.visible = false;
    this.absent = false; // the server has no alerts configured
    this.polledAt = 0;
    this.contexts = new Map(); // firing key -> its context box, kept across redraws
    this.root = $("alerts");
    this.button = $("view-alerts");
    this.badge = $("alerts-badge");
    this.notifyButton = el("button", { type: "button", dataset: { testid: "alerts-notify" } });
    this.notifyButton.addEventListener("click", () => this.askToNotify());
    this.rulesBox = el("div", { className: "alert-rules", dataset: { testid: "alert-rules" } });
    this.channelsBox = el("table", { className: "alert-channels", dataset: { testid: "alert-channels" } });
    this.root.append(
      el("div", { className: "alerts-bar" }, this.notifyButton),
      this.rulesBox,
      el("h2", { textContent: "Channels" }),
      this.channelsBox,
    );
  }

  /** Load the rules; with none configured the button stays away. */
  async start() {
    this.button.addEventListener("click", () => this.show());
    $("view-logs").addEventListener("click", () => this.hide());
    $("view-metrics").addEventListener("click", () => this.hide());
    await this.refresh();
    if (!this.absent) setInterval(() => this.poll(), POLL_MS);
  }

  poll() {
    if (this.absent || pageCredential().refused) return; // refused: the page says how to sign in
    if (!this.book.loaded || this.visible || !this.page.streaming()) this.refresh();
  }

  /** Fetch every rule. Firings found that the stream did not bring (none open, or it was down)
   *  are told as news too. */
  async refresh() {
    let list;
    const fetch = this.book.begin();
    try {
      const response = await api("api/alerts", { cache: "no-store" });
      if (response.status === 404) {
        this.absent = true; // this server has no alerts: nothing to poll
        return;
      }
      if (!response.ok) return;
      list = await response.json();
    } catch {
      return; // the connection indicator says so
    } finally {
      if (!list) this.book.fetching.delete(fetch);
    }
    this.polledAt = Date.now();
    this.button.hidden = list.length === 0; // a config without alerts: nothing to show
    this.tell(this.book.load(list, fetch));
    this.render();
  }

  /** The stream (re)opened: what it did not carry meanwhile is fetched. */
  connected() {
    if (this.book.loaded) this.refresh();
  }

  /** An `alert` event from the page's stream. */
  onEvent(event) {
    const news = this.book.apply(event);
    if (news) this.tell([news]);
    this.render();
  }

  // -- browser notifications -------------------------------------------------------------------

  /** Asked only when the person clicks: a page that asks on load is refused by habit. */
  async askToNotify() {
    await Notification.requestPermission();
    this.renderNotify();
  }

  tell(firings) {
    if (!("Notification" in globalThis) || Notification.permission !== "granted") return;
    for (const firing of firings) {
      const { title, body, tag } = notification(firing);
      const shown = new Notification(title, { body, tag });
      shown.addEventListener("click", () => {
        globalThis.focus();
        this.show();
      });
    }
  }

  renderNotify() {
    const button = this.notifyButton;
    if (!("Notification" in globalThis)) {
      button.hidden = true;
      return;
    }
    const permission = Notification.permission;
    button.disabled = permission !== "default";
    button.dataset.permission = permission;
    button.textContent =
      permission === "granted" ? "notifications on in this browser" : permission === "denied" ? "notifications blocked (the browser's site settings allow them)" : "notify me in this browser";
  }

  // -- the view --------------------------------------------------------------------------------

  /** Show the view; the log panes are only hidden, so they keep their lines and scroll. */
  show() {
    this.page.hideOthers();
    this.visible = true;
    $("panes").hidden = true;
    this.root.hidden = false;
    this.button.ariaPressed = "true";
    $("view-logs").ariaPressed = "false";
    this.render();
    if (Date.now() - this.polledAt > POLL_MS) this.refresh();
  }

  hide() {
    if (!this.visible) return;
    this.visible = false;
    this.root.hidden = true;
    this.button.ariaPressed = "false";
    if (!this.page.metricsShown()) {
      $("panes").hidden = false;
      $("view-logs").ariaPressed = "true";
    }
  }

  render() {
    const firing = this.book.firingCount;
    this.badge.textContent = String(firing);
    this.badge.hidden = firing === 0;
    this.button.classList.toggle("firing", firing > 0);
    this.button.title = firing ? `${firing} alert${firing === 1 ? "" : "s"} firing` : "alerts: each rule's state, its firings, the channels";
    if (!this.visible) return;
    this.renderNotify();
    const now = Date.now() / 1000;
    const rules = this.book.list();
    const held = new Set(rules.flatMap((rule) => rule.recent.map((f) => `${f.alert}@${f.at}`)));
    for (const key of this.contexts.keys()) if (!held.has(key)) this.contexts.delete(key);
    this.rulesBox.replaceChildren(...rules.map((rule) => this.ruleCard(rule, now)));
    if (!rules.length) this.rulesBox.append(el("p", { className: "alerts-empty", textContent: "No alerts configured." }));
    this.channelsBox.replaceChildren(
      el("tr", {}, ...["channel", "kind", "sent", "failed", "dropped", "last error"].map((h) => el("th", { textContent: h }))),
      ...this.book.channels().map((c) =>
        el(
          "tr",
          { dataset: { testid: "channel", name: c.name } },
          el("td", { textContent: c.name }),
          el("td", { textContent: c.kind }),
          el("td", { textContent: String(c.sent), dataset: { testid: "channel-sent" } }),
          el("td", { textContent: String(c.failed), className: c.failed ? "bad" : "", dataset: { testid: "channel-failed" } }),
          el("td", { textContent: String(c.dropped) }),
          el("td", { className: "bad", textContent: c.last_error ? `${c.last_error} (${clockOf(c.last_error_at)})` : "", dataset: { testid: "channel-error" } }),
        ),
      ),
    );
  }

  ruleCard(rule, now) {
    const what = rule.kind === "metric" ? rule.series : rule.sources.join(", ");
    const actions = el("span", { className: "alert-actions" });
    if (document.body.dataset.role === "viewer") {
      // Viewers watch: the server refuses them a silence anyway (403).
    } else if (rule.state === "silenced") {
      actions.append(this.silenceButton(rule.name, "0", "lift the silence", "alert-unsilence"));
    } else {
      actions.append(this.silenceButton(rule.name, SILENCE_FOR, "silence for 1 h", "alert-silence"));
    }
    const notifies = rule.channels.map((c) => c.name).join(", ") || "no channel";
    return el(
      "article",
      { className: "alert", dataset: { testid: "alert", name: rule.name, state: rule.state } },
      el(
        "header",
        {},
        el("h3", { textContent: rule.name }),
        el("span", { className: `alert-state alert-${rule.state}`, textContent: rule.state, dataset: { testid: "alert-state" } }),
        el("span", { className: "alert-since", textContent: stateText(rule, now), dataset: { testid: "alert-since" } }),
        actions,
      ),
      el("p", { className: "alert-about", textContent: `${rule.kind} on ${what}; notifies ${notifies}${rule.gaps ? `; ${rule.gaps.toLocaleString()} lines not looked at (it fell behind)` : ""}` }),
      rule.recent.length
        ? el("ol", { className: "firings" }, ...rule.recent.map((firing) => this.firingItem(firing)))
        : el("p", { className: "alert-about", textContent: "No firings yet." }),
    );
  }

  silenceButton(name, duration, label, testid) {
    const button = el("button", { type: "button", textContent: label, dataset: { testid } });
    button.addEventListener("click", () => this.silence(name, duration));
    return button;
  }

  firingItem(firing) {
    const key = `${firing.alert}@${firing.at}`;
    const lines = el("div", { className: "firing-lines" });
    for (const line of firing.lines) {
      lines.append(el("div", { className: "firing-line", textContent: line.part ? `${line.part}: ${line.text}` : line.text, dataset: { testid: "firing-line" } }));
    }
    const head = el(
      "div",
      { className: "firing-head" },
      el("time", { textContent: clockOf(firing.at), dateTime: new Date(firing.at * 1000).toISOString() }),
      el("span", { className: `firing-summary firing-${firing.state}`, textContent: firing.summary }),
    );
    if (!firing.sent) head.append(el("span", { className: "firing-held", textContent: "silenced: not sent" }));
    const box = this.contexts.get(key);
    if (firing.source) {
      const button = el("button", { type: "button", textContent: "in context", dataset: { testid: "firing-context" } });
      button.addEventListener("click", () => this.inContext(firing, key));
      head.append(button);
    }
    return el("li", { className: "firing", dataset: { testid: "firing" } }, head, lines, box ?? "");
  }

  /** The firing's lines among those around them: from recorded history where the source is
   *  recorded, else the source's pane (what its ring still holds). */
  async inContext(firing, key) {
    const response = await api(contextUrl(firing), { cache: "no-store" });
    if (response.status === 404 || response.status === 400) {
      flash(`${firing.source} is not recorded: its pane shows what Perview still holds`, 4000);
      this.page.openSource(firing.source);
      return;
    }
    if (!response.ok) {
      flash((await response.text()).trim(), 8000);
      return;
    }
    const rows = contextRows(await response.text(), firing);
    const box = el("div", { className: "firing-context", dataset: { testid: "firing-context-lines" } });
    for (const row of rows) {
      const when = row.time === null ? "" : `${new Date(row.time * 1000).toLocaleTimeString()} `;
      const className = row.note ? "context-note" : row.matched ? "context-match" : "";
      box.append(el("div", { className, textContent: `${when}${row.text}`, dataset: { testid: "context-line", matched: String(row.matched) } }));
    }
    if (!rows.length) box.append(el("div", { className: "context-note", textContent: "history holds nothing around this firing" }));
    this.contexts.set(key, box);
    this.render();
  }

  async silence(name, duration) {
    const response = await api(`api/alerts/${encodeURIComponent(name)}/silence?for=${duration}`, { method: "POST" });
    if (!response.ok) {
      flash((await response.text()).trim(), 8000);
      return;
    }
    this.book.replace(await response.json());
    this.render();
  }
}
