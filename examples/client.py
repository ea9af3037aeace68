"""A client that connects, sends, and logs everything it receives.

Run a server (make run), then:  python examples/client.py ws://127.0.0.1:8765/ws
"""

import asyncio
import logging
import sys

import wirehub

log = logging.getLogger("example-client")


async def main(url: str) -> None:
    def on_state(old, new):
        log.info("state %s -> %s", old.name, new.name)

    async with wirehub.connect(url, on_state_change=on_state) as client:
        log.info("connected as %s to node %s", client.client_id, client.node)
        sub = await client.subscribe("demo")
        log.info("round trip: %.1f ms", await client.ping() * 1000)
        log.info("echo reply: %r", await client.send("echo", {"hello": "wirehub"}))
        for n in range(3):
            offset = await client.publish("demo", {"n": n})
            log.info("published n=%d at offset %d", n, offset)
        received = 0
        async for msg in sub:
            log.info("received on %s offset %d: %r", msg.channel, msg.offset, msg.data)
            received += 1
            if received == 3:
                break


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8765/ws"))
