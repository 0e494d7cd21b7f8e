"""The `perview` command: turns flags and the environment into a Config, then hands off."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from perview import __version__
from perview.config import (
    DEFAULT_BACKLOG,
    DEFAULT_HOST,
    DEFAULT_PORT,
    Config,
    ServerConfig,
    SourceConfig,
)
from perview.errors import ExitCode, PerviewError
from perview.server import serve

# Read in this order when --port is absent; PERVIEW_PROC_PORT is the original monitor's name.
PORT_VARIABLES = ("PERVIEW_PROC_PORT", "PERVIEW_PORT")


def _server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    group.add_argument(
        "--host", default=DEFAULT_HOST, help="address to bind (default: %(default)s)"
    )
    group.add_argument(
        "--port",
        type=int,
        help=f"port (default: $PERVIEW_PROC_PORT, $PERVIEW_PORT or {DEFAULT_PORT}; "
        "0 picks a free one)",
    )
    group.add_argument(
        "--no-auth", action="store_true", help="serve without a token (loopback addresses only)"
    )
    group.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this Host name (repeatable; IP addresses and localhost always are)",
    )
    group.add_argument("--root-path", default="", help="URL prefix when behind a reverse proxy")
    group.add_argument("--open", action="store_true", help="open the page in a browser")
    group.add_argument("-v", "--verbose", action="store_true", help="log every request")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perview",
        description="Live logs and metrics from commands, files and SSH hosts, "
        "in a browser or curl.",
    )
    parser.add_argument("--version", action="version", version=f"perview {__version__}")
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="serve one command",
        description="Serve one command as source 'run'. It starts with the first viewer and "
        "stops (its whole process group) when the last one leaves.",
    )
    run.add_argument(
        "--once",
        action="store_true",
        help="exit after the first viewer leaves, killing the command",
    )
    run.add_argument(
        "--backlog",
        type=int,
        default=DEFAULT_BACKLOG,
        metavar="LINES",
        help="lines kept for new viewers (default: %(default)s)",
    )
    _server_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")
    return parser


def resolve_port(flag: int | None, environ: os._Environ[str] | dict[str, str]) -> int:
    if flag is not None:
        port, origin = flag, "--port"
    else:
        found = next(((name, environ[name]) for name in PORT_VARIABLES if environ.get(name)), None)
        if found is None:
            return DEFAULT_PORT
        origin, raw = found
        if not raw.strip().isdigit():
            raise PerviewError(f"{origin} must be a port number, not {raw!r}", ExitCode.USAGE)
        port = int(raw)
    if not 0 <= port <= 65535:
        raise PerviewError(f"{origin} must be between 0 and 65535, not {port}", ExitCode.USAGE)
    return port


def _server_config(args: argparse.Namespace) -> ServerConfig:
    root = "/" + args.root_path.strip("/") if args.root_path.strip("/") else ""
    return ServerConfig(
        host=args.host,
        port=resolve_port(args.port, os.environ),
        token=os.environ.get("PERVIEW_TOKEN") or None,
        auth=not args.no_auth,
        allowed_hosts=tuple(args.allowed_host),
        root_path=root,
    )


def _run_config(args: argparse.Namespace) -> Config:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise PerviewError("run needs a command: perview run -- CMD ARGS...", ExitCode.USAGE)
    if args.backlog < 1:
        raise PerviewError("--backlog must be at least 1", ExitCode.USAGE)
    source = SourceConfig(name="run", command=tuple(command), backlog=args.backlog)
    return Config(_server_config(args), (source,), once=args.once, default_stream="run")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `perview` console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(format="perview: %(message)s", stream=sys.stderr)
    logging.getLogger("perview").setLevel(logging.INFO)
    if getattr(args, "verbose", False):
        logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    try:
        if args.subcommand == "run":
            config = _run_config(args)
        else:
            parser.print_help(sys.stderr)
            return ExitCode.USAGE
        return serve(config, open_browser=args.open)
    except PerviewError as exc:
        print(f"perview: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
