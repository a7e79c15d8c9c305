"""Coverage-guided fuzz targets (atheris, libFuzzer) for the agent's input paths;
run by tests/integration/test_atheris_fuzz.py.

    FUZZ_TARGET=samples|frames|manifest FUZZ_BUNDLE=DIR python tests/atheris_targets.py CORPUS -runs=N -seed=1

Each target feeds the fuzzer's bytes to one module and lets only that module's own
outcome through (a sample or SampleError, a frame or a counted bad one, a manifest
or BundleError); any other exception escapes, and atheris reports it as a crash.
"""

import os
import sys

import atheris

with atheris.instrument_imports(include=["edge_agent"]):
    from edge_agent.errors import BundleError
    from edge_agent.framing import Frame, FrameReader, decode
    from edge_agent.manifest import load_bundle
    from edge_agent.pipeline import Pipeline
    from edge_agent.samples import SampleError
    from edge_agent.sources import LineSplitter

BUNDLE = os.environ["FUZZ_BUNDLE"]


def samples_target():
    """Bytes -> lines (as the agent splits its input) -> the bundle's sample parser."""
    parser = Pipeline(BUNDLE, load_bundle(BUNDLE), stages=[]).parser

    def one(data):
        splitter = LineSplitter()
        for _, text, error in splitter.feed(data) + splitter.finish():
            if error is None and text:
                try:
                    parser.parse(text)
                except SampleError as exc:
                    assert exc.reason

    return one


def frames_target():
    """Bytes -> the frame reader (in two chunks, split where the first byte says) and the frame decoder."""

    def one(data):
        reader = FrameReader()
        cut = data[0] % (len(data) + 1) if data else 0
        frames = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert all(isinstance(f, Frame) for f in frames) and reader.good == len(frames)
        frame = decode(data)
        assert frame is None or isinstance(frame, Frame)

    return one


def manifest_target():
    """Bytes as the bundle's manifest.json, checked against the bundle's real files."""

    def one(data):
        try:
            load_bundle(BUNDLE, raw=data)
        except BundleError as exc:
            assert str(exc)

    return one


TARGETS = {"samples": samples_target, "frames": frames_target, "manifest": manifest_target}

if __name__ == "__main__":
    atheris.Setup(sys.argv, TARGETS[os.environ["FUZZ_TARGET"]]())
    atheris.Fuzz()
