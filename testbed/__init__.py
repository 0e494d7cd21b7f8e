"""Real parts that the tests, the benchmarks and scripts/ share: a loopback sshd with throwaway
keys (sshd.py) and Debian's Chromium as Playwright drives it (chromium.py). Not installed with
Perview; the tests find it from the repository's root, the benchmarks and scripts put the root
on their path."""
