"""The emulated arm64 board: a Debian bookworm arm64 root file system behind a real sshd.

Built once per machine by arm64_rootfs.sh (debootstrap + qemu-user-static, 5-10
minutes) and cached as a tarball keyed by the script's hash. Each test session
unpacks it, mounts /proc with an ARM /proc/cpuinfo over it (LiteRT under qemu 7.2
crashes on the host's x86 one; /sys is left unmounted for the same reason), binds
/dev, and starts sshd chrooted into it: every command runs as arm64 under qemu-user.
"""

import shutil
import subprocess
import tempfile
from pathlib import Path

from boards import rootfs, sshd

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "arm64_rootfs.sh"
CACHE = rootfs.CACHE

CPUINFO_A72 = (
    "".join(
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
        "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n"
        for i in range(4)
    )
    + "Hardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n"
)


def tools_missing():
    """What this machine lacks to build and run the board, or None."""
    return rootfs.first_missing(("debootstrap", "qemu-aarch64-static", "update-binfmts", sshd.SSHD))


def rootfs_tarball():
    """The cached root file system tarball, built first if this recipe has none yet."""
    return rootfs.cached_tarball(RECIPE, "arm64")


def _mounted_under(path):
    points = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if len(line.split()) > 1]
    return [p for p in points if p == str(path) or p.startswith(f"{path}/")]


def _remove(run_dir):
    """Unmount everything under a board directory, then delete it, never through a live mount (/dev)."""
    for point in reversed(_mounted_under(run_dir)):
        subprocess.run(["umount", "-l", point], check=False)
    if not _mounted_under(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)


def remove_stale_boards():
    """Boards left by a test run that was killed before its teardown."""
    for run_dir in CACHE.glob("run-*"):
        if not run_dir.name.startswith("run-sd-"):  # a booted systemd board's (systemd_board.py), maybe live
            _remove(run_dir)


class Arm64Board:
    """Unpack, mount, serve; `stop` undoes it all."""

    def __init__(self):
        CACHE.mkdir(parents=True, exist_ok=True)
        remove_stale_boards()
        # sshd's ChrootDirectory: every path component root-owned and not group/world writable.
        self.dir = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE))
        self.root = self.dir / "root"
        self.root.mkdir(mode=0o755)
        self.ssh = None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        subprocess.run(["tar", "-C", str(self.root), "-xf", str(rootfs_tarball())], check=True)
        _binfmt()
        self._mount(["-t", "proc", "proc"], self.root / "proc")
        cpuinfo = self.dir / "cpuinfo"
        cpuinfo.write_text(CPUINFO_A72)
        self._mount(["--bind", str(cpuinfo)], self.root / "proc" / "cpuinfo")
        self._mount(["--rbind", "/dev"], self.root / "dev")
        self.ssh = sshd.start(alias="arm64board", chroot=self.root)

    def _mount(self, args, where):
        subprocess.run(["mount", *args, str(where)], check=True)

    def stop(self):
        if self.ssh:
            self.ssh.stop()
        _remove(self.dir)


def _binfmt():
    if "binfmt_misc" not in Path("/proc/mounts").read_text():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"], check=True)
    subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists():
        raise RuntimeError("qemu-aarch64 is not registered with binfmt_misc")
