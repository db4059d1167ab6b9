"""A fork server for the crash campaign (``qaqpa bench crash``): import the daemon's code once,
then fork a ``qaqpa run --config CONFIG`` per ``run CONFIG`` line on stdin.

    python -m qaqpa.forkserver

Prints ``pid N`` once forked and ``exit N STATUS`` once that daemon ended (one at a time;
STATUS is negative for a signal). A restart then costs what the daemon does, not the
interpreter's start and imports. No thread or event loop exists here before a fork.
"""

from __future__ import annotations

import os
import sys

import edge.daemon  # the imports are the point: the forked daemons find them loaded
import edge.sync  # noqa: F401
import qaqpa.cli


def serve() -> None:
    qaqpa.cli.build_parser()  # imports every command's module, the server's CLI among them
    out = sys.stdout
    for line in sys.stdin:
        cmd, _, config = line.strip().partition(" ")
        if cmd != "run":
            continue
        pid = os.fork()
        if pid == 0:  # the daemon
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            try:
                rc = qaqpa.cli.main(["run", "--config", config])
            except SystemExit as err:
                rc = err.code if isinstance(err.code, int) else 1
            os._exit(rc)
        out.write(f"pid {pid}\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        out.write(f"exit {pid} {code}\n")
        out.flush()


if __name__ == "__main__":
    serve()
