"""/metrics in Prometheus format, checked by scraping a real server."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.rawclient import RawClient
from wirehub import App
from wirehub.config import ServerConfig
from wirehub.transport.runner import ServerRunner


async def scrape(url: str) -> dict[str, float]:
    """Every sample of /metrics as {'name{label=value}': value}."""
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = await resp.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


async def test_metrics_count_connections_messages_errors_and_closes(unit):
    """Connections, subscriptions, ops, deliveries, errors, closes and latency show up."""
    app = App("metrics-test")
    async with ServerRunner(app, ServerConfig(port=0)) as runner:
        a = await RawClient.connect(runner.ws_url + "/ws", unit)
        b = await RawClient.connect(runner.ws_url + "/ws", unit)
        await a.ok("subscribe", channel="m")
        await b.ok("subscribe", channel="m")
        for n in range(5):
            await a.ok("publish", channel="m", data=n)
        await a.messages(5)
        await b.messages(5)
        await a.request("nope")
        await a.request("subscribe", channel="bad channel")
        m = await scrape(runner.url)
        assert m["wirehub_connections"] == 2
        assert m["wirehub_subscriptions"] == 2 and m["wirehub_channels"] == 1
        assert m["wirehub_messages_in_total{op=publish}"] == 5
        assert m["wirehub_messages_in_total{op=subscribe}"] == 2
        assert m["wirehub_deliveries_total"] == 10 and m["wirehub_publications_total"] == 5
        assert m["wirehub_bytes_out_total"] > 0 and m["wirehub_bytes_in_total"] > 0
        assert m["wirehub_errors_total{code=unknown_op}"] == 1
        assert m["wirehub_errors_total{code=bad_request}"] == 1
        assert m["wirehub_delivery_latency_seconds_count"] == 5
        assert m["wirehub_broker_healthy"] == 1
        await b.close()
        for _ in range(200):  # the server notices the close within a few loop turns
            if (await scrape(runner.url))["wirehub_connections"] == 1:
                break
            await a.request("ping")
        else:
            raise AssertionError("the closed connection was never counted")
        m = await scrape(runner.url)
        assert m["wirehub_closes_total{code=1000}"] == 1
        await a.close()


async def test_metrics_can_be_turned_off(unit):
    """With metrics=False there is no /metrics route."""
    async with ServerRunner(App("x"), ServerConfig(port=0, metrics=False)) as runner:
        async with aiohttp.ClientSession() as session, \
                session.get(runner.url + "/metrics") as resp:
            assert resp.status == 404
