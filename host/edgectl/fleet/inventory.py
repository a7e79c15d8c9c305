"""Ansible inventories, read as Ansible reads them: INI and YAML files, or the JSON that
`ansible-inventory -i SOURCE --list` prints (dynamic inventories, plugins; ansible stays a
separate process).

An inventory here is {"hosts": {name: vars}, "groups": {group: [host names]}}. Each host's vars are
merged as Ansible merges them: `all` first, then its groups by depth (parents before children)
and by name, then the host's own vars. Groups list their hosts with their children's, in the
order the file gives them. Our own host vars: edgectl_home (the board's home) and
edgectl_profile (its profile); the rest is Ansible's (ansible_host, ansible_port, ansible_user,
ansible_ssh_private_key_file).
"""

import ast
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from edgectl.errors import EdgectlError

RANGE = re.compile(r"\[([0-9]+|[a-z]):([0-9]+|[a-z])(?::([0-9]+))?\]")


def load(source, plugin=False):
    """Read an inventory file (INI or YAML), or with plugin=True run `ansible-inventory --list` on it."""
    if plugin:
        return from_ansible_json(_ansible_inventory(source), source)
    path = Path(source)
    try:
        text = path.read_text()
    except OSError as exc:
        raise EdgectlError(f"inventory {source}: cannot read it: {exc.strerror}") from None
    if path.suffix in (".yml", ".yaml") or text.lstrip().startswith(("all:", "---")):
        return _resolve(_read_yaml(text, source), source)
    return _resolve(_read_ini(text, source), source)


def expand(pattern):
    """Host names of an Ansible host pattern with ranges: pi[01:03].lab -> pi01.lab, pi02.lab, pi03.lab."""
    found = RANGE.search(pattern)
    if not found:
        return [pattern]
    start, end, step = found.group(1), found.group(2), int(found.group(3) or 1)
    if start.isdigit() != end.isdigit():
        raise EdgectlError(f"host range {pattern!r}: both ends must be numbers or both letters")
    if start.isdigit():
        width = len(start) if start.startswith("0") else 0
        values = [str(n).zfill(width) for n in range(int(start), int(end) + 1, step)]
    else:
        values = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
    head, tail = pattern[: found.start()], pattern[found.end() :]
    return [name for value in values for name in expand(head + value + tail)]


def select(inventory, limit=None):
    """Host names matching an Ansible --limit pattern, in inventory order.

    Terms are joined by ':' or ','; each is a group, a host, a glob (web*) or a regex (~web\\d+);
    '&term' keeps only hosts also in it, '!term' takes its hosts out. None or 'all' is every host.
    """
    names = list(inventory["hosts"])
    if not limit or limit in ("all", "*"):
        return names
    terms = [t for t in re.split(r"[:,]", limit) if t]
    plain = [t for t in terms if not t.startswith(("&", "!"))]
    chosen = set().union(*(_match(inventory, t) for t in plain)) if plain else set(names)  # "!x" alone: from all
    keep, drop = None, set()
    for term in terms:
        if term.startswith("&"):
            matched = _match(inventory, term[1:])
            keep = matched if keep is None else keep & matched
        elif term.startswith("!"):
            drop |= _match(inventory, term[1:])
    picked = [n for n in names if n in chosen and (keep is None or n in keep) and n not in drop]
    if not picked:
        raise EdgectlError(
            f"--limit {limit!r} matches no host in the inventory (groups: {', '.join(inventory['groups'])})"
        )
    return picked


def groups_of(inventory, name):
    """The groups a host is in, all and ungrouped left out, by name."""
    return sorted(g for g, hosts in inventory["groups"].items() if name in hosts and g not in ("all", "ungrouped"))


def from_ansible_json(data, where):
    """An inventory from `ansible-inventory --list` JSON: its hostvars are already merged."""
    if not isinstance(data, dict) or not isinstance(data.get("_meta", {}).get("hostvars", {}), dict):
        raise EdgectlError(f"inventory {where}: not the JSON of ansible-inventory --list")
    hostvars = data.get("_meta", {}).get("hostvars", {})
    groups = {}

    def hosts_of(group, seen=()):
        entry = data.get(group) or {}
        found = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            if child not in seen:
                found += [h for h in hosts_of(child, (*seen, group)) if h not in found]
        return found

    for group in data:
        if group != "_meta":
            groups[group] = hosts_of(group)
    order = groups.get("all") or list(hostvars)
    return {"hosts": {h: dict(hostvars.get(h, {})) for h in order}, "groups": groups}


def _ansible_inventory(source):
    beside = Path(sys.executable).parent / "ansible-inventory"  # installed in this venv, not on PATH
    tool = shutil.which("ansible-inventory") or (str(beside) if beside.exists() else None)
    if tool is None:
        raise EdgectlError(
            "--inventory-plugin runs ansible-inventory, which is not installed: pip install ansible-core"
        )
    # stdin: its own /dev/null. Ansible refuses to start on a non-blocking stdin, which ours can be
    # (a terminal or pipe another process set so); it reads nothing from it here.
    got = subprocess.run([tool, "-i", str(source), "--list"], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    if got.returncode != 0:
        raise EdgectlError(f"ansible-inventory -i {source} --list failed:\n{got.stderr.strip()[-1500:]}")
    try:
        return json.loads(got.stdout)
    except ValueError:
        raise EdgectlError(f"ansible-inventory -i {source} --list printed no JSON") from None


def _group(raw, name):
    return raw.setdefault(name, {"hosts": {}, "vars": {}, "children": []})


def _read_ini(text, where):
    """{group: {"hosts": {name: vars}, "vars": {}, "children": [names]}} from Ansible's INI format."""
    raw = {"all": {"hosts": {}, "vars": {}, "children": []}}
    section, kind = "ungrouped", "hosts"
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise EdgectlError(f"inventory {where}, line {number}: a section header must end with ']'")
            section, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise EdgectlError(f"inventory {where}, line {number}: unknown section kind {kind!r}")
            _group(raw, section)
            continue
        group = _group(raw, section)
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise EdgectlError(f"inventory {where}, line {number}: {exc}") from None
        if kind == "children":
            group["children"].append(words[0])
            _group(raw, words[0])
        elif kind == "vars":
            key, eq, value = line.partition("=")
            if not eq:
                raise EdgectlError(f"inventory {where}, line {number}: expected key=value in [{section}:vars]")
            group["vars"][key.strip()] = value.strip()  # :vars values are strings, as in Ansible
        else:
            host, port = _host_and_port(words[0])
            host_vars = dict(_pair(w, where, number) for w in words[1:])
            if port:
                host_vars.setdefault("ansible_port", port)
            for name in expand(host):
                group["hosts"][name] = {**group["hosts"].get(name, {}), **host_vars}
    return raw


def _host_and_port(word):
    """ "badwolf.example.com:5309" -> (name, 5309); a bare IPv6 address or a name alone -> (word, None)."""
    name, sep, port = word.rpartition(":")
    if sep and port.isdigit() and name and ":" not in name:
        return name, int(port)
    return word, None


def _pair(word, where, number):
    key, eq, value = word.partition("=")
    if not eq:
        raise EdgectlError(f"inventory {where}, line {number}: expected key=value after the host name, got {word!r}")
    try:
        return key, ast.literal_eval(value)  # host-line values are Python literals where they can be, as in Ansible
    except (ValueError, SyntaxError):
        return key, value


def _read_yaml(text, where):
    import yaml  # PyYAML: only inventories need it

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EdgectlError(f"inventory {where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise EdgectlError(f"inventory {where}: a YAML inventory is a mapping of groups (all: ...)")
    raw = {"all": {"hosts": {}, "vars": {}, "children": []}}

    def add(name, entry, path):
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise EdgectlError(f"inventory {where}: group {path} must be a mapping (hosts, vars, children)")
        group = _group(raw, name)
        for host, host_vars in (entry.get("hosts") or {}).items():
            for expanded in expand(str(host)):
                group["hosts"][expanded] = {**group["hosts"].get(expanded, {}), **(host_vars or {})}
        group["vars"].update(entry.get("vars") or {})
        for child, child_entry in (entry.get("children") or {}).items():
            if child not in group["children"]:
                group["children"].append(child)
            add(child, child_entry, f"{path}.children.{child}")

    for name, entry in data.items():
        add(name, entry, name)
    return raw


def _resolve(raw, where):
    """Merge each host's vars by group depth, then name, then its own; list each group's hosts."""
    for name in list(raw):
        if name != "all" and not any(name in g["children"] for g in raw.values()):
            raw["all"]["children"].append(name)  # a top-level group is a child of all
    depth, order = {"all": 0}, ["all"]
    for name in order:  # breadth first: a group's depth is its shortest path from all
        for child in raw[name]["children"]:
            if child not in depth:
                depth[child] = depth[name] + 1
                order.append(child)

    def hosts_of(name, seen=()):
        found = list(raw[name]["hosts"])
        for child in raw[name]["children"]:
            if child in seen:
                raise EdgectlError(f"inventory {where}: group {child} is its own ancestor ({' > '.join(seen)})")
            found += [h for h in hosts_of(child, (*seen, name)) if h not in found]
        return found

    groups = {name: hosts_of(name) for name in raw}
    grouped = {h for name, hosts in groups.items() if name not in ("all", "ungrouped") for h in hosts}
    groups["ungrouped"] = [h for h in groups["all"] if h not in grouped]
    hosts = {}
    for host in groups["all"]:
        merged = {}
        for name in sorted((g for g in raw if host in groups[g]), key=lambda g: (depth.get(g, 0), g)):
            merged.update(raw[name]["vars"])
        for name in raw:  # the host's own vars, wherever it was listed
            merged.update(raw[name]["hosts"].get(host, {}))
        hosts[host] = merged
    return {"hosts": hosts, "groups": groups}


def _match(inventory, term):
    if term.startswith("~"):
        try:
            pattern = re.compile(term[1:])
        except re.error as exc:
            raise EdgectlError(f"--limit: bad regex {term!r}: {exc}") from None
        test = pattern.match
    else:
        test = lambda name: fnmatch.fnmatchcase(name, term)  # noqa: E731 (a plain name is a glob matching itself)
    found = {h for h in inventory["hosts"] if test(h)}
    for group, hosts in inventory["groups"].items():
        if test(group):
            found |= set(hosts)
    return found


def target(name, host_vars):
    """The SshTarget of an inventory host: ansible_host (else its name), ansible_port, ansible_user,
    ansible_ssh_private_key_file, and edgectl_home (else /opt/edgectl)."""
    from edgectl.targets.ssh import DEFAULT_HOME, SshTarget

    address = str(host_vars.get("ansible_host") or name)
    user = host_vars.get("ansible_user")
    port = host_vars.get("ansible_port")
    home = str(host_vars.get("edgectl_home") or DEFAULT_HOME)
    if not home.startswith("/"):
        raise EdgectlError(f"host {name}: edgectl_home must be an absolute path, not {home!r}")
    where = f"[{address}]" if ":" in address else address
    text = f"ssh://{f'{user}@' if user else ''}{where}{f':{int(port)}' if port else ''}{home}"
    return SshTarget(text, identity=host_vars.get("ansible_ssh_private_key_file"), name=name)
