"""Throughput: `perview run -- seq 1 N` read by curl, against `seq 1 N | cat > /dev/null`.

Each perview trial is one `curl` of the text stream against an already running server. The
figure is curl's own `time_total`, from connecting to the last byte, so it includes what a
viewer waits for: the HTTP request, starting the command behind its guard, and relaying every
byte; it leaves out curl's process start-up (about 10 ms here, four times what the whole
`seq | cat` set-up costs), which is shown separately. The baseline is the same `seq` piped
through `cat` in the same run. Target (bench/README.md): 0.8 of the pipe; issue 2 asks 0.7.

The server serves the same command twice: as every source is by default (each block's lines
classified as they enter the ring) and with `format = "raw"` (not classified), read in turn, each
after a pause (so that each finds the server's spare process guard ready), so the cost of
classification is a ratio of the same run too. Target (issue 13): 0.85 or more.
`seq` output is the classifier's cheapest case (no byte any rule needs); `--log` relays the
same number of lines of the test corpus's real formats instead (`cat` of a file made of them),
and times the second half of each stream too: a run this short is dominated by the burst the
classifier saves up while a source is quiet (perview/levels.py), its second half by the share of
the loop it may take for as long as a source writes flat out.

    python bench/throughput.py [--lines 3000000] [--trials 9] [--log]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import serve_config

from perview.sources.process import REPLACE_AFTER

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "levels"
CONFIG = """[server]
system_metrics = false
[sources.classified]
command = {command}
[sources.raw]
command = {command}
format = "raw"
"""


def write_log(path: Path, lines: int) -> None:
    """`lines` lines of the corpus's formats, in turn (nginx, Python tracebacks, JSON, ...)."""
    corpus = b"".join(p.read_bytes() for p in sorted(CORPUS.glob("*.log")))
    have = corpus.count(b"\n")
    whole, part = divmod(lines, have)
    path.write_bytes(corpus * whole + b"".join(corpus.splitlines(keepends=True)[:part]))


def cpu_seconds(pid: int) -> float:
    """CPU seconds of every thread of `pid` so far, from the scheduler's nanosecond counts
    (/proc/PID/stat counts in 10 ms ticks, as long as a whole trial here)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def second_half(port: int, path: str, size: int) -> float:
    """Seconds the second half of a stream of `size` bytes took to arrive: the rate the server
    keeps up once the classifier's saved-up burst (spent on the first lines) is gone. Read as
    bytes into one buffer (chunk framing and all, which is a few bytes a chunk), so that this
    reader keeps up with the server as curl does."""
    buffer = bytearray(1 << 20)
    got, half = 0, None
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        while n := sock.recv_into(buffer):
            got += n
            if half is None and got >= size // 2:
                half = time.perf_counter()
        end = time.perf_counter()
    assert half is not None, f"{path}: {got} bytes of {size}"
    return end - half


def time_pipe(command: list[str]) -> float:
    start = time.perf_counter()
    line = shlex.join(command) + " | cat > /dev/null"
    subprocess.run(line, shell=True, check=True, timeout=120)
    return time.perf_counter() - start


def time_curl(url: str) -> tuple[float, float]:
    """(curl's time from connecting to the last byte, wall time including curl's start-up)."""
    start = time.perf_counter()
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{time_total}", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(result.stdout), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=3_000_000)
    parser.add_argument("--trials", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 trials")
    parser.add_argument("--log", action="store_true", help="the corpus's formats, not seq")
    parser.add_argument(
        "--pause",
        type=float,
        default=0.5,
        help=f"seconds before each read, more than {REPLACE_AFTER} (default %(default)s)",
    )
    args = parser.parse_args()
    if args.pause <= REPLACE_AFTER:
        parser.error(f"--pause must be more than {REPLACE_AFTER} s (the spare guard's delay)")
    trials = 3 if args.quick else args.trials
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed (apt-get install curl)")
    baseline = []
    relayed = []
    raw = []
    cpu: dict[str, list[float]] = {"classified": [], "raw": []}
    skipped: list[int] = []  # lines of each classified run left without levels (over budget)
    halves: dict[str, list[float]] = {"classified": [], "raw": []}
    with tempfile.TemporaryDirectory(prefix="perview-bench-") as tmp:
        command = ["seq", "1", str(args.lines)]
        if args.log:
            write_log(Path(tmp, "corpus.log"), args.lines)
            command = ["cat", str(Path(tmp, "corpus.log"))]
        size = len(subprocess.run(command, capture_output=True, check=True).stdout)
        config = Path(tmp, "perview.toml")
        config.write_text(CONFIG.format(command=json.dumps(command)))
        with serve_config(config, "classified") as server:
            url = server.base + "/api/sources/classified/text"
            raw_url = server.base + "/api/sources/raw/text"
            time_curl(url)  # warm-up: page cache, the first guard
            time_curl(raw_url)
            for trial in range(trials):  # interleaved, so all see the same machine
                time.sleep(args.pause)
                baseline.append(time_pipe(command))
                # Alternating which goes first, so neither always follows the pipe.
                first, second = (url, raw_url) if trial % 2 else (raw_url, url)
                for target in (first, second):
                    # Each read starts its command as the first after a pause: the server keeps
                    # one guard started ahead (perview/sources/process.py) and starts the next
                    # REPLACE_AFTER after one is taken, so a read right after another waited
                    # for an interpreter's start-up (20-40 ms here) the first did not, and the
                    # second of each trial is the classified one in more trials than not
                    # whenever their number is odd.
                    time.sleep(args.pause)
                    before = server.source()["unclassified"]
                    used = cpu_seconds(server.proc.pid)
                    (relayed if target == url else raw).append(time_curl(target))
                    used = cpu_seconds(server.proc.pid) - used
                    cpu["classified" if target == url else "raw"].append(used)
                    if target == url:
                        skipped.append(server.source()["unclassified"] - before)
                if args.log:
                    for name in ("classified", "raw") if trial % 2 else ("raw", "classified"):
                        path = f"/api/sources/{name}/text"
                        halves[name].append(second_half(server.port, path, size))

    base = statistics.median(baseline)
    ours = statistics.median(t for t, _ in relayed)
    wall = statistics.median(w for _, w in relayed)
    unclassified = statistics.median(t for t, _ in raw)
    mb = size / 1e6
    payload = f"{args.lines} lines of the corpus" if args.log else f"seq 1 {args.lines}"
    print(f"payload: {payload} = {mb:.1f} MB, {trials} trials each, medians")
    pipe = "cat FILE | cat > /dev/null" if args.log else "seq | cat > /dev/null"
    print(f"  {pipe:33s}  {base * 1000:7.1f} ms  {mb / base:5.0f} MB/s")
    print(f"  perview, read by curl              {ours * 1000:7.1f} ms  {mb / ours:5.0f} MB/s")
    print(f"    (with curl's own start-up: {wall * 1000:.1f} ms, ratio {base / wall:.2f})")
    print(
        f"  perview, format raw                {unclassified * 1000:7.1f} ms"
        f"  {mb / unclassified:5.0f} MB/s"
    )
    print(f"  ratio (pipe time / perview time):  {base / ours:.2f}   (target 0.8, issue 0.7)")
    print(f"  classified / raw (raw time / time): {unclassified / ours:.2f}   (issue 13: 0.85)")
    # Each trial reads the two back to back, so a swing in the machine's load hits both: the
    # median of the trials' own ratios is steadier than the ratio of the two medians.
    paired = statistics.median(r / c for (c, _), (r, _) in zip(relayed, raw, strict=True))
    print(f"    (median of each trial's ratio: {paired:.2f})")
    # The server's own CPU for each run: what classifying costs it, whoever else waits for a
    # core on a shared machine (the times above include curl, seq and the other helpers).
    used, used_raw = (statistics.median(cpu[k]) for k in ("classified", "raw"))
    print(
        f"  server CPU a run: classified {used * 1000:.1f} ms, raw {used_raw * 1000:.1f} ms:"
        f" raw / classified {used_raw / used:.2f}"
    )
    if args.log:
        late, late_raw = (statistics.median(halves[k]) for k in ("classified", "raw"))
        print(
            f"  second half of the stream (read by a socket): classified {late * 1000:.1f} ms,"
            f" raw {late_raw * 1000:.1f} ms: raw / classified {late_raw / late:.2f}"
        )
    left = statistics.median(skipped)
    print(
        f"  lines left without levels (over the classifier's budget): {left:,.0f}"
        f" of {args.lines:,} ({left / args.lines:.0%})"
    )


if __name__ == "__main__":
    main()
