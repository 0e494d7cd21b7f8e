// Copying a link: the clipboard where the browser allows it (a secure context, a user's click),
// else a prompt the reader can copy from.

/** Copy `text`; resolves with whether it reached the clipboard (if not, it was offered). */
export async function copyText(text, clipboard = globalThis.navigator?.clipboard) {
  try {
    await clipboard.writeText(text);
    return true;
  } catch {
    prompt("Copy this link:", text);
    return false;
  }
}
