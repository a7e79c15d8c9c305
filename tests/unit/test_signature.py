"""The signature formats and both Ed25519 backends, with real keys."""

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.errors import AgentError
from edge_agent.manifest import SIGNATURE_NAME, write_manifest
from edge_agent.signature import BACKENDS, format_key, key_id, parse_key, verify


@pytest.mark.parametrize("backend", BACKENDS)
def test_both_backends_accept_a_good_signature_and_nothing_else(backend):
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    message = b'{"bundle_id": "x"}\n'
    signature = key.sign(message)
    assert verify(public, message, signature, backend)
    assert not verify(public, message + b" ", signature, backend)
    assert not verify(other, message, signature, backend)
    assert not verify(public, message, bytes([signature[0] ^ 1]) + signature[1:], backend)


def test_key_files_round_trip_and_name_what_is_wrong():
    raw = bytes(range(32))
    assert parse_key(format_key("public", raw), "public", "k.pub") == raw
    assert key_id(raw) == key_id(parse_key(format_key("public", raw), "public", "k.pub"))
    with pytest.raises(AgentError, match="k.pub: not an edgectl Ed25519 public key"):
        parse_key(format_key("private", raw), "public", "k.pub")
    with pytest.raises(AgentError, match="k.pub: the public key is not base64 of 32 bytes"):
        parse_key(format_key("public", raw[:31]), "public", "k.pub")


def test_a_new_manifest_drops_the_old_signature_and_never_lists_it(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"weights")
    (tmp_path / SIGNATURE_NAME).write_text("{}")
    manifest = {
        "format": "edgectl-bundle",
        "format_version": 1,
        "bundle_id": "b",
        "input": {"fields": ["unit", "t", "a"], "stream_field": "unit", "time_field": "t", "features": ["a"]},
        "window": {"length": 2, "stride": 1},
        "preprocessing": {"center": [0.0], "scale": [1.0]},
        "features": {},
        "stages": [
            {"name": "s", "kind": "tree-lib", "input": "features", "threshold": 0.5, "libs": {"x": "model.bin"}}
        ],
        "golden": {"file": "model.bin", "tolerance": {"s": 0.0}},
    }
    written = write_manifest(tmp_path, manifest)
    assert list(written["files"]) == ["model.bin"]
    assert not (tmp_path / SIGNATURE_NAME).exists()
    assert json.loads((tmp_path / "manifest.json").read_text())["files"] == written["files"]
