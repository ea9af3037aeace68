"""RequestTable: replies, errors and drops reach the request with the same id."""

from __future__ import annotations

import asyncio

import pytest

from wirehub.client.requests import RequestTable, deadline
from wirehub.exceptions import ConnectionClosed, RequestError, RequestTimeout


async def test_resolve_answers_the_matching_request():
    """A reply resolves the future of its id and runs on_result first."""
    table = RequestTable()
    seen = []
    rid = table.next_id()
    with table.expect(rid, "publish", on_result=seen.append) as future:
        assert not table.resolve(rid + 1, {"offset": 9})  # nobody waits for that id
        assert table.resolve(rid, {"offset": 1})
        assert await future == {"offset": 1}
    assert seen == [{"offset": 1}]
    assert len(table) == 0


async def test_reject_raises_request_error_with_code():
    """An error frame fails the request with RequestError carrying code and id."""
    table = RequestTable()
    with table.expect(7, "send") as future:
        assert table.reject(7, "unknown_op", "no handler")
        with pytest.raises(RequestError) as info:
            await future
    assert (info.value.code, info.value.request_id) == ("unknown_op", 7)


async def test_fail_all_fails_every_pending_request():
    """A dropped connection fails each pending request with its own ConnectionClosed."""
    table = RequestTable()
    with table.expect(1, "a") as f1, table.expect(2, "b") as f2:
        table.fail_all(ConnectionClosed(None, "lost"))
        errors = [f1.exception(), f2.exception()]
    assert all(isinstance(e, ConnectionClosed) and not e.final for e in errors)
    assert errors[0] is not errors[1]


async def test_ids_are_distinct_and_increasing():
    """Ids count up from 1."""
    table = RequestTable()
    assert [table.next_id() for _ in range(3)] == [1, 2, 3]


async def test_deadline_raises_request_timeout(unit):
    """A block over its deadline raises RequestTimeout naming op, id and seconds."""
    with pytest.raises(RequestTimeout) as info:
        async with deadline("ping", 5, unit / 100):
            await asyncio.Event().wait()
    assert (info.value.op, info.value.request_id) == ("ping", 5)
