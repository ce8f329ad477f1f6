"""The delay between reconnect attempts: reconnect_time_wait plus jitter, the TLS jitter for TLS servers."""

from __future__ import annotations

from cnats.connection import NatsConnection
from cnats.options import ConnectOptions
from cnats.servers import parse_server_url


def _delays(url: str, **options: object) -> list[float]:
    nc = NatsConnection(ConnectOptions.build(url, None, **options))
    server = parse_server_url(url)
    return [nc._reconnect_delay(server) for _ in range(400)]


async def test_plain_servers_use_reconnect_jitter() -> None:
    delays = _delays("nats://127.0.0.1:4222", reconnect_time_wait=0.5, reconnect_jitter=0.1, reconnect_jitter_tls=5.0)
    assert all(0.5 <= d <= 0.6 for d in delays)
    assert max(delays) - min(delays) > 0.05  # really random, not a constant


async def test_tls_servers_use_reconnect_jitter_tls() -> None:
    delays = _delays("tls://127.0.0.1:4222", reconnect_time_wait=0.5, reconnect_jitter=0.0, reconnect_jitter_tls=1.0)
    assert all(0.5 <= d <= 1.5 for d in delays)
    assert max(delays) > 1.2 and min(delays) < 0.8


async def test_tls_option_makes_every_server_a_tls_one() -> None:
    delays = _delays(
        "nats://127.0.0.1:4222", tls=True, reconnect_time_wait=0.0, reconnect_jitter=0.0, reconnect_jitter_tls=1.0
    )
    assert max(delays) > 0.5


async def test_a_delay_handler_replaces_the_policy() -> None:
    delays = _delays("nats://127.0.0.1:4222", reconnect_delay_handler=lambda: 0.25, reconnect_time_wait=9.0)
    assert set(delays) == {0.25}
