"""Bundle archives: a bundle directory packed as <dir>.tar.gz, and unpacked again safely.

An archive holds one top folder (the bundle id) of regular files and folders, and
nothing else. `unpack` refuses, naming the archive and the member, before it writes a
byte: absolute names and "..", symbolic and hard links, devices and FIFOs, members
outside the top folder, duplicate names, more than MAX_MEMBERS members or more than
MAX_BYTES in all (from the headers). While it writes it counts again, and the gzip
stream is decompressed through a cap, so a gzip bomb or a header that claims a huge
size stops at the limit instead of filling the disk or memory.
"""

import contextlib
import gzip
import json
import os
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

from edge_agent.errors import BundleError
from edge_agent.manifest import MANIFEST_NAME

MAX_MEMBERS = 1000  # a bundle has a few dozen files
MAX_BYTES = 512 << 20  # unpacked; five times the largest board profile's bundle budget
HEADER_ROOM = 4096  # per member: its header, padding and pax records (long names) in the tar stream
CHUNK = 1 << 20
_DATA_FILTER = getattr(tarfile, "data_filter", None)  # Python 3.11.4+, 3.10.12+, 3.9.17+


def pack(bundle_dir):
    """Pack the bundle directory into <dir>.tar.gz beside it, with the bundle id as the top folder."""
    bundle_dir = Path(bundle_dir)
    bundle_id = json.loads((bundle_dir / MANIFEST_NAME).read_text())["bundle_id"]
    target = bundle_dir.with_name(bundle_dir.name + ".tar.gz")
    with tarfile.open(target, "w:gz") as tar:
        tar.add(bundle_dir, arcname=bundle_id)
    return target


@contextlib.contextmanager
def unpacked(path, max_members=MAX_MEMBERS, max_bytes=MAX_BYTES):
    """The bundle directory for `path`: the directory itself, or the bundle archive (.tar.gz)
    unpacked into a temporary directory that is removed afterwards."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=f"{path.name}.") as tmp:
        yield unpack(path, tmp, max_members, max_bytes)


def unpack(archive, dest, max_members=MAX_MEMBERS, max_bytes=MAX_BYTES):
    """Unpack a bundle archive into the directory dest; return the bundle directory (dest/<top folder>).

    Raises BundleError naming the archive (and the member) for anything but a plain bundle.
    """
    archive, dest = Path(archive), Path(dest)
    with tempfile.TemporaryFile(dir=dest) as tar_file:
        size = _gunzip(archive, tar_file, max_bytes + (max_members + 2) * HEADER_ROOM)
        try:
            with tarfile.open(fileobj=_Bounded(tar_file, size), mode="r:") as tar:
                members = _checked_members(tar, archive, dest, max_members, max_bytes)
                _extract(tar, members, archive, dest, max_bytes)
        except tarfile.TarError as exc:
            raise BundleError(f"{archive}: damaged bundle archive: {exc}") from None
    return dest / PurePosixPath(members[0].name).parts[0]


def _gunzip(archive, out, cap):
    """Decompress the archive into the file `out`, refusing more than cap bytes (a gzip bomb); return the size."""
    size = 0
    try:
        with gzip.open(archive, "rb") as src:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > cap:
                    raise BundleError(
                        f"{archive}: decompresses to more than {_mib(cap)}, far more than a bundle; "
                        "refusing to unpack it"
                    )
                out.write(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise BundleError(f"{archive}: not a bundle archive (.tar.gz) or damaged: {exc}") from None
    except OSError as exc:
        raise BundleError(f"{archive}: cannot read the archive: {exc.strerror or exc}") from None
    out.flush()
    return size


class _Bounded:
    """The decompressed tar, read as a file that ends where it ends: a header claiming more
    bytes than there are (a pax record of gigabytes) cannot make tarfile allocate them."""

    def __init__(self, f, size):
        self.f, self.size = f, size
        f.seek(0)

    def read(self, n=-1):
        left = max(0, self.size - self.f.tell())
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def seek(self, pos, whence=os.SEEK_SET):
        return self.f.seek(pos, whence)

    def tell(self):
        return self.f.tell()


def _checked_members(tar, archive, dest, max_members, max_bytes):
    """Every member, each checked as its header is read (before tarfile reads past its data)."""
    members, names, total = [], set(), 0
    while (member := tar.next()) is not None:
        if len(members) == max_members:
            raise BundleError(
                f"{archive}: more than {max_members} members, far more than a bundle; refusing to unpack it"
            )
        total += max(member.size, 0)
        if total > max_bytes:
            raise _too_big(archive, member, max_bytes)
        top = PurePosixPath(members[0].name).parts[0] if members else None
        why = _refusal(member, top, names)
        if why is None and _DATA_FILTER is not None:  # the standard library's view as a second opinion
            try:
                _DATA_FILTER(member, str(dest))
            except tarfile.FilterError as exc:
                why = f"is refused by tarfile's data filter ({exc})"
        if why:
            raise BundleError(f"{archive}: member {member.name!r} {why}; refusing to unpack the archive")
        names.add(PurePosixPath(member.name))
        members.append(member)
    if not members:
        raise BundleError(f"{archive}: an empty archive, not a bundle")
    return members


def _refusal(member, top, names):
    """Why a member cannot be part of a bundle, or None."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return "has an absolute name or '..' (it would land outside the bundle)"
    if member.issym() or member.islnk():
        return f"is a {'symbolic' if member.issym() else 'hard'} link (to {member.linkname!r}); bundles hold only files"
    if member.isdev() or member.isfifo():
        return "is a device or FIFO; bundles hold only files"
    if not (member.isreg() or member.isdir()) or member.issparse():
        return f"has tar type {member.type!r}, not a plain file or folder"
    if top is not None and path.parts[0] != top:
        return f"is outside the archive's single top folder {top!r}"
    if top is None and not member.isdir() and len(path.parts) == 1:
        return "is not inside a top folder"
    if path in names:
        return "appears twice"
    return None


def _extract(tar, members, archive, dest, max_bytes):
    """Write the checked members under dest, counting bytes again as they are written."""
    written = 0
    for member in members:
        target = dest.joinpath(*PurePosixPath(member.name).parts)
        try:
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            with open(target, "xb") as out:  # x: never through an existing link or over a file
                while chunk := src.read(CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise _too_big(archive, member, max_bytes)
                    out.write(chunk)
            target.chmod(0o755 if member.mode & 0o100 else 0o644)
        except OSError as exc:
            raise BundleError(f"{archive}: cannot unpack member {member.name!r} into {dest}: {exc}") from None


def _too_big(archive, member, max_bytes):
    return BundleError(
        f"{archive}: member {member.name!r} takes the unpacked size past {_mib(max_bytes)}, far more than a bundle; "
        "refusing to unpack the archive"
    )


def _mib(n):
    return f"{n / (1 << 20):.1f} MiB"
