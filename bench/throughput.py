"""Throughput: `perview run -- seq 1 N` read by curl, against `seq 1 N | cat > /dev/null`.

Each perview trial is one `curl` of the text stream against an already running server. The
figure is curl's own `time_total`, from connecting to the last byte, so it includes what a
viewer waits for: the HTTP request, starting the command behind its guard, and relaying every
byte; it leaves out curl's process start-up (about 10 ms here, four times what the whole
`seq | cat` set-up costs), which is shown separately. The baseline is the same `seq` piped
through `cat` in the same run. Target (DESIGN.md): 0.8 of the pipe; issue 2 asks 0.7.

    python bench/throughput.py [--lines 3000000] [--trials 9]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time

from _common import serve


def time_pipe(lines: int) -> float:
    start = time.perf_counter()
    subprocess.run(f"seq 1 {lines} | cat > /dev/null", shell=True, check=True, timeout=120)
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
    parser.add_argument(
        "--pause", type=float, default=0.5, help="seconds between trials (default %(default)s)"
    )
    args = parser.parse_args()
    trials = 3 if args.quick else args.trials
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed (apt-get install curl)")
    size = len(subprocess.run(["seq", "1", str(args.lines)], capture_output=True).stdout)

    baseline = []
    relayed = []
    with serve(["seq", "1", str(args.lines)]) as server:
        url = server.base + "/api/sources/run/text"
        time_curl(url)  # warm-up: page cache, the first guard
        for _ in range(trials):  # interleaved, so both see the same machine
            time.sleep(args.pause)
            baseline.append(time_pipe(args.lines))
            relayed.append(time_curl(url))

    base = statistics.median(baseline)
    ours = statistics.median(t for t, _ in relayed)
    wall = statistics.median(w for _, w in relayed)
    mb = size / 1e6
    print(f"payload: seq 1 {args.lines} = {mb:.1f} MB, {trials} trials each, medians")
    print(f"  seq | cat > /dev/null              {base * 1000:7.1f} ms  {mb / base:5.0f} MB/s")
    print(f"  perview run, read by curl          {ours * 1000:7.1f} ms  {mb / ours:5.0f} MB/s")
    print(f"    (with curl's own start-up: {wall * 1000:.1f} ms, ratio {base / wall:.2f})")
    print(f"  ratio (pipe time / perview time):  {base / ours:.2f}   (target 0.8, issue 0.7)")


if __name__ == "__main__":
    main()
