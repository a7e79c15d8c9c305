"""edge_convert.bundle.staged: the one way a bundle and its siblings reach --out, all of them or nothing."""

import json

import pytest

from edge_agent.manifest import FORMAT
from edge_convert import ConversionError, bundle


def write_build(work, text):
    """What a build writes: the bundle (a manifest of our format saying `text`), its archive beside it, OUT-data/."""
    work.mkdir()
    (work / "manifest.json").write_text(json.dumps({"format": FORMAT, "name": text}))
    work.with_name(work.name + ".tar.gz").write_text(text)
    data = work.with_name(work.name + "-data")
    data.mkdir()
    (data / "train.csv").write_text(text)


def name(bundle_dir):
    return json.loads((bundle_dir / "manifest.json").read_text())["name"]


def listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_everything_is_moved_into_place_at_the_end_replacing_an_old_bundle_and_keeping_other_files(tmp_path):
    out = tmp_path / "bundles" / "b"
    with bundle.staged(out) as work:
        write_build(work, "old")
    (out.with_name("b-data") / "mine.txt").write_text("the user's")
    (out / "stale.txt").write_text("from the old bundle")
    with bundle.staged(out) as work:
        write_build(work, "new")
        assert name(out) == "old"  # replaced only at the end
    assert listing(tmp_path / "bundles") == ["b", "b-data", "b-data/mine.txt", "b-data/train.csv", "b.tar.gz",
                                             "b/manifest.json"]  # fmt: skip
    assert name(out) == out.with_name("b.tar.gz").read_text() == "new"


def test_a_failure_leaves_nothing_not_even_the_folders_it_made_and_the_old_bundle_stays(tmp_path):
    with pytest.raises(RuntimeError), bundle.staged(tmp_path / "new" / "deeper" / "b") as work:
        write_build(work, "half")
        raise RuntimeError("training failed late")
    assert listing(tmp_path) == []
    with bundle.staged(tmp_path / "b") as work:
        write_build(work, "old")
    before = listing(tmp_path)
    with pytest.raises(RuntimeError), bundle.staged(tmp_path / "b") as work:
        write_build(work, "half")
        raise RuntimeError("signing failed")
    assert listing(tmp_path) == before and name(tmp_path / "b") == "old"


def test_nested_stages_land_once_in_place(tmp_path):
    with bundle.staged(tmp_path / "b") as outer:
        with bundle.staged(outer) as inner:  # `edgectl build` around `train`, around `convert`
            write_build(inner, "nested")
        assert bundle.final_path(outer / "manifest.json") == tmp_path / "b" / "manifest.json"
    assert listing(tmp_path) == ["b", "b-data", "b-data/train.csv", "b.tar.gz", "b/manifest.json"]


def test_a_folder_that_is_not_a_bundle_or_a_file_is_refused_before_anything_is_made(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    (tmp_path / "file").write_text("keep me")
    (tmp_path / "webapp").mkdir()
    (tmp_path / "webapp" / "manifest.json").write_text('{"name": "my pwa", "start_url": "/"}')  # not one of ours
    for out in (tmp_path / "notes", tmp_path / "file", tmp_path / "webapp"):
        refused = pytest.raises(ConversionError, match=f"{out}: exists and is not a bundle; choose another --out")
        with refused, bundle.staged(out):
            pytest.fail("the block must not run")
    assert listing(tmp_path) == ["file", "notes", "notes/todo.txt", "webapp", "webapp/manifest.json"]
    (tmp_path / "empty").mkdir()
    with bundle.staged(tmp_path / "empty") as work:  # an empty folder is taken
        write_build(work, "ok")
    assert name(tmp_path / "empty") == "ok"
