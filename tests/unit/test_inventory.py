"""Ansible inventories read as Ansible reads them (checked against ansible-inventory itself), --limit
patterns, batches as Ansible's serial makes them, and the stop rule of a staged rollout."""

import shutil
import sys
from pathlib import Path

import pytest
from conftest import missing

from edgectl.errors import EdgectlError
from edgectl.fleet import inventory, rollout

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "inventories"
LAB = ["gateway.lab", "pi01.lab", "pi02.lab", "pi03.lab", "pi04.lab", "jet-a.lab", "jet-b.lab"]


@pytest.mark.parametrize("name", ["lab.ini", "lab.yml"])
def test_groups_children_ranges_and_vars_merge_by_depth_then_the_hosts_own(name):
    inv = inventory.load(SAMPLES / name)
    assert list(inv["hosts"]) == LAB
    assert inv["groups"]["edge"] == LAB[1:] and inv["groups"]["ungrouped"] == ["gateway.lab"]
    pi01, pi04, jet = inv["hosts"]["pi01.lab"], inv["hosts"]["pi04.lab"], inv["hosts"]["jet-a.lab"]
    assert pi01["ansible_user"] == "admin"  # pis:vars (depth 2) over edge:vars (depth 1)
    assert pi04["ansible_user"] == "pi" and pi04["ansible_port"] == 2200  # the host's own, and host:port
    assert pi04["edgectl_home"] == "/home/pi/edgectl" and pi01["edgectl_home"] == "/opt/edgectl"
    assert jet["ansible_host"] == "10.0.0.9" and jet["ansible_user"] == "root"
    assert inv["hosts"]["gateway.lab"] == {"ansible_ssh_private_key_file": "~/.ssh/fleet", "ansible_port": 2222}
    assert inventory.groups_of(inv, "pi02.lab") == ["edge", "pis"]


@pytest.mark.parametrize("name", ["lab.ini", "lab.yml"])
def test_our_reading_is_ansible_inventorys_own(name):
    if not (shutil.which("ansible-inventory") or (Path(sys.executable).parent / "ansible-inventory").exists()):
        missing("ansible-inventory (pip install ansible-core: the test extra)")
    ours = inventory.load(SAMPLES / name)
    theirs = inventory.load(SAMPLES / name, plugin=True)
    assert theirs["hosts"] == ours["hosts"] and list(theirs["hosts"]) == list(ours["hosts"])
    assert {g: theirs["groups"][g] for g in ours["groups"]} == ours["groups"]


@pytest.mark.parametrize(
    ("limit", "hosts"),
    [
        (None, LAB),
        ("all", LAB),
        ("pis", LAB[1:5]),
        ("jetsons:gateway.lab", ["gateway.lab", "jet-a.lab", "jet-b.lab"]),
        ("edge:&pis:!pi02.lab", ["pi01.lab", "pi03.lab", "pi04.lab"]),
        ("pi0*", LAB[1:5]),
        ("~pi0[13]\\.lab", ["pi01.lab", "pi03.lab"]),
        ("!edge", ["gateway.lab"]),
        ("pis,jetsons", LAB[1:]),
    ],
)
def test_limit_patterns_as_ansible_spells_them(limit, hosts):
    assert inventory.select(inventory.load(SAMPLES / "lab.ini"), limit) == hosts


def test_a_limit_that_matches_nothing_and_bad_inventories_are_clear_errors(tmp_path):
    inv = inventory.load(SAMPLES / "lab.ini")
    with pytest.raises(EdgectlError, match="matches no host in the inventory"):
        inventory.select(inv, "nope")
    bad = tmp_path / "bad.ini"
    bad.write_text("[pis\nthing\n")
    with pytest.raises(EdgectlError, match=r"bad.ini, line 1: a section header must end with '\]'"):
        inventory.load(bad)
    bad.write_text("[pis]\npi01 ansible_port\n")
    with pytest.raises(EdgectlError, match="line 2: expected key=value after the host name"):
        inventory.load(bad)
    with pytest.raises(EdgectlError, match="cannot read it"):
        inventory.load(tmp_path / "missing.ini")


def test_ranges_keep_their_width_and_take_a_step():
    assert inventory.expand("pi[01:03].lab") == ["pi01.lab", "pi02.lab", "pi03.lab"]
    assert inventory.expand("n[1:10:4]") == ["n1", "n5", "n9"]
    assert inventory.expand("r[a:b]c[1:2]") == ["rac1", "rac2", "rbc1", "rbc2"]


def test_a_host_becomes_an_ssh_target_with_its_key_user_port_and_home():
    inv = inventory.load(SAMPLES / "lab.ini")
    target = inventory.target("pi04.lab", inv["hosts"]["pi04.lab"])
    assert (target.host, target.port, target.user, target.home) == ("pi04.lab", 2200, "pi", "/home/pi/edgectl")
    assert str(target) == "pi04.lab" and target.identity == "~/.ssh/fleet"
    argv = target._ssh()
    assert argv[argv.index("-i") + 1] == str(Path("~/.ssh/fleet").expanduser()) and "IdentitiesOnly=yes" in argv
    assert inventory.target("jet-a.lab", inv["hosts"]["jet-a.lab"]).host == "10.0.0.9"


@pytest.mark.parametrize(
    ("serial", "sizes"),
    [
        (["1", "50%", "100%"], [1, 3, 2]),
        (["100%"], [6]),
        (["2"], [2, 2, 2]),
        (["10%"], [1] * 6),
        (["1", "2"], [1, 2, 2, 1]),
    ],
)
def test_batches_as_ansibles_serial(serial, sizes):
    names = [f"b{i}" for i in range(6)]
    got = rollout.batches(names, serial)
    assert [len(b) for b in got] == sizes and [n for b in got for n in b] == names


def test_a_bad_serial_is_refused():
    for bad in (["x"], ["0%"], ["150%"]):
        with pytest.raises(EdgectlError, match="--serial"):
            rollout.batches(["a", "b"], bad)


def test_the_rollout_stops_when_the_failed_share_exceeds_the_limit_not_when_it_reaches_it():
    rows = [{"result": r} for r in ("deployed", "failed", "deployed", "skipped")]
    assert rollout.too_many_failed(rows, 20) and not rollout.too_many_failed(rows, 25)
    assert not rollout.too_many_failed([{"result": "deployed"}], 0)
