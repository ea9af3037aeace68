"""Close and error codes: documented ranges and what a client should do after each."""

from __future__ import annotations

import pytest

from wirehub.core.codes import CloseCode, ErrorCode, is_retryable

RETRYABLE = {
    CloseCode.GOING_AWAY,
    CloseCode.NO_STATUS,
    CloseCode.ABNORMAL,
    CloseCode.INTERNAL_ERROR,
    CloseCode.SERVICE_RESTART,
    CloseCode.TRY_AGAIN_LATER,
    CloseCode.SLOW_CONSUMER,
    CloseCode.HEARTBEAT_TIMEOUT,
    CloseCode.FORCE_RECONNECT,
    CloseCode.INSUFFICIENT_STATE,
}


@pytest.mark.parametrize("code", list(CloseCode), ids=lambda c: c.name)
def test_is_retryable_for_every_close_code(code: CloseCode) -> None:
    """Each named close code is retryable or final exactly as the protocol table says."""
    assert is_retryable(code) is (code in RETRYABLE)
    assert is_retryable(int(code)) is (code in RETRYABLE)


def test_no_close_frame_is_retryable() -> None:
    """A connection lost without any close frame (code None) is retried."""
    assert is_retryable(None) is True


@pytest.mark.parametrize("code", [4000, 4001, 4123, 4498, 4499])
def test_private_lower_half_is_retryable(code: int) -> None:
    """Every code in 4000-4499, named or not, tells the client to reconnect."""
    assert is_retryable(code)


@pytest.mark.parametrize("code", [4500, 4501, 4777, 4999, 3000, 3999, 1000, 1002, 1003, 1007,
                                  1008, 1009, 1010, 1014, 1015, 5000, 0])
def test_other_codes_are_final(code: int) -> None:
    """Codes 4500-4999, the 3000 range, and final standard codes stop the client."""
    assert not is_retryable(code)


def test_close_codes_sit_in_documented_ranges() -> None:
    """Standard codes are RFC 6455 §7.4.1 values; private ones lie in 4000-4999."""
    for code in CloseCode:
        assert 1000 <= code <= 1015 or 4000 <= code <= 4999, code
        if code >= 4000:
            assert (code < 4500) is is_retryable(code), code


def test_close_code_values_are_stable() -> None:
    """The wire values clients depend on do not drift."""
    assert CloseCode.GOING_AWAY == 1001
    assert CloseCode.PROTOCOL_ERROR == 1002
    assert CloseCode.MESSAGE_TOO_BIG == 1009
    assert CloseCode.SLOW_CONSUMER == 4000
    assert CloseCode.HEARTBEAT_TIMEOUT == 4001
    assert CloseCode.UNAUTHORIZED == 4500
    assert len({int(c) for c in CloseCode}) == len(CloseCode)


def test_error_codes_are_snake_case_strings() -> None:
    """Error codes travel as lowercase strings equal to the enum values."""
    expected = {"bad_request", "unknown_op", "not_found", "forbidden", "unauthorized",
                "too_large", "rate_limited", "internal"}
    assert {str(c) for c in ErrorCode} == expected
    assert ErrorCode.BAD_REQUEST == "bad_request"
    assert f"{ErrorCode.INTERNAL}" == "internal"
