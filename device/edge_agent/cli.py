"""`edge-agent`: the board-side command. Standard library argparse only (no click on boards)."""

import argparse
import json
import platform
import signal
import sys

from edge_agent import __version__
from edge_agent.agent import run, start
from edge_agent.errors import AgentError
from edge_agent.manifest import load_bundle


def main(argv=None):
    parser = argparse.ArgumentParser(prog="edge-agent", description="Serve an edgectl bundle on this board.")
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
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
    p_test = sub.add_parser("selftest", help="verify the bundle and run its golden vectors, then exit")
    p_test.add_argument("--bundle", required=True)
    p_verify = sub.add_parser("verify", help="check the bundle's manifest and the sha256 of every file, then exit")
    p_verify.add_argument("--bundle", required=True)
    sub.add_parser("info", help="print this board's arch, Python and agent version as JSON")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "verify":
            manifest = load_bundle(args.bundle)
            print(json.dumps({"bundle_id": manifest["bundle_id"], "files": len(manifest["files"]), "checksums": "ok"}))
            return 0
        if args.command == "selftest":
            _, info = start(args.bundle)
            print(json.dumps(info))
            return 0
        print(json.dumps({"arch": platform.machine(), "python": platform.python_version(), "agent": __version__}))
        return 0
    except AgentError as exc:
        print(f"edge-agent: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _run(args):
    signal.signal(signal.SIGTERM, _stop)  # systemd stops the service: end cleanly, final stats written
    run(args.bundle, args.input, args.output, args.stats_every, args.state_dir, args.journal)
    return 0


def _stop(signum, frame):
    raise SystemExit(0)
