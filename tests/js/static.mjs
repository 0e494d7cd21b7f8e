// Imports a module of the page (perview/web/static/) into Node for its unit tests.
//
// The page's modules are plain `.js` ES modules with no package.json beside them: Node 20.19+
// sees their syntax and loads them as modules, but Debian bookworm's Node 18 would take them for
// CommonJS. Importing each source as a data: URL works on both; a module's `./other.js` imports
// are rewritten to the other module's data: URL (one per module, so a module imported twice is
// one instance, as in the browser).

import { readFile } from "node:fs/promises";

const STATIC = new URL("../../perview/web/static/", import.meta.url);
const IMPORT = /(from\s+|import\s+)"\.\/([\w.-]+\.js)"/g;
const urls = new Map(); // module name -> its data: URL

async function dataUrl(name) {
  if (!urls.has(name)) {
    let source = await readFile(new URL(name, STATIC), "utf8");
    for (const [, , dep] of [...source.matchAll(IMPORT)]) {
      source = source.replaceAll(`"./${dep}"`, `"${await dataUrl(dep)}"`);
    }
    urls.set(name, "data:text/javascript;base64," + Buffer.from(source).toString("base64"));
  }
  return urls.get(name);
}

export async function load(name) {
  return import(await dataUrl(name));
}
