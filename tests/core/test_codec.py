"""Codec: every op decodes in JSON and MessagePack, and every bad frame becomes a RequestError."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirehub.core.codec import CODECS, JSON, MSGPACK, Codec, codec_for
from wirehub.core.codes import ErrorCode
from wirehub.core.envelope import (
    CLIENT_OPS,
    Connect,
    Error,
    HistoryRequest,
    MessagePush,
    Ping,
    Pong,
    Presence,
    PresenceStats,
    Publish,
    Refresh,
    Reply,
    Send,
    Since,
    Subscribe,
    Unsubscribe,
    Welcome,
)
from wirehub.exceptions import RequestError

MAX_ID = 2**53 - 1


def frame(codec: Codec, obj: object) -> tuple[bytes | str, bool]:
    """``obj`` as the payload a well-behaved client of ``codec`` would send."""
    if codec.binary:
        return msgspec.msgpack.encode(obj), True
    return msgspec.json.encode(obj).decode(), False


def decode(codec: Codec, obj: object) -> object:
    payload, binary = frame(codec, obj)
    return codec.decode(payload, binary=binary)


def decode_error(codec: Codec, payload: bytes | str, *, binary: bool | None = None) -> RequestError:
    if binary is None:
        binary = codec.binary
    result = codec.decode(payload, binary=binary)
    assert isinstance(result, RequestError), result
    return result


both = pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=["json", "msgpack"])

OPS = [
    ({"op": "subscribe", "channel": "news"}, Subscribe(channel="news")),
    ({"op": "unsubscribe", "channel": "chat:lobby"}, Unsubscribe(channel="chat:lobby")),
    ({"op": "publish", "channel": "a.b_c-d@e", "data": {"x": [1, "2", None]}},
     Publish(channel="a.b_c-d@e", data={"x": [1, "2", None]})),
    ({"op": "publish", "channel": "n"}, Publish(channel="n", data=None)),
    ({"op": "send", "type": "echo", "data": "hi"}, Send(type="echo", data="hi")),
    ({"op": "ping"}, Ping()),
    ({"op": "subscribe", "channel": "s", "since": {"offset": 4, "epoch": "ab12"},
      "max_rate": 2.5},
     Subscribe(channel="s", since=Since(offset=4, epoch="ab12"), max_rate=2.5)),
    ({"op": "history", "channel": "h", "limit": 10}, HistoryRequest(channel="h", limit=10)),
    ({"op": "presence", "channel": "room:1"}, Presence(channel="room:1")),
    ({"op": "presence_stats", "channel": "room:1"}, PresenceStats(channel="room:1")),
    ({"op": "connect", "token": "t.o.k"}, Connect(token="t.o.k")),
    ({"op": "refresh", "token": "n.e.w"}, Refresh(token="n.e.w")),
]


def test_every_client_op_is_covered() -> None:
    """The decode table has a case for every op a client may send."""
    assert {obj["op"] for obj, _ in OPS} == CLIENT_OPS


@both
@pytest.mark.parametrize(("obj", "expected"), OPS, ids=[o["op"] for o, _ in OPS])
@pytest.mark.parametrize("rid", [None, 7, -3, 0, MAX_ID, -MAX_ID, "req-1", ""])
def test_every_op_decodes(codec: Codec, obj: dict, expected: object, rid: object) -> None:
    """Each client op decodes to its typed request, with or without an int or string id."""
    if rid is not None:
        obj = {**obj, "id": rid}
    result = decode(codec, obj)
    assert type(result) is type(expected)
    assert result == msgspec.structs.replace(expected, id=rid)


@both
def test_unknown_fields_are_ignored(codec: Codec) -> None:
    """Extra fields are skipped for forward compatibility."""
    assert decode(codec, {"op": "ping", "id": 1, "future": {"x": 1}}) == Ping(id=1)


def test_json_codec_accepts_binary_frames() -> None:
    """JSON may arrive in binary frames too."""
    assert JSON.decode(b'{"op":"ping","id":3}', binary=True) == Ping(id=3)


def test_msgpack_codec_refuses_text_frames() -> None:
    """A text frame on a MessagePack connection is bad_request naming the subprotocol."""
    err = decode_error(MSGPACK, '{"op":"ping"}', binary=False)
    assert err.code == ErrorCode.BAD_REQUEST
    assert "wirehub.v1.msgpack" in err.message and "binary" in err.message


@pytest.mark.parametrize("payload", ["{", "", "nope", '{"op":"ping",}', "[1,2", '{"op":"ping"} x',
                                     '{"op":"ping","id":1e400}'])
def test_malformed_json(payload: str) -> None:
    """Text that is not JSON is bad_request saying 'malformed JSON', with no id."""
    err = decode_error(JSON, payload)
    assert err.code == ErrorCode.BAD_REQUEST
    assert err.message.startswith("malformed JSON")
    assert err.request_id is None


@pytest.mark.parametrize("payload", [b"\xc1", b"", b"\x92\x01", b"\xff\xfe\x00"])
def test_malformed_msgpack(payload: bytes) -> None:
    """Bytes that are not MessagePack are bad_request saying 'malformed MessagePack'."""
    err = decode_error(MSGPACK, payload)
    assert err.code == ErrorCode.BAD_REQUEST
    assert err.message.startswith("malformed MessagePack")


@both
@pytest.mark.parametrize(("value", "kind"), [([1], "list"), ("x", "str"), (5, "int"),
                                             (None, "NoneType"), (1.5, "float"), (True, "bool")])
def test_non_object_is_bad_request(codec: Codec, value: object, kind: str) -> None:
    """A frame that is valid but not an object is bad_request naming what it was."""
    payload, binary = frame(codec, value)
    err = decode_error(codec, payload, binary=binary)
    assert err.code == ErrorCode.BAD_REQUEST
    assert err.message == f"a request must be an object, got {kind}"


@both
def test_missing_op(codec: Codec) -> None:
    """An object without op is bad_request naming `op`, and keeps the id."""
    err = decode_error(codec, frame(codec, {"id": 4, "channel": "x"})[0])
    assert err.code == ErrorCode.BAD_REQUEST
    assert "`op`" in err.message
    assert err.request_id == 4


@both
@pytest.mark.parametrize("op", ["nope", "pong", "welcome", "reply", "SUBSCRIBE", "", "x" * 100])
def test_unknown_op(codec: Codec, op: str) -> None:
    """An op the server does not know is unknown_op listing the known ops, keeping the id."""
    err = decode_error(codec, frame(codec, {"op": op, "id": "q"})[0])
    assert err.code == ErrorCode.UNKNOWN_OP
    assert err.request_id == "q"
    assert ", ".join(sorted(CLIENT_OPS)) in err.message
    assert len(err.message) < 200  # a huge op name is shortened, not echoed whole


@both
@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"op": 5}, "$.op"),
        ({"op": "subscribe", "channel": 5}, "$.channel"),
        ({"op": "subscribe"}, "channel"),
        ({"op": "unsubscribe", "channel": ["a"]}, "$.channel"),
        ({"op": "publish", "channel": None, "data": 1}, "$.channel"),
        ({"op": "send", "type": 1}, "$.type"),
        ({"op": "send", "type": "bad type"}, "$.type"),
        ({"op": "send", "type": ""}, "$.type"),
        ({"op": "ping", "id": 1.5}, "$.id"),
        ({"op": "ping", "id": True}, "$.id"),
        ({"op": "ping", "id": [1]}, "$.id"),
    ],
)
def test_wrong_field_types_name_the_field(codec: Codec, obj: dict, field: str) -> None:
    """A field of the wrong type or value is bad_request whose message names the field."""
    err = decode_error(codec, frame(codec, obj)[0])
    assert err.code == ErrorCode.BAD_REQUEST
    assert field in err.message


@both
@pytest.mark.parametrize("channel", ["", "a b", "x" * 201, "caf\u00e9", "a/b", "a\nb", "#"])
def test_invalid_channel_names(codec: Codec, channel: str) -> None:
    """Channel names outside [A-Za-z0-9_.:@-]{1,200} are bad_request at `$.channel`."""
    err = decode_error(codec, frame(codec, {"op": "subscribe", "channel": channel, "id": 9})[0])
    assert err.code == ErrorCode.BAD_REQUEST
    assert "$.channel" in err.message
    assert err.request_id == 9


@both
def test_longest_channel_name_is_valid(codec: Codec) -> None:
    """A 200-character channel name is still valid."""
    assert decode(codec, {"op": "subscribe", "channel": "c" * 200}) == Subscribe(channel="c" * 200)


@both
@pytest.mark.parametrize("rid", [2**53, -(2**53), 2**63, 2**64 - 1, "x" * 129])
def test_huge_ids_are_refused_and_not_echoed(codec: Codec, rid: object) -> None:
    """An id a reply could not carry safely is bad_request at `$.id`, answered without id."""
    err = decode_error(codec, frame(codec, {"op": "ping", "id": rid})[0])
    assert err.code == ErrorCode.BAD_REQUEST
    assert "$.id" in err.message
    assert err.request_id is None


@pytest.mark.parametrize("digits", [20, 40, 400])
def test_json_bigint_id_is_refused(digits: int) -> None:
    """A JSON id with dozens or hundreds of digits is bad_request, not a crash."""
    err = decode_error(JSON, '{"op":"ping","id":' + "9" * digits + "}")
    assert err.code == ErrorCode.BAD_REQUEST
    assert err.request_id is None


def test_unusable_id_is_dropped_but_other_errors_keep_usable_ids() -> None:
    """When the op is wrong, a usable id is repeated and an unusable one is dropped."""
    assert decode_error(JSON, '{"op":"x","id":9007199254740991}').request_id == MAX_ID
    assert decode_error(JSON, '{"op":"x","id":9007199254740992}').request_id is None
    assert decode_error(JSON, '{"op":"x","id":true}').request_id is None
    assert decode_error(JSON, '{"op":"x","id":"%s"}' % ("y" * 129)).request_id is None
    assert decode_error(JSON, '{"op":"x","id":"%s"}' % ("y" * 128)).request_id == "y" * 128


@both
@pytest.mark.parametrize("depth", [2000, 20000])
def test_deeply_nested_data_is_bad_request(codec: Codec, depth: int) -> None:
    """Data nested past the decoder's depth limit is bad_request, never a RecursionError."""
    if codec.binary:
        head = msgspec.msgpack.encode({"op": "publish", "channel": "x", "id": 1, "data": None})
        payload: bytes | str = head[:-1] + b"\x91" * depth + b"\xc0"
    else:
        payload = '{"op":"publish","channel":"x","id":1,"data":' + "[" * depth + "]" * depth + "}"
    err = decode_error(codec, payload)
    assert err.code == ErrorCode.BAD_REQUEST


@pytest.mark.parametrize("depth", [2000, 20000])
def test_deeply_nested_objects_are_bad_request(depth: int) -> None:
    """A request of nested objects past the depth limit is bad_request, never a RecursionError."""
    err = decode_error(JSON, '{"a":' * depth + "1" + "}" * depth)
    assert err.code == ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    "payload",
    [
        b"\xa1\x80",  # a bare string
        b"\x81\xa1\x80\x01",  # a map key
        b"\x81\xa2op\xa1\x80",  # the op
        b"\x82\xa2op\xa4ping\xa2id\xa1\x80",  # the id
        b"\x83\xa2op\xa7publish\xa7channel\xa1a\xa4data\xa1\x80",  # inside data
    ],
    ids=["str", "key", "op", "id", "data"],
)
def test_msgpack_invalid_utf8_is_bad_request(payload: bytes) -> None:
    """A MessagePack string that is not UTF-8 is bad_request, never a UnicodeDecodeError."""
    err = decode_error(MSGPACK, payload)
    assert err.code == ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    "payload",
    [b'"\x80"', b'{"\x80p":"ping"}', b'{"op":"ping","id":"\x80"}',
     b'{"op":"publish","channel":"a","data":"\xff"}'],
    ids=["str", "key", "id", "data"],
)
def test_json_in_binary_frame_with_invalid_utf8_is_bad_request(payload: bytes) -> None:
    """JSON in a binary frame with a string that is not UTF-8 is bad_request, never raised."""
    err = decode_error(JSON, payload, binary=True)
    assert err.code == ErrorCode.BAD_REQUEST


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_decode_never_raises(payload: bytes | str) -> None:
    """Arbitrary text (text frames) or bytes (binary frames) decode without raising."""
    binary = isinstance(payload, bytes)
    for codec in (JSON, MSGPACK):
        result = codec.decode(payload, binary=binary)
        assert isinstance(result, RequestError | msgspec.Struct), result


def test_welcome_encoding() -> None:
    """An anonymous welcome has exactly op, client, node, protocol and ping_interval."""
    welcome = Welcome(client="c1", node="n1", protocol="wirehub.v1", ping_interval=20)
    assert msgspec.json.decode(JSON.encode(welcome)) == {
        "op": "welcome", "client": "c1", "node": "n1", "protocol": "wirehub.v1",
        "ping_interval": 20}
    packed = MSGPACK.encode(welcome)
    assert msgspec.msgpack.decode(packed)["op"] == "welcome"


def test_error_encoding_omits_missing_id() -> None:
    """An error without a request id carries no id field; one with an id repeats it."""
    assert msgspec.json.decode(JSON.encode(Error(code="bad_request", message="m"))) == {
        "op": "error", "code": "bad_request", "message": "m"}
    assert msgspec.json.decode(JSON.encode(Error(id=5, code="x", message="m")))["id"] == 5


def test_reply_pong_and_message_encoding() -> None:
    """Reply, pong and message pushes carry their documented fields; `from` is spelled so."""
    assert msgspec.json.decode(JSON.encode(Reply(id="a", result={"offset": 1}))) == {
        "op": "reply", "id": "a", "result": {"offset": 1}}
    assert msgspec.json.decode(JSON.encode(Pong(id=None))) == {"op": "pong", "id": None}
    push = MessagePush(channel="c", data=[1], offset=3, epoch="e", from_=None, ts=5)
    for codec in (JSON, MSGPACK):
        decoded = codec.decode_value(codec.encode(push))
        assert decoded == {"op": "message", "channel": "c", "data": [1], "offset": 3,
                           "epoch": "e", "from": None, "ts": 5}


def test_codec_for_subprotocols() -> None:
    """Each subprotocol name maps to its codec; none or unknown falls back to JSON."""
    assert set(CODECS) == {"wirehub.v1.json", "wirehub.v1.msgpack"}
    assert codec_for("wirehub.v1.msgpack") is MSGPACK
    assert codec_for("wirehub.v1.json") is JSON
    assert codec_for(None) is JSON
    assert codec_for("") is JSON
    assert JSON.binary is False and MSGPACK.binary is True
