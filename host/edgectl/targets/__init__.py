"""Where a bundle runs. A target is a tiny interface, one module per transport:

home                  the edgectl directory on the board (releases/, current)
run(argv)             run a command there, return CompletedProcess (text)
popen(argv, stdin)    start a command there with stdout piped back
put_dir(src, dest)    copy a local directory to a path there
agent_argv()          the command that starts edge-agent there
"""

from edgectl.errors import EdgectlError
from edgectl.targets.local import LocalTarget


def parse_target(text):
    """A target from its string form: `local:DIR`."""
    if text.startswith("local:"):
        return LocalTarget(text[len("local:") :])
    raise EdgectlError(f"unknown target {text!r}; use local:DIR (a board directory on this machine)")
