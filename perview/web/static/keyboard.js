// The page's keys (listed in index.html's help): / filters the pane in focus, End follows again,
// ? shows the help and Esc hides it; e/E and w/W jump to the next/previous error or warning, z
// folds the entry in view. Keys typed into a field are the field's.

const JUMPS = { e: [1, "error"], E: [-1, "error"], w: [1, "warning"], W: [-1, "warning"] };

/** `page`: activePane(), followAll(), toggleHelp(), closeHelp(). */
export function bindKeys(page, target = document) {
  target.addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      page.closeHelp();
      return;
    }
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    const pane = page.activePane();
    if (e.key === "/" && pane) {
      e.preventDefault();
      pane.filterInput.focus();
    } else if (e.key === "End" && pane) {
      e.preventDefault();
      page.followAll();
    } else if (e.key === "?") {
      page.toggleHelp();
    } else if (JUMPS[e.key] && pane) {
      e.preventDefault();
      pane.jump(...JUMPS[e.key]);
    } else if (e.key === "z" && pane) {
      e.preventDefault();
      pane.toggleCurrentFold();
    }
  });
}
