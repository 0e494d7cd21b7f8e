// What a download holds, without a browser: one rule for every download, plain text.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fullHistory, shownText } from "../../perview/web/static/downloads.js";
import { LINE, LineStore, MARK, View } from "../../perview/web/static/store.js";

test("the lines shown are saved as plain text, Perview's notes marked as in the text stream", () => {
  const store = new LineStore(10);
  const view = new View();
  view.push(store.push("started (pid 1)", "a", "", 0, 0, MARK));
  view.push(store.push("\x1b[31merror\x1b[0m: disk full", "a", "", 1, 0, LINE));
  store.push("not in the view", "a", "", 2, 0, LINE);
  assert.equal(shownText(store, view), "[perview] started (pid 1)\nerror: disk full\n");
});

test("the full history is saved as plain text too, each source's in turn", async () => {
  const bodies = { a: "\x1b[1mbold\x1b[0m a\n", b: "[perview] exited with status 0\n" };
  const api = async (url) => {
    const name = decodeURIComponent(url.split("/")[2]);
    return { ok: true, text: async () => bodies[name] };
  };
  assert.equal(await fullHistory(api, ["a", "b"]), "bold a\n[perview] exited with status 0\n");
});

test("a refused history names its source and the server's reason", async () => {
  const api = async () => ({ ok: false, text: async () => "forbidden\n" });
  await assert.rejects(fullHistory(api, ["a"]), { message: "forbidden", source: "a" });
});
