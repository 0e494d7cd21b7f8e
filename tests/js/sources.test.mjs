// What the page knows of its sources and the sidebar's grouping, without a browser.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Sources, describeState, groupSources } from "../../perview/web/static/sources.js";

test("the sidebar lists ungrouped sources first, then each group in the order first seen", () => {
  const infos = [{ name: "web", group: "hosts" }, { name: "app" }, { name: "db", group: "data" }, { name: "mail", group: "hosts" }];
  const grouped = groupSources(infos).map(([group, members]) => [group, members.map((i) => i.name)]);
  assert.deepEqual(grouped, [["", ["app"]], ["hosts", ["web", "mail"]], ["data", ["db"]]]);
  assert.deepEqual(groupSources([{ name: "x", group: "g" }]).map(([g]) => g), ["g"]);
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
  assert.equal(sources.infos.get("a").reason, "no file");
  assert.equal(sources.setState({ source: "nope", state: "running" }), false);
});
