// The page's credential, without a browser: what it takes from the address, what it sends, what
// it keeps and forgets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Credential } from "../../perview/web/static/credential.js";

const KEY = "perview.session:/";

/** A Credential over an in-memory storage and a server that answers with `answer(url, init)`. */
function make(answer = () => new Response("{}")) {
  const stored = new Map();
  const storage = {
    getItem: (key) => stored.get(key) ?? null,
    setItem: (key, value) => stored.set(key, String(value)),
    removeItem: (key) => stored.delete(key),
  };
  const sent = [];
  const fetcher = async (url, init) => {
    sent.push({ url, init, authorization: new Headers(init.headers).get("Authorization") });
    return answer(url, init);
  };
  return { credential: new Credential(storage, KEY, fetcher), stored, sent };
}

function address(hash) {
  const replaced = [];
  const location = { pathname: "/pv/", search: "?source=a", hash };
  const history = { state: null, replaceState: (state, title, url) => replaced.push(url) };
  return { location, history, replaced };
}

test("a token in the fragment is taken off the address and traded for a session", async () => {
  const { credential, stored, sent } = make(() => Response.json({ session: "-~id~99~mac" }));
  const { location, history, replaced } = address("#token=s3cret&keep=1");
  assert.equal(await credential.arrive(location, history), true);
  assert.deepEqual(replaced, ["/pv/?source=a#keep=1"]);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].url, "api/session");
  assert.equal(sent[0].init.method, "POST");
  assert.equal(sent[0].init.credentials, "omit");
  assert.equal(sent[0].authorization, "Bearer s3cret");
  assert.equal(stored.get(KEY), "-~id~99~mac");
});

test("a session in the fragment is kept as it is, and says where the way here began", async () => {
  const { credential, stored, sent } = make();
  const { location, history, replaced } = address("#session=olga~id~99~a%2Bb&arrival=linked");
  assert.equal(await credential.arrive(location, history), true);
  assert.deepEqual(replaced, ["/pv/?source=a"]);
  assert.equal(sent.length, 0);
  assert.equal(stored.get(KEY), "olga~id~99~a+b");
  assert.equal(credential.linked, true);
});

test("an address without a credential is left alone", async () => {
  const { credential } = make();
  const { location, history, replaced } = address("#top");
  assert.equal(await credential.arrive(location, history), true);
  assert.deepEqual(replaced, []);
  assert.equal(credential.linked, false);
});

test("a refused token keeps nothing and says so", async () => {
  const { credential, stored } = make(() => new Response("no", { status: 401 }));
  const { location, history, replaced } = address("#token=wrong");
  assert.equal(await credential.arrive(location, history), false);
  assert.deepEqual(replaced, ["/pv/?source=a"]);
  assert.equal(stored.size, 0);
});

test("every request carries the session as a header and never a cookie", async () => {
  const { credential, sent } = make();
  credential.keep("olga~id~99~mac");
  await credential.api("api/sources", { cache: "no-store", headers: { Accept: "text/event-stream" } });
  assert.equal(sent[0].authorization, "Bearer olga~id~99~mac");
  assert.equal(new Headers(sent[0].init.headers).get("Accept"), "text/event-stream");
  assert.equal(sent[0].init.credentials, "omit");
  assert.equal(sent[0].init.cache, "no-store");
});

test("a refusal is told once, forgets the refused session, and a new one is told too", async () => {
  const { credential, stored } = make(() => new Response("no", { status: 401 }));
  const told = [];
  credential.addEventListener("refused", () => told.push("refused"));
  credential.addEventListener("signed-in", () => told.push("signed-in"));
  credential.keep("old~id~99~mac");
  await credential.api("api/sources");
  await credential.api("api/metrics");
  assert.deepEqual(told, ["refused"]);
  assert.equal(stored.has(KEY), false);
  credential.keep("new~id~99~mac");
  assert.deepEqual(told, ["refused", "signed-in"]);
  assert.equal(credential.refused, false);
});

test("a refusal of an old session leaves the one another tab has kept since", async () => {
  let credential;
  const made = make(() => {
    credential.storage.setItem(KEY, "newer~id~99~mac"); // another tab logs in meanwhile
    return new Response("no", { status: 401 });
  });
  credential = made.credential;
  credential.keep("old~id~99~mac");
  await credential.api("api/sources");
  assert.equal(made.stored.get(KEY), "newer~id~99~mac");
});
