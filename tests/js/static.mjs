// Imports a module of the page (perview/web/static/) into Node for its unit tests.
//
// The page's modules are plain `.js` ES modules with no package.json beside them: Node 20.19+
// sees their syntax and loads them as modules, but Debian bookworm's Node 18 would take them for
// CommonJS. Importing the source as a data: URL works on both. Leaf modules only: a data: URL
// has nowhere to resolve `./other.js` from.

import { readFile } from "node:fs/promises";

const STATIC = new URL("../../perview/web/static/", import.meta.url);

export async function load(name) {
  const source = await readFile(new URL(name, STATIC), "utf8");
  return import("data:text/javascript;base64," + Buffer.from(source).toString("base64"));
}
