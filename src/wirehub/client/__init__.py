"""The Python client of protocol v1: connect, subscribe, publish, send, reconnect.

It shares the envelopes, codecs, codes and state names of :mod:`wirehub.core`
with the server, and never imports the node, the brokers or the transport.
"""

from __future__ import annotations

from .backoff import backoff
from .client import Client, StateCallback, connect
from .subscription import Message, Subscription

__all__ = ["Client", "Message", "StateCallback", "Subscription", "backoff", "connect"]
