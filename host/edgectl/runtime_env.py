"""The agent's environment on a remote board: a venv with numpy and a TFLite runtime, and the agent code.

Online, the board's pip installs from its own package index. Offline (factory
boards), the host downloads wheels for the board's arch, Python and glibc, ships
them, and the board installs with --no-index.
"""

import hashlib
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import edge_agent
from edge_agent.releases import agent_id
from edgectl.errors import EdgectlError
from edgectl.targets import q, sh

WHEEL_CACHE = Path.home() / ".cache" / "edgectl" / "wheels"


def requirements(board, needs_tflite, serial=False, signed=False, mqtt=False, metrics=False):
    """(pip requirements, modules to import) for this board: LiteRT where it has wheels,
    tflite-runtime with numpy<2 on armv7l, pyserial and cobs for a serial link,
    PyNaCl (the agent's Ed25519 verifier) on a board that trusts signing keys, paho-mqtt
    where the agent publishes to a broker, prometheus-client where it exports metrics."""
    armhf = board["arch"] == "armv7l"
    reqs, modules = ["numpy<2" if armhf else "numpy"], ["numpy"]
    if needs_tflite:
        reqs.append("tflite-runtime" if armhf else "ai-edge-litert")
        modules.append("tflite_runtime" if armhf else "ai_edge_litert")
    if serial:
        reqs += ["pyserial", "cobs"]
        modules += ["serial", "cobs"]
    if signed:
        reqs.append("pynacl")  # 5.4 MB installed on aarch64 with cffi; cryptography would take 17 MB
        modules.append("nacl")
    if mqtt:
        reqs.append("paho-mqtt>=2.1")  # pure Python
        modules.append("paho.mqtt.client")
    if metrics:
        reqs.append("prometheus-client")  # pure Python
        modules.append("prometheus_client")
    return reqs, modules


def ensure(target, board, needs_tflite, offline, say, serial=False, signed=False, mqtt=False, metrics=False):
    """Make {home}/venv hold what the agent needs (reused when it already does); ship the agent (ship_agent)."""
    reqs, modules = requirements(board, needs_tflite, serial, signed, mqtt, metrics)
    python = f"{target.home}/venv/bin/python"
    check = target.run([python, "-c", f"import {', '.join(modules)}"])
    if check.returncode != 0:
        say(f"creating the agent's venv on the board ({', '.join(reqs)})")
        sh(target, f"test -x {q(python)} || python3 -m venv {q(target.home)}/venv")
        if offline:
            wheels = download_wheels(board, reqs, say)
            sh(target, f"rm -rf {q(target.home)}/wheels")
            target.put_dir(wheels, f"{target.home}/wheels")
            source = f"--no-index --find-links {q(target.home)}/wheels"
        else:
            source = ""
        got = target.run(["sh", "-c", f"{q(python)} -m pip install -q {source} {' '.join(map(q, reqs))}"], timeout=1800)
        if got.returncode != 0:
            hint = "" if offline else "; no package index from the board? deploy with --offline"
            raise EdgectlError(
                f"{target}: installing {', '.join(reqs)} on the board failed{hint}:\n{got.stderr[-1500:]}"
            )
    ship_agent(target)


def ship_agent(target):
    """Put this host's agent code in HOME/agents/<agent id> (uploaded once per version, never changed
    after) and have the target run that agent from now on; return its id. Neither `current` nor the
    `agent` link the service runs is touched: a deploy switches them together (edge_agent/releases.py).
    """
    package = Path(edge_agent.__file__).parent
    agent = agent_id(package)
    kept = f"{target.home}/agents/{agent}"
    if target.run(["test", "-d", f"{kept}/edge_agent"]).returncode != 0:  # made by one rename: there means whole
        incoming = f"{target.home}/agents/.incoming-{secrets.token_hex(8)}"
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copytree(package, Path(tmp) / "edge_agent", ignore=shutil.ignore_patterns("__pycache__"))
            target.put_dir(tmp, incoming)
        sh(target, f"mv -T {q(incoming)} {q(kept)}")
    target.agent_id = agent
    return agent


def download_wheels(board, reqs, say):
    """Wheels for the board's arch, Python and glibc, downloaded once into the host's cache."""
    major_minor = "".join(board["python"].split(".")[:2])
    glibc_minor = int(board["glibc"].split(".")[1]) if board.get("glibc") else 17
    arch = board["arch"]
    key = hashlib.sha256(" ".join([arch, major_minor, str(glibc_minor), *reqs]).encode()).hexdigest()[:12]
    dest = WHEEL_CACHE / f"{arch}-cp{major_minor}-{key}"
    if (dest / ".complete").exists():
        return dest
    say(f"downloading wheels for {arch}, CPython {major_minor}, glibc 2.{glibc_minor}: {', '.join(reqs)}")
    platforms = [f"manylinux_2_{m}_{arch}" for m in range(17, glibc_minor + 1)]
    platforms += [f"manylinux2014_{arch}", f"linux_{arch}"]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--dest", str(dest), "--only-binary=:all:"]
    cmd += ["--python-version", major_minor, "--implementation", "cp", "--abi", f"cp{major_minor}"]
    for platform in platforms:
        cmd += ["--platform", platform]
    got = subprocess.run([*cmd, *reqs], capture_output=True, text=True)
    if got.returncode != 0:
        raise EdgectlError(f"cannot download wheels for the board ({arch}, cp{major_minor}):\n{got.stderr[-1500:]}")
    (dest / ".complete").touch()
    return dest
