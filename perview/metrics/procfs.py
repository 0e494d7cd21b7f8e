"""System figures from the texts of /proc and `df -P`: the same parser for this machine (files
read directly) and for SSH hosts (the same files printed by `cat`), so nothing is installed on
the far side.

A snapshot holds counters; `rates` turns two snapshots into the values charted: CPU busy %,
bytes per second, and so on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# Whole disks, not partitions or virtual devices: their counters would be counted twice.
DISK = re.compile(r"(sd[a-z]+|vd[a-z]+|xvd[a-z]+|hd[a-z]+|nvme\d+n\d+|mmcblk\d+)")
SECTOR = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own size

# Disk use is charted for filesystems that hold data on a disk or a server (not tmpfs, proc,
# squashfs images, overlay layers, ...). One exception: an overlay mounted at / is a container's
# root, and its use is that of the disk beneath, which is what fills up.
REAL_FILESYSTEMS = frozenset(
    {
        "ext2",
        "ext3",
        "ext4",
        "xfs",
        "btrfs",
        "zfs",
        "f2fs",
        "jfs",
        "reiserfs",
        "vfat",
        "exfat",
        "ntfs",
        "ntfs3",
        "nfs",
        "nfs4",
        "cifs",
        "fuseblk",
    }
)
# ... and not the plumbing mounted on top of them, whatever its type: `ip netns` bind-mounts
# /run/netns onto itself (so it shows the type of the disk under /run), container runtimes bind
# single files into /etc (/etc/hosts, /etc/resolv.conf), and /proc, /sys and /dev hold no data.
PLUMBING_MOUNTS = ("/proc", "/sys", "/dev", "/run", "/var/run", "/etc")

# Network interfaces are charted when they carry this machine's traffic in or out: Ethernet,
# Wi-Fi, bonds, VLANs, VPN tunnels. Left out: the loopback, and plumbing that only moves traffic
# between parts of the machine, which would chart the same bytes again or nothing at all:
# traffic-shaping mirrors (ifb), container and VM links and bridges (veth pairs, Docker's
# docker0 and br-<network id>, Podman's, libvirt's virbr/vnet, LXC/LXD bridges, Kubernetes'
# CNI devices), and the fallback devices the kernel creates, idle, with each tunnel module.
VIRTUAL_INTERFACE = re.compile(
    r"lo|ifb\d+|veth.*|docker\d+|br-[0-9a-f]{12}|podman\d+|cni.*|virbr\d+(-nic)?|vnet\d+"
    r"|lxcbr\d+|lxdbr\d+|flannel\..*|cali[0-9a-f]+|cilium_.*|kube-.*|vxlan\.calico|weave"
    r"|dummy\d+|nlmon\d+|tunl0|sit0|ip6tnl0|gre0|gretap0|erspan0|ip_vti0|ip6_vti0|ip6gre0"
)


def real_interface(name: str) -> bool:
    return not VIRTUAL_INTERFACE.fullmatch(name)


def real_mounts(mounts: Iterable[tuple[str, str, str]]) -> list[str]:
    """The mount points charted, from (device, filesystem type, mount point) triples as listed
    by /proc/mounts or df: real filesystems, no plumbing, and each device once, at its shortest
    mount point (a bind mount or a second btrfs subvolume repeats the same figures)."""
    chosen: dict[str, str] = {}
    for device, kind, mount in mounts:
        if kind not in REAL_FILESYSTEMS and not (kind == "overlay" and mount == "/"):
            continue
        if any(mount == top or mount.startswith(top + "/") for top in PLUMBING_MOUNTS):
            continue
        if device not in chosen or len(mount) < len(chosen[device]):
            chosen[device] = mount
    return sorted(chosen.values())


@dataclass(slots=True)
class Snapshot:
    """Counters and levels read at one moment (`at`, seconds, monotonic)."""

    at: float
    cpu: dict[str, tuple[int, int]] = field(default_factory=dict)  # "cpu", "cpu0": (busy, total)
    load: tuple[float, float, float] | None = None
    memory: dict[str, int] = field(default_factory=dict)  # /proc/meminfo, bytes
    net: dict[str, tuple[int, int]] = field(default_factory=dict)  # interface: (rx, tx) bytes
    disk_io: dict[str, tuple[int, int]] = field(default_factory=dict)  # disk: (read, write) bytes
    disk_use: dict[str, float] = field(default_factory=dict)  # mount point: used %


def parse_stat(text: str, snap: Snapshot) -> None:
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        name, *fields = line.split()
        values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values)
        snap.cpu[name] = (total - idle, total)


def parse_loadavg(text: str, snap: Snapshot) -> None:
    one, five, fifteen = (float(v) for v in text.split()[:3])
    snap.load = (one, five, fifteen)


def parse_meminfo(text: str, snap: Snapshot) -> None:
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            snap.memory[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)


def parse_net_dev(text: str, snap: Snapshot) -> None:
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        fields = rest.split()
        if name and real_interface(name) and len(fields) >= 9:
            snap.net[name] = (int(fields[0]), int(fields[8]))


def parse_diskstats(text: str, snap: Snapshot) -> None:
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 10 and DISK.fullmatch(fields[2]):
            snap.disk_io[fields[2]] = (int(fields[5]) * SECTOR, int(fields[9]) * SECTOR)


def parse_df(text: str, snap: Snapshot) -> None:
    """`df -P -T -k` lines: filesystem, type, blocks, used, available, capacity, mount point."""
    rows = [line.split() for line in text.splitlines()[1:]]
    usage: dict[str, float] = {}
    listed: list[tuple[str, str, str]] = []
    for fields in rows:
        if len(fields) < 7:
            continue
        mount = " ".join(fields[6:])
        used, available = int(fields[3]), int(fields[4])
        if used + available > 0:
            usage[mount] = 100.0 * used / (used + available)
            listed.append((fields[0], fields[1], mount))
    for mount in real_mounts(listed):
        snap.disk_use[mount] = usage[mount]


PARSERS = {
    "stat": parse_stat,
    "loadavg": parse_loadavg,
    "meminfo": parse_meminfo,
    "net": parse_net_dev,
    "diskstats": parse_diskstats,
    "df": parse_df,
}


def parse(sections: dict[str, str], at: float) -> Snapshot:
    """A snapshot from named texts (see PARSERS); a section that is missing or garbled is
    skipped, so one odd file never loses the others."""
    snap = Snapshot(at)
    for name, text in sections.items():
        parser = PARSERS.get(name)
        if parser is None:
            continue
        try:
            parser(text, snap)
        except (ValueError, IndexError):
            continue
    return snap


def levels(snap: Snapshot) -> dict[str, float]:
    """What one snapshot says by itself: load, memory and disk use."""
    values: dict[str, float] = {}
    if snap.load:
        values["load.1m"], values["load.5m"], values["load.15m"] = snap.load
    mem = snap.memory
    if mem.get("MemTotal"):
        available = mem.get("MemAvailable", mem.get("MemFree", 0))
        values["mem.used"] = 100.0 * (mem["MemTotal"] - available) / mem["MemTotal"]
        values["mem.used_bytes"] = float(mem["MemTotal"] - available)
    if mem.get("SwapTotal"):
        values["swap.used"] = 100.0 * (mem["SwapTotal"] - mem.get("SwapFree", 0)) / mem["SwapTotal"]
    for mount, used in snap.disk_use.items():
        values[f"disk.used:{mount}"] = used
    return values


def rates(old: Snapshot, new: Snapshot) -> dict[str, float]:
    """What changed between two snapshots: CPU busy % and bytes per second."""
    values: dict[str, float] = {}
    seconds = new.at - old.at
    if seconds <= 0:
        return values
    for name, (busy, total) in new.cpu.items():
        if name in old.cpu and total > old.cpu[name][1]:
            share = (busy - old.cpu[name][0]) / (total - old.cpu[name][1])
            values["cpu" if name == "cpu" else f"cpu.core:{name[3:]}"] = 100.0 * share
    for name, (rx, tx) in new.net.items():
        if name in old.net:
            values[f"net.rx:{name}"] = max(0, rx - old.net[name][0]) / seconds
            values[f"net.tx:{name}"] = max(0, tx - old.net[name][1]) / seconds
    for name, (read, write) in new.disk_io.items():
        if name in old.disk_io:
            values[f"disk.read:{name}"] = max(0, read - old.disk_io[name][0]) / seconds
            values[f"disk.write:{name}"] = max(0, write - old.disk_io[name][1]) / seconds
    return values


UNITS = {
    "cpu": "%",
    "cpu.core": "%",
    "load.1m": "",
    "load.5m": "",
    "load.15m": "",
    "mem.used": "%",
    "mem.used_bytes": "B",
    "swap.used": "%",
    "disk.used": "%",
    "net.rx": "B/s",
    "net.tx": "B/s",
    "disk.read": "B/s",
    "disk.write": "B/s",
}


def unit_of(series: str) -> str:
    return UNITS.get(series.partition(":")[0], "")
