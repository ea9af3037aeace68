"""A FastAPI application with the wirehub hub mounted at /ws.

Run it:   uvicorn examples.fastapi_app:app --port 8000
Then:     wirehub subscribe ws://127.0.0.1:8000/ws news
          curl -X POST 'http://127.0.0.1:8000/notify?text=hello'
"""

from fastapi import FastAPI
from starlette.routing import WebSocketRoute

import wirehub
from wirehub.asgi import WirehubASGI

hub_app = wirehub.App("fastapi-example")


@hub_app.on("echo")
async def echo(conn, data):
    return data


hub = WirehubASGI(hub_app)
app = FastAPI(title="wirehub inside FastAPI", lifespan=hub.lifespan)
app.router.routes.append(WebSocketRoute("/ws", hub))  # the hub is a plain ASGI app


@app.post("/notify")
async def notify(text: str) -> dict:
    """An ordinary HTTP route that publishes to the `news` channel."""
    pub = await hub.publish("news", {"text": text})
    return {"channel": "news", "offset": pub.offset}


@app.get("/hello")
async def hello() -> dict:
    return {"hello": "from FastAPI"}
