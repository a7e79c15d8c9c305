"""The compiled window kernel (edge_window.c) against the Python reference (edge_agent/windows.py and
preprocess.py): every window's features, raw window and preprocessed sample equal, bit for bit."""

import numpy as np
import pytest

from edge_agent import drift
from edge_agent.pipeline import window_set
from edge_agent.samples import SampleError, SampleParser
from edge_convert.kernel import host_kernel
from edgectl import dataset
from edgectl.data import cmapss, synthetic
from edgectl.recipes import cmapss as recipe
from edgectl.windowing import sample_windows

EVERY_KIND = ["mean", "std", "min", "max", "rms", "slope", "last", "mean:5", "std:45", "slope:7", "mean:all",
              "slope:all", "ewm:3", "ewm:40", "base:20", "peak:10", "mean-base:20", "ewm:3-peak:10",
              "slope:all-slope:7"]  # fmt: skip


@pytest.fixture(scope="module")
def kernel():
    lib = host_kernel()
    assert lib is not None, "gcc is part of the host's toolchain (make system-deps)"
    return lib


def samples_and_sections(split, folder, kinds=None, window=30, stride=1):
    """The split as the agent parses it, and the manifest sections fitted on it (a health channel too)."""
    spec_path, csv_path = recipe.prepare(split, folder, window=window, stride=stride)
    spec = dataset.specs.load(spec_path)
    if kinds:
        spec["window"]["features"] = kinds
        spec["channel"][0]["features"] = kinds
    sections = dataset.load(spec, csv_path).sections
    return parsed(csv_path, sections), sections


def parsed(csv_path, sections):
    header, *rows = csv_path.read_text().splitlines()
    parser = SampleParser(dict(sections["input"], fields=header.split(",")), imputable=set(),
                          settings=(sections["preprocessing"].get("conditions") or {}).get("fields", []))  # fmt: skip
    samples = []
    for row in rows:
        try:
            samples.append(parser.parse(row))
        except SampleError:
            continue
    return samples


def assert_equal_windows(samples, sections, lib):
    reference = sample_windows(samples, sections, keep_raw=True, lib=False)
    compiled = sample_windows(samples, sections, keep_raw=True, lib=lib)
    assert len(reference) > 0 and np.array_equal(reference.row, compiled.row)
    for name in ("features", "raw", "samples", "t"):
        a, b = getattr(reference, name), getattr(compiled, name)
        assert a.shape == b.shape and np.array_equal(a, b), f"{name}: {np.count_nonzero(a != b)} values differ"
    return len(reference)


def test_every_fd001_window_is_the_same_with_the_kernel(fd001_dir, kernel, tmp_path):
    train, test = cmapss.load(fd001_dir)
    samples, sections = samples_and_sections(train, tmp_path / "fd001")
    test_samples = parsed(cmapss.write_csv(tmp_path / "test_FD001.csv", test, 30), sections)
    assert assert_equal_windows(samples + test_samples, sections, kernel) > 20_000


def test_every_kind_with_conditions_and_a_derived_channel_on_synthetic_fleets(kernel, tmp_path):
    """Six operating conditions (per-condition scaling), a health channel, every feature kind, stride 3,
    and streams restarting (a second pass over the same units)."""
    data = synthetic.write_subset(tmp_path / "six", subset="FD002", n_train=12, n_test=4, n_conditions=6, seed=5)
    train, _ = cmapss.load(data, "FD002")
    samples, sections = samples_and_sections(train, tmp_path / "fd002", EVERY_KIND, window=20, stride=3)
    assert sections["preprocessing"].get("conditions"), "the synthetic fleet should have operating conditions"
    assert assert_equal_windows(samples + samples, sections, kernel) > 500


def test_stale_and_restarting_streams_match(kernel, synthetic_splits, tmp_path):
    train, _ = synthetic_splits
    samples, sections = samples_and_sections(train, tmp_path / "syn", EVERY_KIND, window=10)
    shuffled = samples[:400] + samples[200:300] + samples[350:] + samples[:50]  # stale repeats, a restart
    assert_equal_windows(shuffled, sections, kernel)


def test_evicted_streams_start_over_alike(kernel, synthetic_splits, tmp_path):
    """Three streams kept, five sending in turn: each comes back evicted, its history gone in both."""
    train, _ = synthetic_splits
    samples, sections = samples_and_sections(train, tmp_path / "evict", EVERY_KIND, window=3)
    by_stream = {}
    for sample in samples:
        by_stream.setdefault(sample.stream, []).append(sample)
    streams = list(by_stream)[:5]
    order = [s for turn in range(40) for s in (streams[:3] if turn % 4 else streams)]  # the last two now and then
    taken = dict.fromkeys(streams, 0)
    turns = []
    for s in order:
        turns.append(by_stream[s][taken[s] % len(by_stream[s])])
        taken[s] += 1
    got = {}
    for name, lib in (("python", None), ("kernel", kernel)):
        windows = window_set(sections, 3, lib)
        out = []
        for sample in turns:
            window = windows.get(sample.stream)
            status, _ = windows.step(window, sample.values, sample.settings, sample.time)
            if status >= 0:
                out.append(window.features() if status else None)
        got[name] = (out, windows.evicted, list(windows.streams))
    (a, evicted_a, kept_a), (b, evicted_b, kept_b) = got["python"], got["kernel"]
    assert evicted_a == evicted_b > 0 and kept_a == kept_b
    assert [x is None for x in a] == [x is None for x in b] and any(x is not None for x in a)
    assert all(x is None or np.array_equal(x, y) for x, y in zip(a, b))


def _drifting_rows(window, every):
    """A drift section over 5 features (one with few distinct deciles) and 600 rows whose second half
    shifts, with NaN, infinities and a value on an edge."""
    rng = np.random.default_rng(7)
    train = rng.normal(size=(3000, 5))
    train[:, 3] = rng.integers(0, 3, size=3000)  # few distinct deciles: padded with +inf edges
    section = drift.reference(train, list("abcde"), rng.random(3000), psi_window=window, check_every=every)
    rows = np.concatenate([rng.normal(size=(300, 5)), rng.normal(2.0, 1.0, size=(300, 5))])
    rows[rng.random(rows.shape) < 0.02] = np.nan
    rows[5, 1], rows[9, 2], rows[11, 0] = np.inf, -np.inf, section["edges"][0][3]
    return section, rows


def _same_state(a, b, window):
    assert np.array_equal(a.bins, b.bins) and np.array_equal(a.counts, b.counts) and a.seen == b.seen
    assert a.counts.sum() == window * 5  # each slot in its feature's bins once
    assert a.drifting == b.drifting and a.flags.tolist() == [n in a.drifting for n in a.names]  # C's flags


@pytest.mark.parametrize("window, every", [(50, 7), (40, 40), (30, 45)])  # every > window: whole rings at once
def test_the_kernels_drift_check_is_the_references(kernel, window, every):
    """DriftMonitor bins a check's samples and takes PSI through edge_drift_check: the same bins, counts,
    PSI bits and records as its reference."""
    section, rows = _drifting_rows(window, every)
    with_c, reference = drift.DriftMonitor(section, kernel), drift.DriftMonitor(section)
    assert with_c._c is not None and reference._c is None
    records, psi_c, psi_reference = [], [], []
    shape = reference.expected.shape
    for x in rows:
        records.append((with_c.observe(x), reference.observe(x)))
        if with_c.seen >= window and with_c.seen % every == 0:  # a check: C's PSI against the reference's
            psi_c.append(with_c.check_psi.tolist())
            psi_reference.append(drift.psi(reference.expected, reference.counts.reshape(shape) / window))
    assert [c for c, _ in records] == [r for _, r in records]
    assert sum(len(c) for c, _ in records) >= 2  # the shifted half drifts, and features clear after it
    _same_state(with_c, reference, window)
    assert psi_c == psi_reference and max(map(max, psi_c)) > 0.25  # bit for bit, and large ones among them
    e, a = np.maximum(reference.expected, drift.EPS), np.maximum(reference.counts.reshape(shape) / window, drift.EPS)
    assert np.allclose(psi_reference[-1], np.sum((a - e) * np.log(a / e), axis=1), rtol=1e-12)  # the formula


@pytest.mark.parametrize("window, every", [(50, 7), (40, 40), (30, 45)])
def test_drift_in_blocks_is_drift_line_by_line(kernel, window, every):
    """Blocks of random sizes through edge_drift_observe, some rows stale (not observed) and some single
    rows between them through observe, each row's score then taken as the agent does: the PSI and
    Page-Hinkley records come at the same rows, with the same sample counts, as the reference's fed line
    by line, and the bins and counts end equal (at a check, where the reference has binned every sample)."""
    section, rows = _drifting_rows(window, every)
    section["ph_lambda"] = 2.0  # the shifted scores below raise an alarm every few rows
    rng = np.random.default_rng(11)
    status = np.where(rng.random(len(rows)) < 0.05, -1, 1).astype(np.int8)
    ends = np.flatnonzero(np.cumsum(status >= 0) % every == 0)
    rows, status = rows[: ends[-1] + 1], status[: ends[-1] + 1]  # ending on a check: the reference has binned all
    scores = np.where(np.arange(len(rows)) < len(rows) // 2, 0.5, 0.95) + rng.normal(0, 0.05, len(rows))
    blocks, reference = drift.DriftMonitor(section, kernel), drift.DriftMonitor(section)
    block_xs, block_status = np.zeros((60, rows.shape[1])), np.zeros(60, dtype=np.int8)
    blocks.bind_block(block_xs, block_status)
    got, want, start = [], [], 0
    while start < len(rows):
        n = int(rng.integers(1, 60))
        xs, st, sc = rows[start : start + n], status[start : start + n], scores[start:]
        n = len(xs)  # the last block may be short
        if n < 3:  # now and then a line the agent takes alone
            got += [(start + k, blocks.observe(x) + blocks.score(sc[k])) for k, x in enumerate(xs) if st[k] >= 0]
        else:
            block_xs[:n], block_status[:n] = xs, st
            checks = blocks.observe_block(n)
            for k in np.flatnonzero(st >= 0).tolist():
                blocks.row_then = k
                got.append((start + k, (blocks.checked(checks[k]) if k in checks else []) + blocks.score(sc[k])))
            blocks.row_then = None
        want += [(start + k, reference.observe(x) + reference.score(sc[k])) for k, x in enumerate(xs) if st[k] >= 0]
        start += n
    detectors = [r["detector"] for _, records in got for r in records]
    assert got == want and detectors.count("psi") >= 2 and detectors.count("page-hinkley") >= 5
    _same_state(blocks, reference, window)
