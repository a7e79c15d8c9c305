"""`edge-agent`: the board-side command. Standard library argparse only (no click on boards)."""

import argparse
import json
import os
import platform
import signal
import sys

from edge_agent import __version__, bench, releases
from edge_agent.agent import run, start
from edge_agent.errors import AgentError
from edge_agent.signature import DEFAULT_TRUSTED_KEYS, load_trusted_bundle, public_key_from_b64, trusted_keys
from edge_agent.streams import DEFAULT_SILENT_AFTER_S


class _Help(argparse.HelpFormatter):
    """Says an option's default after its help, when it has one worth saying (not None, a flag's False or
    suppressed) and the help does not say it already."""

    def _get_help_string(self, action):
        text = action.help or ""
        unsaid = action.default is None or action.default is False or action.default is argparse.SUPPRESS
        if unsaid or not action.option_strings or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser with _Help; its subcommands' parsers are of this class too (argparse makes them so)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)


def build_parser():
    """The edge-agent command line: every option with its help and default."""
    parser = _Parser(prog="edge-agent", description="Serve an edgectl bundle on this board.")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--trusted-keys", metavar="DIR", default=DEFAULT_TRUSTED_KEYS, help=_TRUSTED_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="serve samples from a file or stdin, JSON records to stdout")
    p_run.add_argument("--bundle", required=True, help=_BUNDLE_HELP)
    p_run.add_argument(
        "--input", default="-", help="- (stdin), a sample file, tcp:127.0.0.1:PORT or serial:/dev/ttyAMA0@115200"
    )
    p_run.add_argument("--output", default="-", help="- (stdout), or the input's serial link: serial:/dev/ttyAMA0")
    p_run.add_argument("--journal", help="directory of the serial link's journal (default STATE_DIR/journal)")
    p_run.add_argument("--stats-every", type=_positive, default=1000, help="windows between stats records")
    p_run.add_argument("--state-dir", help="keep the latest stats in STATE_DIR/stats.json (the service)")
    p_run.add_argument(
        "--no-kernel", action="store_true", help="compute windows in Python, not with the bundle's compiled kernel"
    )
    p_run.add_argument(
        "--line-by-line", action="store_true", help="parse and window each line alone, never a read's lines in a block"
    )
    p_run.add_argument(
        "--silent-after",
        type=_seconds,
        default=DEFAULT_SILENT_AFTER_S,
        metavar="SECONDS",
        help="flag a stream with no sample for this long (a 'stream' record; 0: never)",
    )
    p_run.add_argument(
        "--mqtt", metavar="URL", help="also publish records to this broker: mqtt[s]://HOST[:PORT][/PREFIX]"
    )
    p_run.add_argument("--mqtt-board", metavar="NAME", help="this board's name in the topics (default: its hostname)")
    p_run.add_argument("--mqtt-fleet", metavar="NAME", default="default", help="the fleet's name in the topics")
    p_run.add_argument("--mqtt-ca", metavar="FILE", help="mqtts: the CA certificate to check the broker against")
    p_run.add_argument("--mqtt-auth", metavar="FILE", help="a file whose first line is username:password")
    p_run.add_argument(
        "--mqtt-predictions", default="off", metavar="off|all|alarms|N", help="prediction records to publish"
    )
    p_run.add_argument(
        "--mqtt-queue", type=_positive, default=10_000, help="messages kept while the broker is away; more are dropped"
    )
    p_run.add_argument("--metrics-textfile", metavar="PATH", help="write Prometheus metrics here (node_exporter)")
    p_run.add_argument("--metrics-port", type=_positive, metavar="PORT", help="serve /metrics on 127.0.0.1:PORT")
    p_test = sub.add_parser("selftest", help="verify the bundle and run its golden vectors, then exit")
    p_test.add_argument("--bundle", required=True, help=_BUNDLE_HELP)
    p_verify = sub.add_parser("verify", help="check the bundle's manifest and the sha256 of every file, then exit")
    p_verify.add_argument("--bundle", required=True, help=_BUNDLE_HELP)
    for p in (p_run, p_test, p_verify):  # also after the command; SUPPRESS keeps a value given before it
        p.add_argument("--trusted-keys", metavar="DIR", default=argparse.SUPPRESS, help=_TRUSTED_HELP)
    sub.add_parser("info", help="print this board's arch, Python and agent version as JSON")
    p_rel = sub.add_parser("release", help="the board's releases (used by edgectl deploy and rollback); JSON out")
    p_rel.add_argument(
        "action",
        choices=("commit", "switch", "undo", "settle", "show"),
        help="commit an upload as releases/<id>; switch current to --to; undo or settle that switch; show the links",
    )
    p_rel.add_argument("--home", required=True, help="the edgectl home on this board (releases/, current)")
    p_rel.add_argument("--incoming", help="commit: the uploaded directory's name in HOME/releases")
    p_rel.add_argument("--to", help="switch: the bundle id current points at next")
    p_rel.add_argument(
        "--also-trust",
        metavar="BASE64",
        help="commit: verify against this public key too (base64 of its 32 bytes; a deploy's --trust-key)",
    )
    p_rel.add_argument(
        "--keep-previous", action="store_true", help="switch: the old current (and its agent) becomes previous"
    )
    p_rel.add_argument(
        "--agent", metavar="AGENT_ID", help="switch: the agent in HOME/agents that serves the release switched to"
    )
    p_rel.add_argument(
        "--installs-key",
        metavar="KEY_ID",
        help="switch: the deploy installs this trusted key next (new to the board); an undo takes it out again",
    )
    p_rel.add_argument("--trusted-keys", metavar="DIR", default=argparse.SUPPRESS, help=_TRUSTED_HELP)
    p_bench = sub.add_parser("bench", help="measure the bundle on this board (single-stream); one JSON result")
    p_bench.add_argument("--bundle", required=True, help=_BUNDLE_HELP)
    p_bench.add_argument("--input", required=True, help="sample file replayed in order (CSV or JSON lines)")
    p_bench.add_argument("--warmup", type=int, default=bench.DEFAULT_WARMUP, help="warm-up queries, not counted")
    p_bench.add_argument("--min-queries", type=int, default=bench.DEFAULT_MIN_QUERIES, help="counted queries, at least")
    p_bench.add_argument(
        "--min-duration", type=float, default=bench.DEFAULT_MIN_DURATION_S, help="seconds of counted queries, at least"
    )
    p_bench.add_argument("--trusted-keys", metavar="DIR", default=argparse.SUPPRESS, help=_TRUSTED_HELP)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "bench":
            return bench.main(args)
        if args.command == "release":
            print(json.dumps(_release(args)))
            return 0
        if args.command == "verify":
            manifest, signer = load_trusted_bundle(args.bundle, args.trusted_keys)
            result = {"bundle_id": manifest["bundle_id"], "files": len(manifest["files"]), "checksums": "ok"}
            print(json.dumps({**result, "signed_by": signer}))
            return 0
        if args.command == "selftest":
            _, info = start(args.bundle, args.trusted_keys)
            print(json.dumps(info))
            return 0
        keys = sorted(trusted_keys(args.trusted_keys))
        print(json.dumps({"arch": platform.machine(), "python": platform.python_version(), "agent": __version__,
                          "trusted_keys": keys}))  # fmt: skip
        return 0
    except AgentError as exc:
        print(f"edge-agent: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`edge-agent run ... | head`): nothing to say
        _quiet_stdout()
        return 0


def _release(args):
    with releases.operation_lock(args.home):
        return _release_op(args)


def _release_op(args):
    home = args.home
    if args.action == "commit":
        if args.incoming is None:
            raise AgentError("release commit needs --incoming NAME")
        also = public_key_from_b64(args.also_trust, "--also-trust") if args.also_trust else None
        return releases.commit(home, args.incoming, args.trusted_keys, also)
    if args.action == "switch":
        if args.to is None:
            raise AgentError("release switch needs --to BUNDLE_ID")
        return releases.switch(home, args.to, args.keep_previous, args.installs_key, args.agent)
    if args.action == "undo":
        return {"undone": releases.undo(home, args.trusted_keys)}
    if args.action == "settle":
        releases.settle(home)
        return {"settled": True}
    return {**{name: releases.link(home, name) for name in releases.LINK_DIRS}, "pending": releases.pending(home)}


def _run(args):
    signal.signal(signal.SIGTERM, _stop)  # systemd stops the service: end cleanly, final stats written
    publisher = None
    if args.mqtt:
        from edge_agent.mqtt_out import Publisher, parse_predictions

        publisher = Publisher(args.mqtt, args.mqtt_board, args.mqtt_fleet, args.mqtt_ca, args.mqtt_auth,
                              parse_predictions(args.mqtt_predictions), args.mqtt_queue)  # fmt: skip
    metrics = None
    if args.metrics_textfile or args.metrics_port:
        from edge_agent.prom_out import Metrics

        metrics = Metrics(args.metrics_textfile, args.metrics_port)
    run(args.bundle, args.input, args.output, args.stats_every, args.state_dir, args.journal, args.trusted_keys,
        silent_after=args.silent_after, publisher=publisher, metrics=metrics, kernel=not args.no_kernel,
        line_by_line=args.line_by_line)  # fmt: skip
    return 0


_BUNDLE_HELP = "bundle directory (e.g. /opt/edgectl/current)"
_TRUSTED_HELP = (
    f"directory of trusted public keys (*.pub, default {DEFAULT_TRUSTED_KEYS}); "
    "with any there, only bundles signed by one of them are served"
)


def _positive(text):
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be 1 or more")
    return value


def _seconds(text):
    """An argparse type: a number of seconds, 0 or more."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more seconds")
    return value


def _stop(signum, frame):
    raise SystemExit(0)


def _quiet_stdout():
    """After a broken pipe, point stdout at /dev/null so Python's exit flush raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
