"""``finloom cache``: the HTTP cache FinLoom workers share in Redis (FINLOOM_REDIS_URL)."""

from __future__ import annotations

import typer

from finloom_cli.common import guarded, out
from finloom_core.errors import ConfigurationError
from finloom_core.settings import load_settings

cache_app = typer.Typer(
    help="The shared HTTP cache of EDGAR documents (in FINLOOM_REDIS_URL).", no_args_is_help=True
)


@cache_app.command("flush")
def cache_flush() -> None:
    """Remove every cached EDGAR response from Redis (the rate-limit window and the circuit
    are left alone); the next request of each document downloads it in full."""
    from finloom_core.edgar.cache import flush
    from finloom_core.edgar.redis_shared import RedisLink

    def run() -> tuple[int, str]:
        settings = load_settings()
        if not settings.redis_url:
            raise ConfigurationError("FINLOOM_REDIS_URL is not set: there is no shared cache")
        link = RedisLink.connect(
            settings.redis_url, fallback_rate=settings.redis_fallback_requests_per_second
        )
        try:
            return flush(link.client), link.label
        finally:
            link.client.close()

    removed, label = guarded(run)
    noun = "response" if removed == 1 else "responses"
    out.print(f"flushed {removed} cached {noun} from {label}", highlight=False, soft_wrap=True)
