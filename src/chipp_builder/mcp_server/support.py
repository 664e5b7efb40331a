"""What every MCP tool shares: failures as tool errors with the API's message, the tool-made cursors of offset
lists, cut text, and the answer's two parts (structured content and a short text)."""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel

from chipp_builder.client._core import encode_params
from chipp_builder.errors import APIError, NotFound, TransportError
from chipp_builder.mcp_server.models import CutMessage
from chipp_builder.schemas.sessions import Message, ToolResult

# Part-two endpoints (SPEC sections 11 and 13) a server may not have: its 404 for the route says so.
PART_TWO = {
    "/messages": "message search (GET /messages, SPEC section 13)",
    "/events": "the event feed (GET /events, SPEC section 11)",
}


class ToolFailure(Exception):
    """A tool's anticipated failure; its text is exactly what the agent reads (an API error's own message)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


ToolFn = TypeVar("ToolFn", bound=Callable[..., Awaitable[CallToolResult]])


def answering_failures(fn: ToolFn) -> ToolFn:
    """The tool, answering a ToolFailure with an error result of its text alone (a raised ToolError would
    reach the agent as `Error executing tool NAME: ...`)."""

    @functools.wraps(fn)
    async def tool(*args: Any, **kwargs: Any) -> CallToolResult:
        try:
            return await fn(*args, **kwargs)
        except ToolFailure as failure:
            return CallToolResult(content=[TextContent(type="text", text=failure.message)], is_error=True)

    return cast(ToolFn, tool)


@contextmanager
def api_errors(path: str = "") -> Iterator[None]:
    """Turn an SDK error into a tool error: the API's own message (a 429's says when to retry); a 404 for a
    Part-two route says the server lacks that feature."""
    try:
        yield
    except NotFound as error:
        if path in PART_TWO:
            raise ToolFailure(f"This server lacks {PART_TWO[path]}, a Part-two feature of the Builder API; "
                              "the other tools work.") from error
        raise ToolFailure(error.message) from error
    except APIError as error:
        raise ToolFailure(error.message) from error
    except TransportError as error:
        raise ToolFailure(f"Cannot reach the Builder API: {error.message}") from error


def offset_of(cursor: str | None) -> int:
    """The offset an offset-list tool's cursor stands for (the API's offset lists have no cursor of their own)."""
    if cursor is None:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        offset = value["offset"]
    except (ValueError, KeyError, TypeError, UnicodeEncodeError, binascii.Error):
        raise ToolFailure("Invalid cursor: pass a `next_cursor` this tool returned") from None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        raise ToolFailure("Invalid cursor: pass a `next_cursor` this tool returned")
    return offset


def offset_cursor(offset: int) -> str:
    """The opaque cursor of an offset-list tool's next page."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def next_offset(offset: int, returned: int, total: int) -> str | None:
    """The cursor of the page after `returned` items from `offset`, or None when that was the last."""
    return offset_cursor(offset + returned) if returned and offset + returned < total else None


def cut(text: str, limit: int) -> tuple[str, bool]:
    """Text cut to `limit` characters (code points), and whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[:limit], True


def cut_message(message: Message, limit: int, model: type[CutMessage] = CutMessage,
                **extra: Any) -> CutMessage:
    """A message with its content and tool results cut to `limit` characters, flagged."""
    fields = message.model_dump()
    content, content_cut = cut(message.content, limit)
    results_cut = False
    if message.tool_results is not None:
        results = []
        for item in message.tool_results:
            text, was_cut = cut(item.result, limit)
            results_cut = results_cut or was_cut
            results.append(ToolResult(tool_name=item.tool_name, result=text))
        fields["tool_results"] = results
    fields.update(content=content, content_truncated=content_cut, content_length=len(message.content),
                  tool_results_truncated=results_cut, **extra)
    return model.model_validate(fields)


def result(summary: str, value: BaseModel) -> CallToolResult:
    """A tool's answer: the structured value, and the short text a model reads first."""
    return CallToolResult(content=[TextContent(type="text", text=summary)],
                          structured_content=value.model_dump(mode="json"))


def next_note(next_cursor: str | None) -> str:
    """The summary's note of a next page."""
    return f"; more with cursor={next_cursor}" if next_cursor else ""


def item_lines(items: list[str], shown: int = 10) -> str:
    """The summary's lines for the first `shown` items."""
    head = [f"- {item}" for item in items[:shown]]
    if len(items) > shown:
        head.append(f"- … and {len(items) - shown} more in the structured result")
    return "\n".join(["", *head]) if head else ""


def given(**filters: Any) -> Any:
    """The SDK filters a tool was given (None: not given); typed Any because the SDK's filter dicts have no
    None values, which encode_params would drop anyway."""
    return {name: value for name, value in filters.items() if value is not None}


def query_params(where: str, filters: Mapping[str, object]) -> dict[str, str]:
    """Query parameters for an endpoint the SDK has no method for (None: absent)."""
    return encode_params(where, filters, frozenset(filters))
