"""Minimal idiomatic peer servers that ``wirehub bench`` measures wirehub against.

Every peer serves one port with the same three paths, written the way each
library's own documentation does it:

* ``/echo``: every message comes back unchanged;
* ``/broadcast``: every message goes to every *other* client of the path
  (the library's idiomatic broadcast; nothing is parsed);
* ``/pubsub``: a minimal channel protocol, JSON text frames
  ``{"op":"subscribe","channel":C}`` (answered ``{"op":"subscribed","channel":C}``)
  and ``{"op":"publish","channel":C,"data":...}`` (the frame is forwarded as
  is to the channel's subscribers).

The Node ``ws`` peer is ``node/ws_peer.mjs``; python-socketio speaks its own
protocol (events ``echo``, ``publish``, ``subscribe``, ``publish_to``), see
:mod:`.socketio_peer`. Each Python peer runs on uvloop, like ``wirehub serve``.
"""
