"""Signed bundles with real Ed25519 keys: keygen, signing, the agent's refusals, deploy --trust-key."""

import json
import os
import shutil
import stat
import tarfile

import pytest
from cli import edgectl

from edge_agent.manifest import SIGNATURE_NAME, content_hash, write_manifest
from edge_convert import ConversionError, signing
from edgectl import deploy, runner, service
from edgectl.errors import EdgectlError
from edgectl.targets import parse_target


def make_key(tmp_path, name):
    """(private key, public key path, key id) of a fresh key pair."""
    made = signing.generate_key(tmp_path / name)
    return signing.load_private_key(made["private_key"]), made["public_key"], made["key_id"]


def trusting(tmp_path, *public_keys):
    """A trusted-keys directory holding these public keys."""
    directory = tmp_path / "trusted_keys"
    directory.mkdir(exist_ok=True)
    for path in public_keys:
        shutil.copy(path, directory)
    return directory


@pytest.fixture
def bundle(xgb_build, tmp_path):
    """A copy of the session's XGBoost bundle, free to sign and to damage."""
    copy = tmp_path / "bundle"
    shutil.copytree(xgb_build.bundle_dir, copy)
    return copy


def refusal(agent, bundle, keys):
    got = agent("selftest", "--bundle", str(bundle), "--trusted-keys", str(keys))
    assert got.returncode == 2 and b"Traceback" not in got.stderr
    return got.stderr.decode()


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path):
    out = tmp_path / "release"
    made = json.loads(edgectl("keygen", "--out", str(out), "--json").stdout)
    assert stat.S_IMODE(os.stat(made["private_key"]).st_mode) == 0o600
    assert (tmp_path / "release.pub").read_text().startswith("edgectl ed25519 public key v1\n")
    assert len(made["key_id"]) == 16
    again = edgectl("keygen", "--out", str(out))
    assert again.returncode == 1 and "release.key exists" in again.stderr
    os.chmod(made["private_key"], 0o644)
    with pytest.raises(ConversionError, match="readable by others .*chmod 600"):
        signing.load_private_key(made["private_key"])


def test_a_signed_bundle_is_served_by_a_board_that_trusts_its_key(bundle, tmp_path, agent):
    key, public, kid = make_key(tmp_path, "release")
    assert signing.sign_bundle(bundle, key) == kid
    with tarfile.open(bundle.with_name("bundle.tar.gz")) as tar:  # the archive was packed again, with the signature
        assert any(name.endswith("/" + SIGNATURE_NAME) for name in tar.getnames())
    keys = trusting(tmp_path, public)
    got = agent("selftest", "--bundle", str(bundle), "--trusted-keys", str(keys))
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["signed_by"] == kid
    verified = agent("--trusted-keys", str(keys), "verify", "--bundle", str(bundle))  # the option before the command
    assert json.loads(verified.stdout)["signed_by"] == kid
    assert json.loads(agent("--trusted-keys", str(keys), "info").stdout)["trusted_keys"] == [kid]


def test_a_board_with_a_key_refuses_an_unsigned_bundle(bundle, tmp_path, agent):
    _, public, kid = make_key(tmp_path, "release")
    message = refusal(agent, bundle, trusting(tmp_path, public))
    assert f"bundle {bundle} is not signed; this board requires bundles signed by one of: {kid}" in message


def test_a_manifest_changed_after_signing_is_refused(bundle, tmp_path, agent):
    key, public, kid = make_key(tmp_path, "release")
    signing.sign_bundle(bundle, key)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["stages"][0]["threshold"] = 0.01  # every file still matches its sha256, and the id is made to
    manifest["bundle_id"] = f"{manifest['name']}-{content_hash(manifest)[:12]}"  # match: only the signature can tell
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    assert agent("verify", "--bundle", str(bundle), "--trusted-keys", str(tmp_path / "none")).returncode == 0
    message = refusal(agent, bundle, trusting(tmp_path, public))
    assert f"the signature by key {kid} does not match" in message and "changed after signing" in message


def test_a_model_file_changed_after_signing_is_refused(bundle, tmp_path, agent, xgb_build):
    key, public, _ = make_key(tmp_path, "release")
    signing.sign_bundle(bundle, key)
    lib = next(iter(xgb_build.manifest["stages"][0]["libs"].values()))
    with open(bundle / lib, "ab") as f:
        f.write(b"\0")
    message = refusal(agent, bundle, trusting(tmp_path, public))
    assert f"{lib}: checksum mismatch" in message


def test_a_bundle_signed_by_a_key_the_board_does_not_trust_is_refused(bundle, tmp_path, agent):
    key, _, signer = make_key(tmp_path, "stranger")
    _, public, trusted = make_key(tmp_path, "release")
    signing.sign_bundle(bundle, key)
    message = refusal(agent, bundle, trusting(tmp_path, public))
    assert f"signed by key {signer}, which this board does not trust; trusted keys: {trusted}" in message


def test_a_board_without_keys_serves_unsigned_bundles_as_before(bundle, tmp_path, agent, synthetic_splits):
    lines = synthetic_splits[1].path.read_bytes()
    for keys in (tmp_path / "missing", trusting(tmp_path)):  # no directory, or an empty one
        got = agent("run", "--bundle", str(bundle), "--trusted-keys", str(keys), stdin=lines)
        records = [json.loads(line) for line in got.stdout.splitlines()]
        assert got.returncode == 0 and "signed_by" not in records[0]
        assert sum(r["type"] == "prediction" for r in records) > 0


def test_a_damaged_trusted_keys_directory_refuses_rather_than_accepting_anything(bundle, tmp_path, agent):
    keys = trusting(tmp_path)
    (keys / "broken.pub").write_text("ssh-ed25519 AAAA not ours\n")
    assert f"{keys / 'broken.pub'}: not an edgectl Ed25519 public key" in refusal(agent, bundle, keys)
    a_file = tmp_path / "keys-file"
    a_file.write_text("")
    assert "the trusted keys path is not a directory" in refusal(agent, bundle, a_file)


def test_deploy_trust_key_then_only_signed_bundles_deploy(bundle, xgb_build, tmp_path, synthetic_splits):
    key, public, kid = make_key(tmp_path, "release")
    signed = tmp_path / "signed"
    shutil.copytree(bundle, signed)
    signing.sign_bundle(signed, key)
    inspected = json.loads(edgectl("inspect", str(signed), "--json").stdout)
    assert inspected["signature"] == {"signed": True, "key_id": kid, "valid": True}
    assert f"signed by key {kid} (signature matches that key)" in edgectl("inspect", str(signed)).stdout

    board = tmp_path / "board"
    unsigned_first = edgectl("deploy", str(bundle), f"local:{board}", "--trust-key", public, "-q")
    assert unsigned_first.returncode == 1 and "is not signed" in unsigned_first.stderr
    assert not (board / "trusted_keys").exists()  # refused before anything reached the board

    deployed = json.loads(
        edgectl("deploy", str(signed), f"local:{board}", "--trust-key", public, "--json", "-q").stdout
    )
    assert deployed["trusted_keys"] == [kid] and deployed["health"]["healthy"]
    assert stat.S_IMODE(os.stat(board / "trusted_keys" / f"{kid}.pub").st_mode) == 0o644

    target = parse_target(f"local:{board}")
    other = tmp_path / "other"  # an unsigned bundle under another id
    shutil.copytree(bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    write_manifest(other, {**manifest, "name": "xgboost-unsigned"})
    with pytest.raises(EdgectlError, match=f"does not verify on the board(.|\n)*is not signed(.|\n)*one of: {kid}"):
        deploy.deploy(other, target)
    current = xgb_build.manifest["bundle_id"]
    assert os.readlink(board / "current") == f"releases/{current}"
    assert service.selftest_current(target).returncode == 0
    records = runner.stream_file(target, synthetic_splits[1].path)
    assert records[0]["signed_by"] == kid


def test_rollback_refuses_a_previous_release_the_board_no_longer_trusts(bundle, tmp_path):
    key, public, kid = make_key(tmp_path, "release")
    signed = tmp_path / "signed"
    shutil.copytree(bundle, signed)
    signing.sign_bundle(signed, key)
    unsigned = tmp_path / "unsigned"  # served before the board trusted any key, under another id
    shutil.copytree(bundle, unsigned)
    manifest = json.loads((unsigned / "manifest.json").read_text())
    write_manifest(unsigned, {**manifest, "name": "xgboost-unsigned"})
    board = tmp_path / "board"
    target = parse_target(f"local:{board}")
    deploy.deploy(unsigned, target)
    assert deploy.deploy(signed, target, trust_key=public)["trusted_keys"] == [kid]
    with pytest.raises(EdgectlError, match="previous release xgboost-unsigned-[0-9a-f]{12} would not serve here"):
        deploy.rollback(target)
    assert deploy.current_release(target) == manifest["bundle_id"]  # still the signed release
    assert service.selftest_current(target).returncode == 0


@pytest.mark.slow
def test_build_sign_writes_a_signed_bundle_and_archive(tmp_path, synthetic_dir):
    key = json.loads(edgectl("keygen", "--out", str(tmp_path / "release"), "--json").stdout)
    missing = edgectl("build", "--data", str(synthetic_dir), "--out", str(tmp_path / "b"), "--sign", "nope.key")
    assert missing.returncode == 1 and "cannot read the signing key nope.key" in missing.stderr
    assert not (tmp_path / "b").exists()  # the key is read before the build starts
    out = tmp_path / "bundle"
    got = edgectl(
        "build", "--data", str(synthetic_dir), "--out", str(out), "--sign", key["private_key"], "--json", "-q"
    )
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["signature"] == {"signed": True, "key_id": key["key_id"], "valid": True}
    with tarfile.open(tmp_path / "bundle.tar.gz") as tar:
        assert any(name.endswith("/" + SIGNATURE_NAME) for name in tar.getnames())
