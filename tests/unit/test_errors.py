"""The exception tree of errors.py: every wire code maps back to its class, with the right status and parent;
unknown codes and statuses fall back by status; transport errors carry no status; parents catch children."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from chipp_builder import errors as E
from chipp_builder.client import Client

# Every code the server sends, with its status and the group a caller catches it by.
WIRE = [
    ("invalid_request", 400, E.InvalidRequest, E.APIError),
    ("unauthorized", 401, E.Unauthorized, E.AuthenticationError),
    ("expired", 401, E.Expired, E.AuthenticationError),
    ("forbidden", 403, E.Forbidden, E.APIError),
    ("not_found", 404, E.NotFound, E.APIError),
    ("method_not_allowed", 405, E.MethodNotAllowed, E.APIError),
    ("cursor_expired", 410, E.CursorExpired, E.APIError),
    ("idempotency_conflict", 409, E.IdempotencyConflict, E.Conflict),
    ("payload_too_large", 413, E.PayloadTooLarge, E.APIError),
    ("rate_limited", 429, E.RateLimited, E.APIError),
    ("internal_error", 500, E.InternalError, E.ServerError),
    ("service_unavailable", 503, E.ServiceUnavailable, E.ServerError),
    ("insufficient_storage", 507, E.InsufficientStorage, E.ServerError),
]


def envelope(code: str, message: str = "why") -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def test_the_wire_table_lists_every_class_the_server_sends() -> None:
    assert {cls for _, _, cls, _ in WIRE} == set(E.WIRE_ERRORS)
    assert sorted(E.BY_CODE) == sorted(code for code, _, _, _ in WIRE)


@pytest.mark.parametrize("code, status, cls, parent", WIRE, ids=[w[0] for w in WIRE])
def test_each_wire_code_maps_to_its_class_status_and_parent(
    code: str, status: int, cls: type[E.APIError], parent: type[E.APIError]
) -> None:
    error = E.error_from_response(status, envelope(code, "Session not found"))
    assert type(error) is cls
    assert (error.status, error.code, error.message) == (status, code, "Session not found")
    assert cls.status == status and cls.code == code  # class attributes, not set on the instance
    assert "status" not in vars(error) and "code" not in vars(error)
    assert isinstance(error, parent) and isinstance(error, E.APIError) and isinstance(error, E.ChippError)
    assert not isinstance(error, E.TransportError)


@pytest.mark.parametrize(
    "status, cls",
    [(400, E.InvalidRequest), (401, E.AuthenticationError), (403, E.Forbidden), (404, E.NotFound),
     (405, E.MethodNotAllowed), (410, E.CursorExpired), (409, E.Conflict), (413, E.PayloadTooLarge),
     (429, E.RateLimited),
     (500, E.ServerError), (503, E.ServiceUnavailable), (507, E.InsufficientStorage)],
)
def test_an_unknown_code_maps_to_the_general_class_of_its_status_and_keeps_its_code(
    status: int, cls: type[E.APIError]
) -> None:
    error = E.error_from_response(status, envelope("from_a_newer_server", "new"))
    assert type(error) is cls
    assert (error.status, error.code, error.message) == (status, "from_a_newer_server", "new")


def test_an_unknown_401_code_is_caught_as_an_authentication_error() -> None:
    with pytest.raises(E.AuthenticationError) as caught:
        raise E.error_from_response(401, envelope("key_suspended"))
    assert not isinstance(caught.value, E.Unauthorized | E.Expired)


def test_a_known_code_at_another_status_goes_by_the_status() -> None:
    # A proxy or a misconfigured gateway: the status the client saw is the one the error reports.
    error = E.error_from_response(503, envelope("not_found", "maintenance"))
    assert type(error) is E.ServiceUnavailable
    assert (error.status, error.code) == (503, "not_found")


@pytest.mark.parametrize("status", [418, 502, 504, 302])
def test_a_status_the_api_never_sends_is_unexpected_status_with_that_status(status: int) -> None:
    error = E.error_from_response(status, envelope("teapot", "short and stout"))
    assert type(error) is E.UnexpectedStatus
    assert (error.status, error.code, error.message) == (status, "teapot", "short and stout")


@pytest.mark.parametrize(
    "status, cls, code",
    [(503, E.ServiceUnavailable, "service_unavailable"), (500, E.ServerError, "internal_error"),
     (502, E.UnexpectedStatus, "http_error"), (404, E.NotFound, "not_found")],
)
def test_a_body_that_is_not_the_envelope_goes_by_status(status: int, cls: type[E.APIError], code: str) -> None:
    for body in (None, "<html>Bad gateway</html>", {"detail": "x"}, {"error": "x"}):
        error = E.error_from_response(status, body)
        assert type(error) is cls
        assert (error.status, error.code, error.message) == (status, code, f"HTTP {status}")


def test_rate_limited_keeps_retry_after() -> None:
    error = E.error_from_response(429, envelope("rate_limited"), retry_after=7)
    assert isinstance(error, E.RateLimited) and error.retry_after == 7


@pytest.mark.parametrize("cls", [E.TransportError, E.ConnectionFailed, E.TimedOut])
def test_transport_errors_have_no_status(cls: type[E.TransportError]) -> None:
    error = cls("GET /sessions failed")
    assert not hasattr(error, "status")
    assert not isinstance(error, E.APIError) and isinstance(error, E.ChippError)


def test_transport_errors_have_their_own_codes() -> None:
    assert (E.ConnectionFailed.code, E.TimedOut.code) == ("connection_error", "timeout")


@pytest.mark.parametrize(
    "raised, parent",
    [(E.Expired("API key has expired"), E.AuthenticationError),
     (E.Unauthorized("Invalid API key"), E.AuthenticationError),
     (E.IdempotencyConflict("reused"), E.Conflict),
     (E.InternalError(), E.ServerError),
     (E.ServiceUnavailable("down"), E.ServerError),
     (E.InsufficientStorage("full"), E.ServerError),
     (E.NotFound("gone"), E.APIError),
     (E.TimedOut("slow"), E.TransportError),
     (E.ConnectionFailed("refused"), E.TransportError),
     (E.TimedOut("slow"), E.ChippError),
     (E.RateLimited(), E.ChippError)],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v.__name__,
)
def test_catching_the_parent_catches_the_child(raised: E.ChippError, parent: type[E.ChippError]) -> None:
    try:
        raise raised
    except parent as caught:  # anything else propagates and fails the test
        assert caught is raised


def test_siblings_do_not_catch_each_other() -> None:
    assert not issubclass(E.Forbidden, E.AuthenticationError)
    assert not issubclass(E.RateLimited, E.ServerError)
    assert not issubclass(E.UnexpectedStatus, E.ServerError)
    assert not issubclass(E.TimedOut, E.ConnectionFailed)


def test_the_server_envelope_is_unchanged() -> None:
    assert E.Expired("API key has expired").to_body() == envelope("expired", "API key has expired")
    assert E.UnexpectedStatus("I'm a teapot", 418).to_body() == envelope("http_error", "I'm a teapot")


def test_every_class_in_the_module_is_drawn_in_its_docstring() -> None:
    classes = [name for name, value in vars(E).items() if isinstance(value, type) and issubclass(value, E.ChippError)]
    assert E.__doc__ is not None
    drawn = E.__doc__
    assert [name for name in classes if f" {name} " not in drawn] == []


def _client(answer: httpx.Response | Exception) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Client("http://api.test", "chipp_" + "e" * 32, "00000000-0000-4000-8000-000000000000",
                  transport=httpx.MockTransport(handler), max_retries=0)


def test_the_sdk_raises_expired_which_except_authentication_error_catches() -> None:
    client = _client(httpx.Response(401, json=envelope("expired", "API key has expired")))
    with pytest.raises(E.AuthenticationError) as caught:
        client.sessions.get("00000000-0000-4000-8000-000000000001")
    assert type(caught.value) is E.Expired and caught.value.status == 401


def test_the_sdk_raises_timed_out_for_a_timeout_and_connection_failed_otherwise() -> None:
    with pytest.raises(E.TimedOut, match="timed out: ReadTimeout") as timed_out:
        _client(httpx.ReadTimeout("slow")).sessions.get("00000000-0000-4000-8000-000000000001")
    assert isinstance(timed_out.value.__cause__, httpx.ReadTimeout)
    with pytest.raises(E.ConnectionFailed, match="failed: ConnectError") as failed:
        _client(httpx.ConnectError("refused")).sessions.get("00000000-0000-4000-8000-000000000001")
    assert isinstance(failed.value.__cause__, httpx.ConnectError)


def test_the_sdk_guide_draws_the_same_tree() -> None:
    assert E.__doc__ is not None
    drawn = [line.strip() for line in E.__doc__.splitlines() if line.startswith("    ") and line.strip()]
    guide = (Path(__file__).parents[2] / "docs" / "sdk.md").read_text(encoding="utf-8")
    start = guide.index("\nChippError ") + 1
    assert [line.strip() for line in guide[start:guide.index("\n```", start)].splitlines()] == drawn
