"""One connection, several message types, each with its own handler.

Run it:  wirehub serve examples/multi_type_server.py:app
Try it:  wirehub connect ws://127.0.0.1:8765/ws
         {"op":"send","id":1,"type":"add","data":{"a":2,"b":3}}
"""

import time

import wirehub

app = wirehub.App("multi-type")


@app.on("greet")
async def greet(conn, data):
    """{"name": str} -> a greeting for that name."""
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise wirehub.RequestError("bad_request", "greet needs data.name, a string")
    return {"greeting": f"hello, {data['name']}!"}


@app.on("add")
async def add(conn, data):
    """{"a": number, "b": number} -> their sum."""
    try:
        return {"sum": data["a"] + data["b"]}
    except (TypeError, KeyError):
        raise wirehub.RequestError("bad_request", "add needs numbers data.a and data.b") from None


@app.on("time")
def server_time(conn, data):
    """Plain functions work too: the server's clock in ms."""
    return {"ms": int(time.time() * 1000)}


@app.on("announce")
async def announce(conn, data):
    """Publish to the `announcements` channel from server code, tagged with the sender."""
    pub = await app.publish("announcements", {"by": conn.client_id, "text": str(data)})
    return {"offset": pub.offset}
