// The page's keys (listed in index.html's help): / filters the pane in focus, End follows again,
// ? shows the help and Esc hides it. Keys typed into a field are the field's.

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
    }
  });
}
