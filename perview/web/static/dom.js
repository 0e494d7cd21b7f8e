// The page's two DOM helpers, shared by its modules. Neither touches the DOM when imported.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

/** A new element: `props` set as properties (never markup), `dataset` as data-*, then children. */
export function el(tag, { dataset, ...props } = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  if (dataset) Object.assign(node.dataset, dataset);
  node.append(...children);
  return node;
}
