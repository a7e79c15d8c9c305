"""Bringing the agent up on a board after a switch, and judging its health.

Boards run by systemd restart the edge-agent unit (Type=notify: the restart
returns once the agent has passed its self-test and sent READY). Elsewhere (a
local board directory, a chroot), health is the agent's self-test of `current`.
"""

import ipaddress
import json
import os
import shlex
import subprocess
from pathlib import Path

from edgectl.errors import EdgectlError
from edgectl.targets import q, sh

UNIT_NAME = "edge-agent.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT_NAME}"
STATE_DIR = "/var/lib/edge-agent"  # systemd's StateDirectory=edge-agent
DEFAULT_INPUT = "tcp:127.0.0.1:7878"
METRICS_FILE = "/run/edge-agent/edge_agent.prom"  # RuntimeDirectory=edge-agent: readable by node_exporter
CREDENTIALS = "credentials"  # HOME/credentials: the broker's CA and password, root's; the unit loads them
WATCHDOG_SEC = 30
# Set by the test suite: a deploy must never install the unit on the machine that runs the tests.
NOT_THIS_HOST = "EDGECTL_NO_SERVICE_ON_THIS_HOST"

# Hardening that the agent (Python, numpy, ctypes, LiteRT, a loopback socket) runs under.
# Not set, on purpose: MemoryDenyWriteExecute (libffi and XNNPACK map executable memory)
# and ProcSubset=pid (LiteRT reads /proc/cpuinfo).
_HARDENING = """\
DynamicUser=yes
StateDirectory=edge-agent
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateUsers=yes
DevicePolicy=closed
ProtectHostname=yes
ProtectClock=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
IPAddressDeny=any
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
"""


def unit_text(target, source=DEFAULT_INPUT, memory_mb=None, telemetry=None, broker_addresses=()):
    """The edge-agent systemd unit for a remote target (its home, venv and agent code).

    telemetry: what the service also reports (see deploy.deploy); the sandbox then lets the broker's
    addresses through, loads its CA and password as credentials, and keeps the metrics file readable.
    """
    home, telemetry = target.home, telemetry or {}
    argv = [target.agent_python, "-m", "edge_agent", "run", "--bundle", f"{home}/current"]
    extra = ""
    mqtt = telemetry.get("mqtt")
    if mqtt:
        argv += ["--mqtt", mqtt["url"], "--mqtt-fleet", mqtt["fleet"], "--mqtt-board", mqtt["board"]]
        for name in ("ca", "auth"):
            if mqtt.get(name):
                # %d: the unit's credentials folder, readable by its dynamic user only (systemd 248 or newer)
                argv += [f"--mqtt-{name}", f"%d/mqtt-{name}"]
                extra += f"LoadCredential=mqtt-{name}:{home}/{CREDENTIALS}/mqtt-{name}\n"
    if telemetry.get("metrics_port"):
        argv += ["--metrics-port", str(telemetry["metrics_port"])]
    umask = "0077"
    if telemetry.get("node_exporter_dir"):
        argv += ["--metrics-textfile", METRICS_FILE]
        # node_exporter (another user) reads the file; the state folder stays private (DynamicUser's private/).
        # Not preserved: systemd would move it under /run/private (0700). While the agent is stopped the
        # link dangles and node_exporter says node_textfile_scrape_error 1, which is true.
        extra += "RuntimeDirectory=edge-agent\nRuntimeDirectoryMode=0755\n"
        umask = "0022"
    command = shlex.join([*argv, "--input", source, "--state-dir", STATE_DIR])
    allow = " ".join(["localhost", *broker_addresses])
    # The budget is the agent's peak RSS: above it the kernel reclaims, at twice it the agent is killed
    # (and restarted). Enforced only where the memory controller is on (cgroup v2 with memory delegated).
    memory = f"MemoryHigh={memory_mb}M\nMemoryMax={memory_mb * 2}M\n" if memory_mb else ""
    return f"""\
[Unit]
Description=edgectl inference agent ({home}/current)
After=network.target
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
Environment=PYTHONPATH={target.agent_link}
ExecStart={command}
WatchdogSec={WATCHDOG_SEC}
TimeoutStartSec=120
Restart=on-failure
RestartSec=2
{memory}{extra}UMask={umask}
{_HARDENING}IPAddressAllow={allow}

[Install]
WantedBy=multi-user.target
"""


def broker_addresses(target, url):
    """The broker's IP addresses as the board resolves them (the sandbox allows only those and loopback)."""
    from edge_agent.mqtt_out import parse_url

    host = parse_url(url)[1]
    try:
        return (str(ipaddress.ip_address(host)),)
    except ValueError:
        pass
    got = target.run(["sh", "-c", f"getent ahosts {shlex.quote(host)} | awk '{{print $1}}' | sort -u"])
    found = tuple(got.stdout.split())
    if not found:
        raise EdgectlError(f"{target}: the board cannot resolve the MQTT broker's name {host!r}; use its address")
    return found


def _this_machine_id():
    try:
        return Path("/etc/machine-id").read_text().strip()
    except OSError:
        return ""


def state_dir(target, board):
    """Where the agent keeps stats.json on this board: the service's StateDirectory, else HOME/state
    (written by `edgectl run`)."""
    return STATE_DIR if runs_service(target, board) else f"{target.home}/state"


def selftest_current(target):
    """The agent's self-test of the board's `current` release (CompletedProcess)."""
    return target.run([*target.agent_argv(), "selftest", "--bundle", f"{target.home}/current"])


def runs_service(target, board):
    """The agent runs as a systemd service on remote boards with systemd, deployed as root."""
    return bool(target.managed_env and board.get("systemd") and board.get("root"))


def logs_command(follow, lines=200):
    return ["journalctl", "-u", UNIT_NAME, "-n", str(lines), "--no-pager", *(["-f"] if follow else [])]


def planned_unit(target, board, memory_mb=None, telemetry=None):
    """The unit text a deploy with these settings puts on this board."""
    mqtt = (telemetry or {}).get("mqtt")
    addresses = broker_addresses(target, mqtt["url"]) if mqtt else ()
    return unit_text(target, memory_mb=memory_mb, telemetry=telemetry, broker_addresses=addresses)


def installed_unit(target):
    """The board's unit text ("" when there is none)."""
    return target.run(["sh", "-c", f"cat {UNIT_PATH} 2>/dev/null || true"]).stdout


def install(target, board, memory_mb=None, telemetry=None):
    """Install or update the unit on a systemd board (as root); True when a unit is in place.
    telemetry's CA and password files are copied to HOME/credentials (root only) for the unit to load."""
    if not runs_service(target, board):
        return False
    if os.environ.get(NOT_THIS_HOST) and board.get("machine_id") and board["machine_id"] == _this_machine_id():
        raise EdgectlError(
            f"{target}: the board is this machine (same /etc/machine-id) and {NOT_THIS_HOST} is set: "
            f"no {UNIT_NAME} is installed here. Deploy to a separate board, or unset {NOT_THIS_HOST}"
        )
    _check_systemd_for(target, board, telemetry)
    text = planned_unit(target, board, memory_mb, telemetry)
    _put_credentials(target, (telemetry or {}).get("mqtt") or {})
    if (telemetry or {}).get("node_exporter_dir"):
        link = f"{telemetry['node_exporter_dir'].rstrip('/')}/edge_agent.prom"
        sh(target, f"mkdir -p {q(telemetry['node_exporter_dir'])} && ln -sfn {METRICS_FILE} {q(link)}")
    if installed_unit(target) != text:
        write = f"cat > {UNIT_PATH} <<'EDGECTL_UNIT'\n{text}EDGECTL_UNIT\n"
        sh(target, write + f"systemctl daemon-reload && systemctl enable -q {UNIT_NAME}")
    return True


def _check_systemd_for(target, board, telemetry):
    mqtt = (telemetry or {}).get("mqtt") or {}
    version = board.get("systemd_version")
    if (mqtt.get("ca") or mqtt.get("auth")) and version and version.isdigit() and int(version) < 248:
        raise EdgectlError(
            f"{target}: --mqtt-ca and --mqtt-auth reach the service as systemd credentials (LoadCredential, %d), "
            f"which need systemd 248 or newer; the board has {version}. Use mqtt:// without a password, or "
            "upgrade the board's OS"
        )


def _put_credentials(target, mqtt):
    files = {f"mqtt-{name}": mqtt[name] for name in ("ca", "auth") if mqtt.get(name)}
    if not files:
        return
    folder = f"{target.home}/{CREDENTIALS}"
    for name, path in files.items():
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise EdgectlError(f"--mqtt-{name.removeprefix('mqtt-')} {path}: cannot read it: {exc.strerror}") from None
        write = f"umask 077 && mkdir -p {q(folder)} && cat > {q(folder)}/{name}"
        copy = target.popen(["sh", "-c", write], stdin=subprocess.PIPE)
        copy.communicate(data, timeout=60)
        if copy.returncode != 0:
            raise EdgectlError(f"{target}: cannot write {folder}/{name} on the board")


def restart_and_check(target, board):
    """Restart the agent where a service manager runs it; return {"healthy", "method", "detail", "self_test"}."""
    if runs_service(target, board):
        # reset-failed: a unit at its start limit (StartLimitBurst failed starts, e.g. a release that was
        # rolled back) would refuse this release too, "start request repeated too quickly".
        restart = f"systemctl reset-failed {UNIT_NAME} 2>/dev/null; systemctl restart {UNIT_NAME}"
        got = target.run(["sh", "-c", f"{restart} && systemctl is-active {UNIT_NAME}"])
        if got.returncode != 0:
            logs = target.run(["sh", "-c", f"journalctl -u {UNIT_NAME} -n 20 --no-pager 2>&1 || true"])
            return {"healthy": False, "method": "systemd", "detail": logs.stdout.strip(), "self_test": None}
    got = selftest_current(target)
    self_test = json.loads(got.stdout)["self_test"] if got.returncode == 0 else None
    method = "systemd" if runs_service(target, board) else "selftest"
    return {"healthy": got.returncode == 0, "method": method, "detail": got.stderr.strip(), "self_test": self_test}
