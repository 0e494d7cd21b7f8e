"""Perview: live logs and metrics from commands, files and SSH hosts, in a browser or curl."""

__version__ = "0.1.0"
