// Which of the stylesheet's tag colours a name gets.

export const TAG_COLORS = 8; // tag-0 .. tag-7 in the stylesheet

const colors = new Map();

/** The tag colour (0 .. TAG_COLORS - 1) of `name`: the next one, in the order names are seen. */
export function colorOf(name) {
  if (!colors.has(name)) colors.set(name, colors.size % TAG_COLORS);
  return colors.get(name);
}
