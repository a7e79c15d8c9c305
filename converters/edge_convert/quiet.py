"""Silencing native libraries that print to the process's stdout and stderr.

TensorFlow, Treelite and TL2cgen write from C++ straight to file descriptors 1
and 2, past Python's sys.stdout; the CLI's progress lines and tables drown.
"""

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def captured_output():
    """Send fds 1 and 2 to a temp file for the block; replay it on stderr only if the block raises."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            tmp.seek(0)
            sys.stderr.write(tmp.read().decode(errors="replace")[-4000:])
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            _restore(saved)
    for fd in saved:
        os.close(fd)


def _restore(saved):
    os.dup2(saved[0], 1)
    os.dup2(saved[1], 2)
