// A pane's regular-expression filter, run in a dedicated worker (see filter.js): a pattern from a
// link can backtrack for hours on a crafted line, and here the page can end it.
//
// Protocol. This worker posts {ready: true} once loaded. Each request is {id, source, flags,
// invert, texts}; the answer is {id, keep}: a Uint8Array with 1 for each text that passes (that
// matches, or with `invert` does not), transferred, not copied.

let compiled = null; // the last pattern, compiled: consecutive batches share it

self.onmessage = ({ data }) => {
  const { id, source, flags, invert, texts } = data;
  if (compiled === null || compiled.source !== source || compiled.flags !== flags) {
    compiled = new RegExp(source, flags); // checked by the page already: it compiles
  }
  const keep = new Uint8Array(texts.length);
  for (let i = 0; i < texts.length; i++) keep[i] = compiled.test(texts[i]) !== invert ? 1 : 0;
  self.postMessage({ id, keep }, [keep.buffer]);
};

self.postMessage({ ready: true });
