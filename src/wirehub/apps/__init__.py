"""Apps that ship with wirehub, written with the public :class:`wirehub.App` API."""

from ..app import App
from .echo import echo_app

__all__ = ["default_app", "echo_app"]


def default_app() -> App:
    """The app ``wirehub serve`` runs by default: every built-in app together."""
    return App("default").include(echo_app())
