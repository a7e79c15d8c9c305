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
    private = edgectl("deploy", str(signed), f"local:{board}", "--trust-key", str(tmp_path / "release.key"), "-q")
    assert private.returncode == 1 and "is a private key; --trust-key takes the public key" in private.stderr
    assert f"pass {tmp_path / 'release.pub'}" in private.stderr and not board.exists()
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


def signed_copy(bundle, tmp_path, name, key):
    """A copy of the bundle signed by key: the same bundle id, a manifest.sig beside it."""
    copy = tmp_path / name
    shutil.copytree(bundle, copy)
    signing.sign_bundle(copy, key)
    return copy


def test_the_signed_build_of_a_served_unsigned_release_serves_after_deploy_trust_key(
    bundle, tmp_path, synthetic_splits
):
    """The unsigned release with the same id is on the board: it is replaced by the signed one, not
    reused, and the board serves after the key is installed (status exit 0, run works)."""
    key, public, kid = make_key(tmp_path, "release")
    signed = signed_copy(bundle, tmp_path, "signed", key)
    board = f"local:{tmp_path / 'board'}"
    assert edgectl("deploy", str(bundle), board, "-q").returncode == 0
    got = edgectl("deploy", str(signed), board, "--trust-key", public, "--json", "-q")
    assert got.returncode == 0, got.stderr
    result = json.loads(got.stdout)
    assert not result["reused"] and result["trusted_keys"] == [kid] and result["health"]["healthy"]
    assert (tmp_path / "board" / "releases" / result["bundle_id"] / SIGNATURE_NAME).is_file()
    status = edgectl("status", board, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["health"] == "healthy"
    ran = edgectl("run", board, "--input", str(synthetic_splits[1].path), "--json", "-q")
    assert ran.returncode == 0 and json.loads(ran.stdout)["windows"] > 100, ran.stderr


def test_a_new_key_is_trusted_for_its_deploy_and_an_untrusted_signer_is_refused_despite_a_served_id(bundle, tmp_path):
    key_a, public_a, kid_a = make_key(tmp_path, "a")
    key_b, public_b, kid_b = make_key(tmp_path, "b")
    target = parse_target(f"local:{tmp_path / 'board'}")
    deploy.deploy(signed_copy(bundle, tmp_path, "by-a", key_a), target, trust_key=public_a)
    by_b = signed_copy(bundle, tmp_path, "by-b", key_b)  # the served id, signed by a key the board lacks
    with pytest.raises(EdgectlError, match=f"signed by key {kid_b}, which this board does not trust"):
        deploy.deploy(by_b, target)
    assert service.selftest_current(target).returncode == 0
    assert json.loads(service.selftest_current(target).stdout)["signed_by"] == kid_a
    rotated = deploy.deploy(by_b, target, trust_key=public_b)  # verified against the keys it will have
    assert not rotated["reused"] and rotated["trusted_keys"] == sorted([kid_a, kid_b])
    assert json.loads(service.selftest_current(target).stdout)["signed_by"] == kid_b


def damage(board):
    """Append to the golden vectors of the release `current` points at: its checksum no longer matches."""
    golden = board / "current" / "golden.json"
    golden.write_bytes(golden.read_bytes() + b" ")


def unsigned_then(bundle, tmp_path):
    """A local board serving an unsigned release (under another id), the signed bundle and its key:
    (board dir, target, first release id, signed bundle, public key path, key id)."""
    key, public, kid = make_key(tmp_path, "release")
    unsigned = tmp_path / "unsigned"
    shutil.copytree(bundle, unsigned)
    manifest = json.loads((unsigned / "manifest.json").read_text())
    write_manifest(unsigned, {**manifest, "name": "xgboost-unsigned"})
    board = tmp_path / "board"
    target = parse_target(f"local:{board}")
    first = deploy.deploy(unsigned, target)["bundle_id"]
    return board, target, first, signed_copy(bundle, tmp_path, "signed", key), public, kid


def test_a_release_that_fails_once_its_key_is_trusted_is_rolled_back_and_the_key_removed(bundle, tmp_path):
    board, target, first, signed, public, kid = unsigned_then(bundle, tmp_path)

    def damage_once_trusted(message):  # the release breaks after the key went in, before the health check
        if f"trusting key {kid}" in message:
            damage(board)

    with pytest.raises(
        EdgectlError, match=f"did not come up healthy: rolled back to {first}; key {kid} taken out again"
    ):
        deploy.deploy(signed, target, say=damage_once_trusted, trust_key=public)
    assert deploy.current_release(target) == first and deploy.release_op(target, "show")["pending"] is None
    assert not list((board / "trusted_keys").glob("*.pub"))
    assert service.selftest_current(target).returncode == 0


def test_a_key_that_cannot_be_installed_switches_the_board_back(bundle, tmp_path):
    board, target, first, signed, public, kid = unsigned_then(bundle, tmp_path)
    (board / "trusted_keys" / f"{kid}.pub.new").mkdir(parents=True)  # where install_key writes: it fails
    with pytest.raises(EdgectlError, match="cannot install the trusted key"):
        deploy.deploy(signed, target, trust_key=public)
    assert deploy.current_release(target) == first and deploy.release_op(target, "show")["pending"] is None
    assert service.selftest_current(target).returncode == 0


def test_a_deploy_cut_after_its_key_went_in_is_undone_with_the_key_by_the_next_deploy(bundle, tmp_path):
    board, target, first, signed, public, kid = unsigned_then(bundle, tmp_path)

    def cut(message):  # the host dies after the key's install; the release will not pass its check
        if f"trusting key {kid}" in message:
            damage(board)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        deploy.deploy(signed, target, say=cut, trust_key=public)
    assert (
        deploy.release_op(target, "show")["pending"]["key"] == kid and (board / "trusted_keys" / f"{kid}.pub").exists()
    )
    again = deploy.deploy(tmp_path / "unsigned", target)
    assert again["recovered"]["action"] == f"rolled back to {first}"
    assert not (board / "trusted_keys" / f"{kid}.pub").exists() and again["trusted_keys"] == []
    assert deploy.current_release(target) == first and service.selftest_current(target).returncode == 0


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
