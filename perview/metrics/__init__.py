"""Metrics: system figures of this machine and SSH hosts, custom commands, scrapes; history."""
