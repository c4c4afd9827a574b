"""How FinLoom reports itself: Prometheus metrics, JSON logs, OpenTelemetry traces and
failure notifications.

Not a pipeline stage: the flows, the tasks, ``finloom serve`` and the CLI all use it, and
only ``observe`` and ``alerting`` touch Prefect (lazily), so ``finloom serve`` stays free
of the Prefect task layer. Imports point down only: finloom_ops -> finloom_core.
"""
