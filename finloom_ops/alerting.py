"""Flow-run failure notifications: the ``on_failure`` / ``on_crashed`` hook of every flow.

Two ways to be told, both optional and usable together:

* ``FINLOOM_ALERT_WEBHOOK_URL``: FinLoom POSTs a JSON message to it. The body carries
  ``text`` (what Slack's incoming webhooks and most chat tools display) and the same facts as
  fields (``flow``, ``flow_run_id``, ``flow_run_name``, ``state``, ``message``,
  ``deployment_id``, ``ui_url``) for anything that routes alerts.
* ``FINLOOM_ALERT_BLOCK``: the slug of a Prefect notification block (``slack-webhook/ops``,
  ``pager-duty-web-hook/on-call``, ``microsoft-teams-webhook/data``...) created in the
  Prefect UI; FinLoom calls its ``notify``. This is the way to PagerDuty, which wants its
  own Events API payload.

A notification that cannot be delivered is logged (without the URL, which is a secret) and
never changes the flow run's state. The message goes through ``finloom_core.redact`` (URL
credentials, secret values) before it leaves.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from finloom_core.errors import first_line
from finloom_core.redact import redact
from finloom_core.settings import load_settings

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0


def failure_message(flow: Any, flow_run: Any, state: Any) -> dict[str, Any]:
    """The JSON body sent for a failed flow run."""
    from prefect.settings import PREFECT_UI_URL

    name = getattr(flow, "name", str(flow))
    run_name = getattr(flow_run, "name", None)
    state_name = getattr(state, "name", None) or str(getattr(state, "type", "FAILED"))
    message = (str(getattr(state, "message", None) or "").strip().splitlines() or ["no message"])[0]
    message = redact(message)
    ui = PREFECT_UI_URL.value()
    ui_url = f"{ui.rstrip('/')}/runs/flow-run/{flow_run.id}" if ui else None
    text = f"FinLoom flow run {name}/{run_name} ended {state_name}: {message}"
    if ui_url:
        text += f" ({ui_url})"
    return {
        "text": text,
        "flow": name,
        "flow_run_id": str(flow_run.id),
        "flow_run_name": run_name,
        "deployment_id": str(flow_run.deployment_id) if flow_run.deployment_id else None,
        "state": state_name,
        "message": message,
        "ui_url": ui_url,
    }


def notify_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Prefect flow hook: tell the configured webhook and/or notification block."""
    try:
        settings = load_settings()
    except Exception as exc:  # a broken setting must not hide the failure being reported
        log.warning("failure notification skipped: %s", first_line(exc))
        return
    if settings.alert_webhook_url is None and not settings.alert_block:
        return
    body = failure_message(flow, flow_run, state)
    if settings.alert_webhook_url is not None:
        try:
            response = httpx.post(
                settings.alert_webhook_url.get_secret_value(), json=body, timeout=TIMEOUT_SECONDS
            )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("failure webhook not delivered: %s", type(exc).__name__)
        else:
            log.info("failure of %s reported to the alert webhook", body["flow_run_name"])
    if settings.alert_block:
        try:
            from prefect.blocks.core import Block

            block: Any = Block.load(settings.alert_block)
            block.notify(body["text"], subject=f"FinLoom: {body['flow']} {body['state']}")
        except Exception as exc:
            log.warning(
                "notification block %s failed: %s", settings.alert_block, redact(first_line(exc))
            )


# The hooks every FinLoom flow declares: ``@flow(name=..., **FAILURE_HOOKS)``.
FAILURE_HOOKS: dict[str, Any] = {"on_failure": [notify_failure], "on_crashed": [notify_failure]}
