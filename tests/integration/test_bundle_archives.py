"""Bundle archives (.tar.gz): real ones unpack, deploy and inspect; hand-made malicious ones are refused.

A refusal names the archive and the member, and happens before anything is written.
"""

import gzip
import io
import json
import tarfile

import pytest
from cli import edgectl

from edge_agent.errors import BundleError
from edge_agent.manifest import load_bundle
from edge_convert.archive import unpack, unpacked


def member(name, data=b"", kind=tarfile.REGTYPE, linkname="", size=None):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    info.size = len(data) if size is None else size
    return info, data


def write_archive(path, members):
    """A .tar.gz of (TarInfo, data) pairs, exactly as given: tarfile writes what it is told."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def raw_archive(path, headers_and_data):
    """A .tar.gz of raw bytes: for headers that claim what their data is not."""
    path.write_bytes(gzip.compress(headers_and_data))
    return path


TOP = [member("b1", kind=tarfile.DIRTYPE), member("b1/manifest.json", b"{}")]
MALICIOUS = {
    "dot-dot": ([*TOP, member("b1/../../evil", b"x")], "'b1/../../evil' has an absolute name or '..'"),
    "absolute": ([*TOP, member("/etc/evil", b"x")], "'/etc/evil' has an absolute name or '..'"),
    "symlink": (
        [*TOP, member("b1/passwd", kind=tarfile.SYMTYPE, linkname="/etc/passwd")],
        "'b1/passwd' is a symbolic link (to '/etc/passwd')",
    ),
    "hard link": (
        [*TOP, member("b1/again", kind=tarfile.LNKTYPE, linkname="b1/manifest.json")],
        "'b1/again' is a hard link",
    ),
    "char device": ([*TOP, member("b1/null", kind=tarfile.CHRTYPE)], "'b1/null' is a device or FIFO"),
    "block device": ([*TOP, member("b1/sda", kind=tarfile.BLKTYPE)], "'b1/sda' is a device or FIFO"),
    "fifo": ([*TOP, member("b1/pipe", kind=tarfile.FIFOTYPE)], "'b1/pipe' is a device or FIFO"),
    "second top folder": ([*TOP, member("b2/x", b"x")], "'b2/x' is outside the archive's single top folder 'b1'"),
    "no top folder": ([member("manifest.json", b"{}")], "'manifest.json' is not inside a top folder"),
    "duplicate": ([*TOP, member("b1/manifest.json", b"[]")], "'b1/manifest.json' appears twice"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_a_malicious_member_is_refused_naming_the_archive_and_the_member_before_anything_is_written(case, tmp_path):
    members, message = MALICIOUS[case]
    archive = write_archive(tmp_path / "evil.tar.gz", members)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BundleError) as err:
        unpack(archive, dest)
    assert str(err.value).startswith(f"{archive}: member ") and message in str(err.value)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_too_many_members_are_refused(tmp_path):
    archive = write_archive(tmp_path / "many.tar.gz", [*TOP, *(member(f"b1/f{i}", b"x") for i in range(10))])
    with pytest.raises(BundleError, match="more than 8 members"):
        unpack(archive, tmp_path, max_members=8)
    assert unpack(archive, tmp_path, max_members=12) == tmp_path / "b1"


def test_a_member_claiming_gigabytes_is_refused_from_its_header(tmp_path):
    """The default limits; the header alone says 10 GiB, and nothing is read past it."""
    info, _ = member("b1/huge", size=10 << 30)
    archive = raw_archive(tmp_path / "huge.tar.gz", info.tobuf(tarfile.GNU_FORMAT) + b"\0" * 4096)
    with pytest.raises(BundleError, match=r"member 'b1/huge' takes the unpacked size past 512.0 MiB"):
        unpack(archive, tmp_path)
    assert archive.stat().st_size < 1000


def test_a_gzip_bomb_stops_at_the_limit(tmp_path):
    bomb = write_archive(tmp_path / "bomb.tar.gz", [*TOP, member("b1/zeros", b"\0" * (8 << 20))])
    assert bomb.stat().st_size < 20_000
    with pytest.raises(BundleError, match="bomb.tar.gz: decompresses to more than 1.0 MiB"):
        unpack(bomb, tmp_path, max_members=10, max_bytes=1 << 20)
    trailing = raw_archive(tmp_path / "trailing.tar.gz", b"\0" * (8 << 20))  # zeros past the end of the tar
    with pytest.raises(BundleError, match="decompresses to more than"):
        unpack(trailing, tmp_path, max_members=10, max_bytes=1 << 20)


def test_a_pax_header_claiming_gigabytes_does_not_make_tarfile_allocate_them(tmp_path):
    pax = tarfile.TarInfo("b1/pax")
    pax.type, pax.size = tarfile.XHDTYPE, 4 << 30
    archive = raw_archive(tmp_path / "pax.tar.gz", pax.tobuf(tarfile.GNU_FORMAT) + b"30 path=" + b"a" * 4096)
    with pytest.raises(BundleError, match="pax.tar.gz: "):
        unpack(archive, tmp_path)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"not gzip at all", "not a bundle archive"),
        (gzip.compress(b"")[:-3], "not a bundle archive"),
        (gzip.compress(b""), "damaged bundle archive"),
        (gzip.compress(b"\0" * 1024), "an empty archive"),
    ],
)
def test_what_is_not_a_tar_gz_is_refused(tmp_path, content, message):
    path = tmp_path / "x.tar.gz"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=message):
        unpack(path, tmp_path)


def test_a_truncated_archive_is_refused(xgb_build, tmp_path):
    data = xgb_build.bundle_dir.with_name("xgboost.tar.gz").read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="cut.tar.gz: "), unpacked(cut) as bundle:
        load_bundle(bundle)


def test_a_built_archive_unpacks_to_the_same_bundle_and_the_temporary_copy_goes(xgb_build):
    archive = xgb_build.bundle_dir.with_name("xgboost.tar.gz")
    with unpacked(archive) as bundle:
        assert bundle.name == xgb_build.manifest["bundle_id"]
        assert load_bundle(bundle) == xgb_build.manifest
        assert sorted(p.relative_to(bundle) for p in bundle.rglob("*")) == sorted(
            p.relative_to(xgb_build.bundle_dir) for p in xgb_build.bundle_dir.rglob("*")
        )
    assert not bundle.exists()
    with unpacked(xgb_build.bundle_dir) as same:
        assert same == xgb_build.bundle_dir


def test_inspect_and_deploy_take_an_archive(xgb_build, tmp_path):
    archive = xgb_build.bundle_dir.with_name("xgboost.tar.gz")
    got = edgectl("inspect", str(archive), "--json")
    assert got.returncode == 0, got.stderr
    info = json.loads(got.stdout)
    assert info["bundle_id"] == xgb_build.manifest["bundle_id"] and info["checksums"] == "ok"
    assert info["path"] == str(archive) and info["archive_bytes"] == archive.stat().st_size
    board = tmp_path / "board"
    got = edgectl("deploy", str(archive), f"local:{board}", "--json", "-q")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["bundle_id"] == xgb_build.manifest["bundle_id"]
    assert (board / "current" / "manifest.json").is_file()


def test_the_cli_refuses_a_malicious_archive_with_one_clean_message(tmp_path):
    evil = write_archive(tmp_path / "evil.tar.gz", MALICIOUS["symlink"][0])
    for command in (["inspect", str(evil)], ["deploy", str(evil), f"local:{tmp_path / 'board'}"]):
        got = edgectl(*command)
        assert got.returncode == 1 and "Traceback" not in got.stderr
        assert f"{evil}: member 'b1/passwd' is a symbolic link" in got.stderr
    assert not (tmp_path / "board").exists()
