"""The public API is exactly wirehub.__all__, and every name in it imports."""

from __future__ import annotations

import importlib

import wirehub

REQUIRED = {
    "App",
    "BrokerError",
    "CloseCode",
    "ConfigError",
    "ConnectionClosed",
    "ConnectionState",
    "ErrorCode",
    "HandshakeError",
    "InvalidStateTransition",
    "RequestError",
    "RequestTimeout",
    "WirehubError",
    "__version__",
    "is_retryable",
    "run",
}
#: the Python client's names, being added to the package
CLIENT = {"connect", "Client", "Subscription"}


def test_all_is_the_public_set() -> None:
    """__all__ holds every required public name and nothing beyond the client's names."""
    public = set(wirehub.__all__)
    assert public >= REQUIRED, f"missing from __all__: {sorted(REQUIRED - public)}"
    extra = public - REQUIRED - CLIENT
    assert not extra, f"unexpected in __all__: {sorted(extra)}"
    assert len(wirehub.__all__) == len(public), "__all__ lists a name twice"


def test_every_listed_name_exists() -> None:
    """Each name in __all__ is an attribute of the package and survives `from wirehub import`."""
    module = importlib.import_module("wirehub")
    for name in wirehub.__all__:
        assert hasattr(module, name), name
        namespace: dict[str, object] = {}
        exec(f"from wirehub import {name}", namespace)
        assert namespace[name] is getattr(module, name)


def test_star_import_gives_exactly_all() -> None:
    """`from wirehub import *` brings in the names of __all__ and no private helper."""
    namespace: dict[str, object] = {}
    exec("from wirehub import *", namespace)
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(wirehub.__all__)


def test_exceptions_form_one_tree() -> None:
    """Every exported exception derives from WirehubError."""
    for name in ("BrokerError", "ConfigError", "ConnectionClosed", "HandshakeError",
                 "InvalidStateTransition", "RequestError", "RequestTimeout"):
        assert issubclass(getattr(wirehub, name), wirehub.WirehubError), name


def test_version_is_a_string() -> None:
    """__version__ is a dotted version string."""
    assert isinstance(wirehub.__version__, str)
    assert all(part.isdigit() for part in wirehub.__version__.split(".")[:2])
