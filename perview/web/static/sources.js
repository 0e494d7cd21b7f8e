// What the page knows of each source: the API's description (polled, for the figures that change:
// viewers, lines per second) merged with what the event stream says at once (states). Pure but
// for the fetch it is given.

/** The sidebar's short badge; its tooltip is the server's whole summary. */
export function describeState(info) {
  if (info.state === "exited") return info.status < 0 ? "killed" : `exited ${info.status}`;
  return info.state;
}

/** Why a source is not doing its work, in the server's words ("" when it is): the reason of a
 *  source waiting for its file or host, or that failed to start. */
export function troubleOf(info) {
  if (info.state !== "waiting" && info.state !== "failed") return "";
  return info.reason || info.summary || "";
}

/** Sources in the sidebar's order: [[group, [info, ...]], ...], the ungrouped ones ("") first. */
export function groupSources(infos) {
  const groups = new Map([["", []]]);
  for (const info of infos) {
    const group = info.group || "";
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(info);
  }
  return [...groups].filter(([, members]) => members.length);
}

export class Sources {
  /** `fetchList()` resolves with api/sources' list, or null when it could not be had. */
  constructor(fetchList, now = () => performance.now()) {
    this.fetchList = fetchList;
    this.now = now;
    this.infos = new Map(); // name -> info, in the server's order
  }

  has(name) {
    return this.infos.has(name);
  }

  names() {
    return [...this.infos.keys()];
  }

  titleOf(name) {
    return this.infos.get(name)?.title || name;
  }

  /** What history `name` has, as the API says: "recorded", "file" (its files, searched in
   *  place) or "none". */
  historyOf(name) {
    return this.infos.get(name)?.history ?? "none";
  }

  /** The tag of a line of `name` that comes from `part`: a host of a merged source ("app@web1")
   *  or a file of a glob ("logs › a.log"), as the source's `parts` says. */
  partTagOf(name, part) {
    return this.titleOf(name) + (this.infos.get(name)?.parts === "files" ? " › " : "@") + part;
  }

  /** Poll the API: returns whether anything was had. Lines per second are from the last poll. */
  async refresh() {
    const list = await this.fetchList();
    if (!list) return false;
    const now = this.now();
    for (const info of list) {
      const old = this.infos.get(info.name);
      if (old?.polledAt) info.rate = ((info.lines - old.lines) * 1000) / (now - old.polledAt);
      info.polledAt = now;
      this.infos.set(info.name, { ...old, ...info });
    }
    return true;
  }

  /** A source's description from the event stream. */
  merge(info) {
    this.infos.set(info.name, { ...this.infos.get(info.name), ...info });
  }

  /** A `state` event: returns whether the source is known. */
  setState(state) {
    const info = this.infos.get(state.source);
    if (!info) return false;
    Object.assign(info, { state: state.state, status: state.status, reason: state.reason, by: state.by, summary: state.summary });
    return true;
  }
}
