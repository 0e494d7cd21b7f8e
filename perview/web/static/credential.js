// The page's credential: a session, kept in localStorage (which is per origin, so per port) and
// sent as `Authorization: Bearer` with every request the page makes. Never a cookie: a browser
// sends cookies to every port of a host, so any other service on the machine would get them.
// A session arrives in the address's fragment, which reaches no server, no log and no Referer:
// `#session=` after the login form, `#token=` from the URL Perview prints (traded for a session).

const FRAGMENT_KEYS = ["session", "token", "arrival"];

/** A credential kept in `storage` under `key`, used for requests made with `fetcher`. Dispatches
 *  "refused" when the server refuses it (once, until "signed-in" after a new one is taken). */
export class Credential extends EventTarget {
  constructor(storage, key, fetcher) {
    super();
    this.storage = storage;
    this.key = key;
    this.fetcher = fetcher;
    this.refused = false;
    this.linked = false; // the fragment said the way here began on another site
  }

  /** The session held, or null. Read at each request, so a login in another tab counts here. */
  get value() {
    try {
      return this.storage.getItem(this.key);
    } catch {
      return null; // storage disabled: the page has no credential
    }
  }

  keep(session) {
    this.storage.setItem(this.key, session);
    if (this.refused) {
      this.refused = false;
      this.dispatchEvent(new Event("signed-in"));
    }
  }

  forget() {
    this.storage.removeItem(this.key);
  }

  /** Take a credential from `location`'s fragment (and what else it says), and take it off the
   *  address at once. Resolves, once a token is traded, with false if it was refused. */
  async arrive(location, history) {
    const fragment = new URLSearchParams(location.hash.slice(1));
    const [session, token] = [fragment.get("session"), fragment.get("token")];
    this.linked = fragment.get("arrival") === "linked";
    if (!FRAGMENT_KEYS.some((key) => fragment.has(key))) return true;
    for (const key of FRAGMENT_KEYS) fragment.delete(key);
    const rest = fragment.toString();
    history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
    if (session) this.keep(session);
    return token ? this.trade(token) : true;
  }

  /** Trade the token for a session: false when the server refused the token. */
  async trade(token) {
    const response = await this.fetcher("api/session", {
      method: "POST",
      headers: { Authorization: `Bearer ${token}` },
      credentials: "omit",
      cache: "no-store",
    });
    if (response.status === 401) return false;
    if (!response.ok) throw new Error(`perview: the token was not traded (${response.status})`);
    const { session } = await response.json();
    if (session) this.keep(session); // null: this server asks for no credential
    return true;
  }

  /** fetch(url, init) with the credential; a refusal is dispatched as "refused". */
  async api(url, init = {}) {
    const headers = new Headers(init.headers);
    const sent = this.value;
    if (sent) headers.set("Authorization", `Bearer ${sent}`);
    const response = await this.fetcher(url, { ...init, headers, credentials: "omit" });
    if (response.status === 401) this.refuse(sent);
    return response;
  }

  refuse(sent) {
    // A refused session is of no more use; but another tab may have kept a new one meanwhile.
    if (sent !== null && this.value === sent) this.forget();
    if (this.refused) return;
    this.refused = true;
    this.dispatchEvent(new Event("refused"));
  }

  /** End the session on the server, and forget it here. */
  async logOut() {
    try {
      await this.api("logout", { method: "POST", cache: "no-store" });
    } finally {
      this.forget();
    }
  }
}

let page = null;

/** The page's own credential, made on first use (so importing this module touches nothing). Its
 *  key carries the page's path: two Perviews behind one proxy, under two prefixes, share an
 *  origin and so a storage. */
export function pageCredential() {
  const base = new URL(".", globalThis.location.href).pathname;
  page ??= new Credential(globalThis.localStorage, `perview.session:${base}`, globalThis.fetch.bind(globalThis));
  return page;
}

/** fetch(url, init) with the page's credential. */
export function api(url, init) {
  return pageCredential().api(url, init);
}
