"""The temporary Prefect server of a command: started by FinLoom, and dying with it.

Without ``PREFECT_API_URL``, Prefect 3 starts a temporary API server (``uvicorn ...
prefect.server.api.server:create_app``, Prefect's ``SubprocessASGIServer``) as a child
process when a flow run first needs one, and stops it at exit. A command killed with
SIGKILL never reaches its exit handlers, so that server (~200 MB) would run on under PID 1.

:func:`start` starts that server first, as Prefect would, but through a launcher that asks
Linux to send it SIGTERM when the command dies (``PR_SET_PDEATHSIG``, which survives the
exec) and then becomes the server. It is registered as *the* temporary server, so Prefect's
own code finds it running and uses it (and still stops it at a normal exit). Elsewhere than
on Linux nothing changes: Prefect starts its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import get_current_settings

SERVER_APP = "prefect.server.api.server:create_app"

# Run by the child before it becomes the server: die with the parent (PID argv[1]; if it is
# already gone the signal would never come, so leave), then exec the server's command.
# PR_SET_PDEATHSIG is 1; a failed prctl leaves the server as Prefect would start it.
_LAUNCHER = """\
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(1, signal.SIGTERM)
if os.getppid() != int(sys.argv[1]):
    sys.exit(0)
os.execv(sys.argv[2], sys.argv[2:])
"""


class _DiesWithParent(SubprocessASGIServer):
    """Prefect's temporary server, launched so that it ends with the process that started it."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        # The command and environment of Prefect's SubprocessASGIServer, behind the launcher.
        command = [
            sys.executable, "-m", "uvicorn",
            "--app-dir", str(prefect.__module_path__.parent),
            "--factory", SERVER_APP,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "error", "--lifespan", "on",
        ]  # fmt: skip
        server_env = {
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        return subprocess.Popen(
            args=[sys.executable, "-c", _LAUNCHER, str(os.getpid()), *command],
            env={
                **os.environ,
                **server_env,
                **get_current_settings().to_environment_variables(exclude_unset=True),
            },
        )


def start() -> None:
    """Start this process's temporary Prefect server, tied to its life (Linux), unless one
    already runs. Call it from the thread that lives as long as the process (the main one):
    Linux signals the child when the thread that started it ends."""
    if not sys.platform.startswith("linux"):
        return
    current = SubprocessASGIServer._instances.get(None)
    if current is not None and current.running:
        return
    SubprocessASGIServer._instances.pop(None, None)
    _DiesWithParent().start()  # registers itself as the temporary server (key None)
