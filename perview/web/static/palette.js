// Which of the stylesheet's tag colours a name gets: derived from the name alone, so a source or
// host keeps its colour across reloads, sessions and browsers, whatever order it was seen in.

export const TAG_COLORS = 8; // tag-0 .. tag-7 in the stylesheet

/** The tag colour (0 .. TAG_COLORS - 1) of `name`: its FNV-1a hash, folded into the palette. */
export function colorOf(name) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % TAG_COLORS;
}
