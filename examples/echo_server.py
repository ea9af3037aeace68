"""The classic echo server, wirehub style.

Run it:  python examples/echo_server.py --port 8765
   or:   wirehub serve examples/echo_server.py:app

Every ``send {"type": "echo", "data": ...}`` is answered with the same data,
and the raw ``/echo`` endpoint echoes every frame, as any wirehub server does.
"""

import argparse

import wirehub

app = wirehub.App("echo-example")


@app.on("echo")
async def echo(conn, data):
    """Answer with exactly what came in."""
    return data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    raise SystemExit(wirehub.run(app, host=args.host, port=args.port))
