"""Prefect flows: only the order of work.

Importing the package makes Prefect Secret blocks the resolver of ``secret:NAME`` settings
(``finloom_ops.secrets``), so a flow started by a worker resolves them as the ``finloom``
command does.
"""

from finloom_ops import secrets as _secrets

_secrets.install()
