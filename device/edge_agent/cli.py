"""`edge-agent`: the board-side command. Standard library argparse only (no click on boards)."""

import argparse
import json
import platform
import signal
import sys

from edge_agent import __version__, bench
from edge_agent.agent import run, start
from edge_agent.errors import AgentError
from edge_agent.signature import DEFAULT_TRUSTED_KEYS, load_trusted_bundle, trusted_keys
from edge_agent.streams import DEFAULT_SILENT_AFTER_S


def main(argv=None):
    parser = argparse.ArgumentParser(prog="edge-agent", description="Serve an edgectl bundle on this board.")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--trusted-keys", metavar="DIR", default=DEFAULT_TRUSTED_KEYS, help=_TRUSTED_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="serve samples from a file or stdin, JSON records to stdout")
    p_run.add_argument("--bundle", required=True, help="bundle directory (e.g. /opt/edgectl/current)")
    p_run.add_argument(
        "--input", default="-", help="- (stdin), a sample file, tcp:127.0.0.1:PORT or serial:/dev/ttyAMA0@115200"
    )
    p_run.add_argument("--output", default="-", help="- (stdout), or the input's serial link: serial:/dev/ttyAMA0")
    p_run.add_argument("--journal", help="directory of the serial link's journal (default STATE_DIR/journal)")
    p_run.add_argument("--stats-every", type=int, default=1000, help="windows between stats records")
    p_run.add_argument("--state-dir", help="keep the latest stats in STATE_DIR/stats.json (the service)")
    p_run.add_argument(
        "--silent-after",
        type=_seconds,
        default=DEFAULT_SILENT_AFTER_S,
        metavar="SECONDS",
        help="flag a stream with no sample for this long (a 'stream' record; 0: never)",
    )
    p_test = sub.add_parser("selftest", help="verify the bundle and run its golden vectors, then exit")
    p_test.add_argument("--bundle", required=True)
    p_verify = sub.add_parser("verify", help="check the bundle's manifest and the sha256 of every file, then exit")
    p_verify.add_argument("--bundle", required=True)
    for p in (p_run, p_test, p_verify):  # also after the command; SUPPRESS keeps a value given before it
        p.add_argument("--trusted-keys", metavar="DIR", default=argparse.SUPPRESS, help=_TRUSTED_HELP)
    sub.add_parser("info", help="print this board's arch, Python and agent version as JSON")
    p_bench = sub.add_parser("bench", help="measure the bundle on this board (single-stream); one JSON result")
    p_bench.add_argument("--bundle", required=True)
    p_bench.add_argument("--input", required=True, help="sample file replayed in order (CSV or JSON lines)")
    p_bench.add_argument("--warmup", type=int, default=bench.DEFAULT_WARMUP, help="queries not counted")
    p_bench.add_argument("--min-queries", type=int, default=bench.DEFAULT_MIN_QUERIES, help="counted queries")
    p_bench.add_argument("--min-duration", type=float, default=bench.DEFAULT_MIN_DURATION_S, help="seconds")
    p_bench.add_argument("--trusted-keys", metavar="DIR", default=argparse.SUPPRESS, help=_TRUSTED_HELP)
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "bench":
            return bench.main(args)
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


def _run(args):
    signal.signal(signal.SIGTERM, _stop)  # systemd stops the service: end cleanly, final stats written
    run(args.bundle, args.input, args.output, args.stats_every, args.state_dir, args.journal, args.trusted_keys,
        silent_after=args.silent_after)  # fmt: skip
    return 0


_TRUSTED_HELP = (
    f"directory of trusted public keys (*.pub, default {DEFAULT_TRUSTED_KEYS}); "
    "with any there, only bundles signed by one of them are served"
)


def _seconds(text):
    """An argparse type: a number of seconds, 0 or more."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be 0 or more seconds")
    return value


def _stop(signum, frame):
    raise SystemExit(0)
