// What the page knows of its sources, the sidebar's grouping and the colours names get, without
// a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Sources, describeState, groupSources, troubleOf } from "../../perview/web/static/sources.js";
import { TAG_COLORS, colorOf } from "../../perview/web/static/palette.js";

test("the sidebar lists ungrouped sources first, then each group in the order first seen", () => {
  const infos = [{ name: "web", group: "hosts" }, { name: "app" }, { name: "db", group: "data" }, { name: "mail", group: "hosts" }];
  const grouped = groupSources(infos).map(([group, members]) => [group, members.map((i) => i.name)]);
  assert.deepEqual(grouped, [["", ["app"]], ["hosts", ["web", "mail"]], ["data", ["db"]]]);
  assert.deepEqual(groupSources([{ name: "x", group: "g" }]).map(([g]) => g), ["g"]);
});

test("a colour depends on the name alone, not on the order names were seen in", () => {
  const names = ["web1", "web2", "db", "syslog", "app@web1"];
  const once = names.map(colorOf);
  const reversed = [...names].reverse().map(colorOf).reverse();
  assert.deepEqual(once, reversed);
  for (const c of once) assert.ok(Number.isInteger(c) && c >= 0 && c < TAG_COLORS);
  const spread = new Set(Array.from({ length: 64 }, (_, i) => colorOf(`host${i}`)));
  assert.equal(spread.size, TAG_COLORS); // every colour is used
});

test("a waiting or failed source says why; a running or stopped one has nothing to explain", () => {
  assert.equal(troubleOf({ state: "waiting", reason: "ssh: connect to host web1: Connection refused" }), "ssh: connect to host web1: Connection refused");
  assert.equal(troubleOf({ state: "failed", reason: null, summary: "failed to start: nope" }), "failed to start: nope");
  assert.equal(troubleOf({ state: "running", reason: null }), "");
  assert.equal(troubleOf({ state: "stopped", reason: "no viewers" }), "");
});

test("the badge of an ended command says how it ended", () => {
  assert.equal(describeState({ state: "exited", status: 3 }), "exited 3");
  assert.equal(describeState({ state: "exited", status: -15 }), "killed");
  assert.equal(describeState({ state: "waiting" }), "waiting");
});

test("polling keeps what the stream said and works out lines per second", async () => {
  const lists = [[{ name: "a", lines: 10, state: "running" }], [{ name: "a", lines: 30, state: "running" }], null];
  let now = 1000;
  const sources = new Sources(async () => lists.shift(), () => now);
  assert.equal(await sources.refresh(), true);
  sources.merge({ name: "a", title: "A log", epoch: "e1" });
  now = 3000;
  await sources.refresh();
  const info = sources.infos.get("a");
  assert.equal(info.rate, 10);
  assert.equal(sources.titleOf("a"), "A log");
  assert.equal(sources.titleOf("unknown"), "unknown");
  assert.equal(await sources.refresh(), false); // the API did not answer: nothing changes
  assert.equal(sources.setState({ source: "a", state: "waiting", reason: "no file" }), true);
  assert.equal(troubleOf(sources.infos.get("a")), "no file");
  assert.equal(sources.setState({ source: "nope", state: "running" }), false);
});

test("a line's part is tagged as what it is: a file of a glob, or a host", async () => {
  const sources = new Sources(async () => [
    { name: "logs", title: "App logs", parts: "files" },
    { name: "app", parts: "hosts" },
  ]);
  await sources.refresh();
  assert.equal(sources.partTagOf("logs", "a.log"), "App logs › a.log");
  assert.equal(sources.partTagOf("app", "web1"), "app@web1");
});
