// Regex highlights, run in a dedicated worker (see highlights.js): a pattern from a link can
// backtrack for hours on a crafted line, and here the page can end it.
//
// Protocol, that of filter-worker.js, so that filter.js's FilterWorker (and its budget) drives it.
// This worker posts {ready: true} once loaded. Each request is {id, patterns: [{source, flags}],
// texts}; the answer is {id, keep}: an Int32Array of matches, four numbers each (the text's
// index, the match's start and end, the pattern's index), transferred, not copied.

let compiled = []; // the last patterns, compiled: consecutive batches share them
let sources = "";

self.onmessage = ({ data }) => {
  const { id, patterns, texts } = data;
  const key = JSON.stringify(patterns);
  if (key !== sources) {
    compiled = patterns.map(({ source, flags }) => new RegExp(source, flags)); // checked by the page: they compile
    sources = key;
  }
  const found = [];
  for (let t = 0; t < texts.length; t++) {
    for (let p = 0; p < compiled.length; p++) {
      for (const match of texts[t].matchAll(compiled[p])) {
        if (match[0]) found.push(t, match.index, match.index + match[0].length, p);
      }
    }
  }
  const keep = Int32Array.from(found);
  self.postMessage({ id, keep }, [keep.buffer]);
};

self.postMessage({ ready: true });
