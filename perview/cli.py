"""The `perview` command: turns flags, the environment and the config into a Config, then hands
off to the server. One place (`main`) turns errors into messages and exit codes."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from aiohttp.http_exceptions import HttpProcessingError

from perview import __version__, preflight
from perview.accounts import hash_password
from perview.config import (
    Config,
    ConfigError,
    KeyLines,
    Network,
    ServerConfig,
    SourceConfig,
    data_dir,
    load,
    network,
)
from perview.defaults import default_sources
from perview.errors import ExitCode, PerviewError
from perview.server import serve
from perview.sources.stdin import usable_stdin
from perview.tokenfile import kept_token, rotate_token

# Read in this order when --port is absent; PERVIEW_PROC_PORT is the original monitor's name.
PORT_VARIABLES = ("PERVIEW_PROC_PORT", "PERVIEW_PORT")
SUBCOMMANDS = ("serve", "run", "tail", "check", "token", "hash-password")
# The defaults the flags show and fall back on: the config's records own them.
SERVER, SOURCE = ServerConfig(), SourceConfig("run")


def _server_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server (these override the config's [server])")
    group.add_argument("--host", help=f"address to bind (default: {SERVER.host})")
    group.add_argument(
        "--port",
        type=int,
        help=f"port (default: $PERVIEW_PROC_PORT, $PERVIEW_PORT or {SERVER.port}; "
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
    group.add_argument("--root-path", help="URL prefix when behind a reverse proxy")
    group.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        type=_network,
        metavar="ADDR",
        help="a reverse proxy (address or network) whose X-Forwarded-For/-Proto headers name "
        "the client (repeatable; default: none, the headers are ignored)",
    )
    group.add_argument("--certfile", help="serve https with this certificate chain (PEM)")
    group.add_argument("--keyfile", help="... and this private key (PEM)")
    group.add_argument("--open", action="store_true", help="open the page in a browser")
    group.add_argument("-v", "--verbose", action="store_true", help="log every request")


def _network(text: str) -> Network:
    try:
        return network(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="the config (default: ./perview.toml, then $XDG_CONFIG_HOME/perview/perview.toml, "
        "else the embedded default for this machine)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perview",
        description="Live logs from commands, files and SSH hosts, in a browser or curl. "
        "With no command: serve the config (or standard input, when it is a pipe or a file).",
    )
    parser.add_argument("--version", action="version", version=f"perview {__version__}")
    commands = parser.add_subparsers(dest="subcommand", metavar="COMMAND")

    serve_cmd = commands.add_parser("serve", help="serve the configured sources (the default)")
    _config_option(serve_cmd)
    _server_options(serve_cmd)

    run = commands.add_parser(
        "run",
        help="serve one command",
        description="Serve one command as source 'run'. It starts with the first viewer and "
        "stops (its whole process group) when the last one leaves; a later viewer starts it "
        "again, unless it had ended by itself (then it shows what it printed and how it ended, "
        "until someone restarts it).",
    )
    run.add_argument(
        "--once",
        action="store_true",
        help="exit after the first viewer leaves, killing the command",
    )
    run.add_argument(
        "--linger",
        type=float,
        default=SOURCE.linger,
        metavar="SECONDS",
        help="keep the command running this long after the last viewer leaves, so a reload "
        "does not stop it (default: %(default)s)",
    )
    run.add_argument(
        "--rerun",
        action="store_true",
        help="start the command again for a new viewer after it ended by itself (by default "
        "it ran once: the output and exit status are shown, and only restart runs it again)",
    )
    run.add_argument(
        "--backlog",
        type=int,
        default=SOURCE.backlog,
        metavar="LINES",
        help="lines kept for new viewers (default: %(default)s)",
    )
    _server_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...")

    tail = commands.add_parser("tail", help="serve files, followed natively")
    tail.add_argument("files", nargs="+", metavar="FILE")
    _server_options(tail)

    check = commands.add_parser("check", help="validate a config and say what it serves")
    _config_option(check)

    token = commands.add_parser(
        "token",
        help="print the access token (or --rotate it)",
        description="Print the access token `perview serve` uses: $PERVIEW_TOKEN, the config's, "
        "or the one generated and kept in the data directory. --rotate replaces the kept one "
        "(a running Perview keeps the old one until it restarts).",
    )
    token.add_argument("--rotate", action="store_true", help="replace it with a new one")
    _config_option(token)

    commands.add_parser(
        "hash-password",
        help="hash a password for a [users.NAME] table",
        description="Asks for a password (or reads one line from standard input when it is "
        "not a terminal) and prints its scrypt hash, for `password = ...` in [users.NAME].",
    )
    return parser


def resolve_port(flag: int | None, environ: Mapping[str, str], configured: int) -> int:
    if flag is not None:
        port, origin = flag, "--port"
    else:
        found = next(((name, environ[name]) for name in PORT_VARIABLES if environ.get(name)), None)
        if found is None:
            return configured
        origin, raw = found
        if not raw.strip().isdigit():
            raise PerviewError(f"{origin} must be a port number, not {raw!r}", ExitCode.USAGE)
        port = int(raw)
    if not 0 <= port <= 65535:
        raise PerviewError(f"{origin} must be between 0 and 65535, not {port}", ExitCode.USAGE)
    return port


def _with_flags(server: ServerConfig, args: argparse.Namespace) -> ServerConfig:
    """The config's [server] with the command line and the environment applied over it."""
    root = server.root_path if args.root_path is None else args.root_path.strip("/")
    root = "/" + root.strip("/") if root.strip("/") else ""
    return replace(
        server,
        host=args.host or server.host,
        port=resolve_port(args.port, os.environ, server.port),
        token=os.environ.get("PERVIEW_TOKEN") or server.token,
        auth=server.auth and not args.no_auth,
        allowed_hosts=(*server.allowed_hosts, *args.allowed_host),
        root_path=root,
        trusted_proxies=(*server.trusted_proxies, *args.trusted_proxy),
        certfile=args.certfile or server.certfile,
        keyfile=args.keyfile or server.keyfile,
    )


def find_config(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    for candidate in (Path("perview.toml"), home / "perview" / "perview.toml"):
        if candidate.is_file():
            return candidate
    return None


def _configured(explicit: str | None) -> tuple[Config, list[str]]:
    """The config file's Config, or the embedded default and notes on what it chose."""
    path = find_config(explicit)
    if path is not None:
        return load(path), []
    sources, notes = default_sources()
    if not sources:
        raise PerviewError(
            "no config found, and no system log readable here; "
            "try `perview run -- CMD`, `perview tail FILE` or `CMD | perview`",
            ExitCode.CONFIG,
        )
    return Config(ServerConfig(), sources, origin="the embedded default"), notes


def _serve_config(args: argparse.Namespace, implicit: bool) -> Config:
    if implicit and usable_stdin(0):
        stdin = SourceConfig("stdin", stdin=True, keep=True, title="standard input")
        return Config(_with_flags(ServerConfig(), args), (stdin,), default_stream="stdin")
    config, notes = _configured(args.config)
    for note in notes:
        print(f"perview: {note}", file=sys.stderr)
    return replace(config, server=_with_flags(config.server, args))


def _rereader(args: argparse.Namespace) -> Callable[[str], Config]:
    """How a reload reads the config file: with the command line applied over it, as at start
    (else a reload would see `--port` or `PERVIEW_TOKEN` as a change of `[server]`)."""

    def reread(path: str) -> Config:
        config = load(path)
        return replace(config, server=_with_flags(config.server, args))

    return reread


def _run_config(args: argparse.Namespace) -> Config:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise PerviewError("run needs a command: perview run -- CMD ARGS...", ExitCode.USAGE)
    if args.backlog < 1:
        raise PerviewError("--backlog must be at least 1", ExitCode.USAGE)
    if not args.linger >= 0:  # NaN too
        raise PerviewError("--linger must not be negative", ExitCode.USAGE)
    source = SourceConfig(
        name="run",
        command=tuple(command),
        backlog=args.backlog,
        linger=args.linger,
        rerun=args.rerun,
    )
    server = _with_flags(ServerConfig(), args)
    return Config(server, (source,), once=args.once, default_stream="run")


def _tail_config(args: argparse.Namespace) -> Config:
    sources: list[SourceConfig] = []
    taken: set[str] = set()
    for file in args.files:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(file).name).lstrip(".-") or "file"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        sources.append(SourceConfig(name, file=file, title=file))
    default = sources[0].name if len(sources) == 1 else None
    return Config(_with_flags(ServerConfig(), args), tuple(sources), default_stream=default)


def _check(args: argparse.Namespace) -> int:
    """Validate the config, then check what it names on this machine (preflight.py): errors
    fail the check, warnings do not; what could not be checked is said too."""
    config, notes = _configured(args.config)
    path = find_config(args.config)
    lines = KeyLines(path.read_text(encoding="utf-8")) if path is not None else None
    findings = preflight.check(config)
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    names = ", ".join(s.name for s in config.sources)
    sources = f"{len(config.sources)} sources ({names})" if config.sources else "no sources"
    metrics = f", {len(config.metrics)} metrics" if config.metrics else ""
    hosts = f", {len(config.hosts)} hosts" if config.hosts else ""
    users = f", {len(config.users)} users" if config.users else ""
    users += f", {len(config.alerts)} alerts" if config.alerts else ""
    verdict = "OK" if not errors else _count(errors, "error")
    if warnings:
        verdict += f" with {_count(warnings, 'warning')}"
    print(f"{config.origin}: {verdict}, {sources}{metrics}{hosts}{users}")
    for note in notes:
        print(f"  {note}")
    if config.alerted:
        print(f"  always on (alerts watch them): {', '.join(sorted(config.alerted))}")
    for finding in findings:
        if finding.level == "unchecked":
            print(f"  not checked: {'.'.join(finding.key)}: {finding.message}")
    sys.stdout.flush()  # the summary first, then the problems, also when both go to one pipe
    if lines is not None:
        findings.sort(key=lambda f: lines.of(*f.key))
    for finding in findings:
        where = config.origin if lines is None else f"{config.origin}:{lines.of(*finding.key)}"
        level = {"error": "", "warning": "warning: "}.get(finding.level)
        if level is not None:
            print(f"{where}: {'.'.join(finding.key)}: {level}{finding.message}", file=sys.stderr)
    return ExitCode.ERROR if errors else ExitCode.OK


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'s' * (n != 1)}"


def _token(args: argparse.Namespace) -> int:
    path = find_config(args.config)
    server = load(path).server if path is not None else ServerConfig()
    if not server.auth:
        raise PerviewError(f"{path} turns auth off: there is no token", ExitCode.USAGE)
    # The same order as `serve`: the environment, the config, then the kept token.
    given = os.environ.get("PERVIEW_TOKEN") or server.token
    if given:
        where = "$PERVIEW_TOKEN" if os.environ.get("PERVIEW_TOKEN") else str(path)
        if args.rotate:
            raise PerviewError(f"the token is set in {where}: change it there", ExitCode.USAGE)
        print(given)
        return ExitCode.OK
    directory = data_dir(server)
    if args.rotate:
        try:
            print(rotate_token(directory))
        except OSError as exc:
            raise PerviewError(f"cannot keep a new token in {directory}: {exc}") from exc
        print("perview: a running Perview uses the old token until it restarts", file=sys.stderr)
    else:
        print(kept_token(directory))
    return ExitCode.OK


def _hash_password() -> int:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise PerviewError("the two passwords differ", ExitCode.USAGE)
    else:
        password = sys.stdin.readline().removesuffix("\n")
    if not password:
        raise PerviewError("the password is empty", ExitCode.USAGE)
    print(hash_password(password))
    return ExitCode.OK


def _not_a_client_mistake(record: logging.LogRecord) -> bool:
    """A malformed or oversized request is answered with a 400 and not logged: a hostile client
    must not be able to fill the log with tracebacks. Errors of Perview's own are kept."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, HttpProcessingError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `perview` console script; returns the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    implicit = not any(arg in SUBCOMMANDS for arg in args_list[:1]) and not any(
        arg in ("-h", "--help", "--version") for arg in args_list
    )
    if implicit:
        args_list.insert(0, "serve")
    args = build_parser().parse_args(args_list)
    logging.basicConfig(format="perview: %(message)s", stream=sys.stderr)
    logging.getLogger("perview").setLevel(logging.INFO)
    logging.getLogger("aiohttp.server").addFilter(_not_a_client_mistake)
    if getattr(args, "verbose", False):
        logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    try:
        if args.subcommand == "check":
            return _check(args)
        if args.subcommand == "token":
            return _token(args)
        if args.subcommand == "hash-password":
            return _hash_password()
        if args.subcommand == "run":
            config = _run_config(args)
        elif args.subcommand == "tail":
            config = _tail_config(args)
        else:
            config = _serve_config(args, implicit)
        return serve(config, open_browser=args.open, reread=_rereader(args))
    except ConfigError as exc:
        count = len(exc.problems)
        print(f"perview: the config has {count} problem{'s' * (count > 1)}:", file=sys.stderr)
        print(exc, file=sys.stderr)
        return exc.code
    except PerviewError as exc:
        print(f"perview: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
