"""The only layer that touches sockets: the aiohttp server (and ASGI later)."""
