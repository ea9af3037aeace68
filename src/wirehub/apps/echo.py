"""The echo app: ``send {type: "echo", data}`` answers with ``data``."""

from __future__ import annotations

from typing import Any

from ..app import App

__all__ = ["echo_app"]


def echo_app() -> App:
    app = App("echo")

    @app.on("echo")
    async def echo(conn: Any, data: Any) -> Any:
        return data

    return app
