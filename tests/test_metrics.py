"""Metrics in-process: values checked against /proc and statvfs, command output and selectors,
the exposition (promtool finds nothing to fix), and history on a full disk. A live server's are
in test_metrics_live.py."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from perview.config import MetricConfig
from perview.hub import Hub
from perview.metrics import procfs, selector
from perview.metrics.collect import parse_output, read_local, real_mounts
from perview.metrics.history import History
from perview.metrics.hub import MetricsHub
from perview.metrics.prometheus import exposition
from tests.conftest import Server, fill
from tests.test_hub import ScriptedSource

Serve = Callable[..., Server]


# -- parsing, against the machine itself --------------------------------------------------------


def test_memory_and_load_match_proc() -> None:
    values = procfs.levels(read_local())
    meminfo = {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
    }
    used = 100 * (meminfo["MemTotal"] - meminfo["MemAvailable"]) / meminfo["MemTotal"]
    assert values["mem.used"] == pytest.approx(used, abs=2.0)  # memory moves between the reads
    load = [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    assert values["load.1m"] == pytest.approx(load[0], abs=0.5)


def test_disk_use_matches_statvfs() -> None:
    mounts = real_mounts()
    assert mounts, "this machine has a real filesystem mounted"
    values = procfs.levels(read_local())
    for mount in mounts:
        st = os.statvfs(mount)
        used = (st.f_blocks - st.f_bfree) / (st.f_blocks - st.f_bfree + st.f_bavail) * 100
        assert values[f"disk.used:{mount}"] == pytest.approx(used, abs=1.0)


def test_cpu_and_throughput_rates_are_sane() -> None:
    first = read_local()
    sum(i * i for i in range(300_000))  # a little work between the two reads
    time.sleep(0.05)
    rates = procfs.rates(first, read_local())
    assert 0.0 <= rates["cpu"] <= 100.0
    assert all(0.0 <= v <= 100.0 for k, v in rates.items() if k.startswith("cpu.core:"))
    assert len([k for k in rates if k.startswith("cpu.core:")]) == os.cpu_count()
    assert all(v >= 0 for k, v in rates.items() if k.startswith(("net.", "disk.")))


def test_df_output_of_a_remote_host_is_parsed() -> None:
    text = (
        "Filesystem     Type  1024-blocks    Used Available Capacity Mounted on\n"
        "/dev/sda1      ext4     10000000 2500000   7500000      25% /\n"
        "tmpfs          tmpfs      100000       0    100000       0% /run\n"
        "/dev/sdb1      xfs       2000000 1000000   1000000      50% /srv/my data\n"
    )
    snap = procfs.parse({"df": text}, 0.0)
    assert snap.disk_use == {"/": 25.0, "/srv/my data": 50.0}


NET_DEV = """Inter-|   Receive                            |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets
    lo: 9000 10 0 0 0 0 0 0 9000 10 0 0 0 0 0 0
  ifb0: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
 wlan0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
 bond0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
eth0.100: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
   wg0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
docker0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
br-3f2a8c1d9e0b: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
veth1a2b3c4: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
virbr0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
 vnet3: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
cni0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
  sit0: 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
"""


def test_only_interfaces_that_carry_the_machines_traffic_are_charted() -> None:
    snap = procfs.parse({"net": NET_DEV}, 0.0)
    assert sorted(snap.net) == ["bond0", "eth0", "eth0.100", "wg0", "wlan0"]


DF = """Filesystem     Type     1024-blocks    Used Available Capacity Mounted on
/dev/vda1      ext4        10000000 2500000   7500000      25% /
/dev/vda1      ext4        10000000 2500000   7500000      25% /run/netns
/dev/vda1      ext4        10000000 2500000   7500000      25% /etc/hosts
/dev/vda1      ext4        10000000 2500000   7500000      25% /srv/bound
/dev/vda2      vfat          500000  100000    400000      20% /boot/efi
tmpfs          tmpfs         100000       0    100000       0% /run
overlay        overlay     10000000 2500000   7500000      25% /var/lib/docker/overlay2/0a1b/merged
nsfs           nsfs               0       0         0       -  /run/netns/cni-1
/dev/sdb1      xfs          2000000 1000000   1000000      50% /srv/my data
/dev/sdc1      ext4         2000000 1000000   1000000      50% /dev/shm/odd
"""


def test_only_real_disks_are_charted_each_once() -> None:
    snap = procfs.parse({"df": DF}, 0.0)
    assert snap.disk_use == {"/": 25.0, "/boot/efi": 20.0, "/srv/my data": 50.0}


def test_this_machines_mounts_are_read_with_the_same_rule(tmp_path: Path) -> None:
    (tmp_path / "mounts").write_text(
        "/dev/vda1 / ext4 rw 0 0\n"
        "/dev/vda1 /run/netns ext4 rw 0 0\n"
        "/dev/vda1 /etc/resolv.conf ext4 rw 0 0\n"
        "tmpfs /run tmpfs rw 0 0\n"
        "nsfs /run/netns/x nsfs rw 0 0\n"
        "/dev/sdb1 /srv/my\\040data xfs rw 0 0\n"
    )
    assert real_mounts(tmp_path) == ["/", "/srv/my data"]


def test_a_container_root_on_overlay_is_charted() -> None:
    text = DF.splitlines()[0] + "\noverlay overlay 100 25 75 25% /\ntmpfs tmpfs 10 0 10 0% /dev\n"
    assert procfs.parse({"df": text}, 0.0).disk_use == {"/": 25.0}


def test_a_garbled_section_loses_only_itself() -> None:
    snap = procfs.parse({"loadavg": "garbage", "meminfo": "MemTotal: 100 kB\n"}, 0.0)
    assert snap.load is None and snap.memory == {"MemTotal": 102400}


# -- custom metric output ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("42\n", {"q": 42.0}),
        ("  -1.5e3 ", {"q": -1500.0}),
        ("active 3\nwaiting 4\n", {"q.active": 3.0, "q.waiting": 4.0}),
        ("active=3\nwaiting = 4.5\n\n", {"q.active": 3.0, "q.waiting": 4.5}),
    ],
)
def test_command_output_formats(text: str, expected: dict[str, float]) -> None:
    assert parse_output("q", text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "printed nothing"),
        ("nan", "not a finite number"),
        ("the answer is 42", "cannot read"),
        ("ok 1\nbroken line here\n", "cannot read 'broken line here'"),
    ],
)
def test_command_output_garbage_is_a_reason_not_a_crash(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_output("q", text)


def test_selectors_pick_one_sample() -> None:
    text = (
        "# TYPE fs_free gauge\n"
        'fs_free{mountpoint="/"} 10\n'
        'fs_free{mountpoint="/srv"} 20\n'
        "# TYPE load gauge\nload 0.5\n"
    )
    assert selector.parse('fs_free{mountpoint="/srv"}').select(text) == 20.0
    assert selector.parse("load").select(text) == 0.5
    with pytest.raises(ValueError, match="no sample matches"):
        selector.parse('fs_free{mountpoint="/nope"}').select(text)


# -- settings and the exposition --------------------------------------------------------------


def test_every_series_of_a_configured_metric_has_its_unit_and_thresholds() -> None:
    hub = MetricsHub(
        [
            MetricConfig("queue", ("q",), unit="jobs", warn=3, crit=10),
            MetricConfig("free", scrape="http://x/", selector="f", host="web1", warn=1),
        ]
    )
    hub.publish("local", {"queue.mail": 5.0, "queue.sms": 11.0, "cpu": 1.0}, {"cpu": "%"})
    hub.publish("web1", {"free": 2.0})
    found = {key: s.describe() for key, s in hub.series.items()}
    assert (found["local/queue.mail"]["unit"], found["local/queue.mail"]["level"]) == (
        "jobs",
        "warn",
    )
    assert found["local/queue.sms"]["level"] == "crit"
    assert (found["local/cpu"]["unit"], found["local/cpu"]["warn"]) == ("%", None)
    assert (found["web1/free"]["warn"], found["web1/free"]["level"]) == (1.0, "warn")


def sampled_hub() -> MetricsHub:
    hub = MetricsHub([MetricConfig("queue", ("q",), unit="jobs")])
    values = {"mem.used": 40.0, "mem.used_bytes": 4e9, "disk.used:/": 25.0, "cpu": 3.0}
    hub.publish("local", values, {name: procfs.unit_of(name) for name in values})
    hub.publish("local", {"queue": 4.0})
    hub.fail("local", ["queue"], "exited with status 1")
    return hub


def test_the_exposition_names_units_once_without_empty_labels_or_timestamps() -> None:
    text = exposition({}, sampled_hub()).decode()
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert 'perview_mem_used_bytes{host="local"} 4e+09' in samples
    assert 'perview_mem_used_percent{host="local"} 40.0' in samples
    assert 'perview_disk_used_percent{host="local",key="/"} 25.0' in samples
    assert 'perview_cpu_percent{host="local"} 3.0' in samples
    assert not [line for line in samples if 'key=""' in line]
    # name{labels} value: no third field, a timestamp
    assert all(len(re.sub(r"\{.*\}", "", line).split()) == 2 for line in samples), samples
    # A failing series' last value is not passed off as current; its failure is exported.
    assert not [line for line in samples if line.startswith("perview_queue")]
    assert 'perview_series_failing{host="local",series="queue"} 1.0' in samples


def test_promtool_finds_nothing_to_fix_in_the_exposition(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: run scripts/install-test-deps (package prometheus)")
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=exposition({}, sampled_hub()),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


async def levels_exposition() -> bytes:
    """/metrics of four sources: on two hosts, local, not classified (raw), and not yet run."""
    web = Hub("web", ScriptedSource(), meta={"hosts": ["web1", "web2"]})
    await web.write(b"ERROR boom\nTraceback (most recent call last):\n  x\nE: y\n", "web1")
    await web.write(b"WARNING slow\n", "web2")
    app = Hub("app", ScriptedSource(), meta={"hosts": []})
    await app.write(b"FATAL out of memory\nINFO bye\n")
    raw = Hub("raw", ScriptedSource(), classify=None)
    await raw.write(b"ERROR not classified\n")
    quiet = Hub("quiet", ScriptedSource(), meta={"hosts": ["db"]})
    text = exposition({h.name: h for h in (web, app, raw, quiet)}, sampled_hub())
    for hub in (web, app, raw, quiet):
        await hub.close()
    return text


def test_lines_per_level_are_exported_by_source_host_and_level() -> None:
    text = asyncio.run(levels_exposition())
    samples = {
        (s.labels["source"], s.labels["host"], s.labels["level"]): s.value
        for family in text_string_to_metric_families(text.decode())
        if family.name == "perview_log_lines"
        for s in family.samples
    }
    assert samples[("web", "web1", "error")] == 4
    assert samples[("web", "web2", "warning")] == 1 and samples[("web", "web2", "error")] == 0
    assert samples[("app", "local", "fatal")] == 1 and samples[("app", "local", "info")] == 1
    assert samples[("quiet", "db", "error")] == 0  # there from the start, for rate()
    assert not [key for key in samples if key[0] == "raw"]
    assert {level for _, _, level in samples} == {
        "fatal", "error", "warning", "info", "debug", "trace"
    }  # fmt: skip
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: run scripts/install-test-deps (package prometheus)")
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


async def test_metric_history_on_a_full_disk_loses_batches_not_the_history(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="perview.metrics.history")
    history = History(small_disk / "metrics.sqlite", retention=3600)
    await history.open()
    try:
        now = time.time()
        await history.write([("local/x", now - 30, 1.0)])
        fill(small_disk)
        # Batches big enough to need new pages: the full disk refuses them, quietly.
        for _ in range(5):
            await history.write([("local/x", now - 20 + i * 0.001, 2.0) for i in range(2000)])
        assert "samples not kept (database or disk is full); will retry" in caplog.text
        assert caplog.text.count("not kept") == 1  # said once, not for every batch
        (small_disk / "filler").unlink()
        await history.write([("local/x", now - 10, 3.0)])
        points = await history.query("local/x", now - 60, 1.0)
    finally:
        await history.close()
    values = [v for _, v in points]
    assert values[0] == 1.0 and values[-1] == 3.0
    assert "metric history: writing again" in caplog.text
