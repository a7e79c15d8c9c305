"""Bringing the agent up on a board after a switch, and judging its health.

Boards run by systemd restart the edge-agent unit (Type=notify: the restart
returns once the agent has passed its self-test and sent READY). Elsewhere (a
local board directory, a chroot), health is the agent's self-test of `current`.
"""

import json

UNIT_NAME = "edge-agent.service"


def restart_and_check(target, board):
    """Restart the agent where a service manager runs it; return {"healthy", "method", "detail", "self_test"}."""
    if board.get("systemd") and target.managed_env:
        got = target.run(["sh", "-c", f"systemctl restart {UNIT_NAME} && systemctl is-active {UNIT_NAME}"])
        if got.returncode != 0:
            logs = target.run(["sh", "-c", f"journalctl -u {UNIT_NAME} -n 20 --no-pager 2>&1 || true"])
            return {"healthy": False, "method": "systemd", "detail": logs.stdout.strip(), "self_test": None}
    got = target.run([*target.agent_argv(), "selftest", "--bundle", f"{target.home}/current"])
    self_test = json.loads(got.stdout)["self_test"] if got.returncode == 0 else None
    method = "systemd" if board.get("systemd") and target.managed_env else "selftest"
    return {"healthy": got.returncode == 0, "method": method, "detail": got.stderr.strip(), "self_test": self_test}
