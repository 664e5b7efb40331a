"""Rules of request-body fields, each as a validator and as the JSON Schema keywords that state it, so the
OpenAPI document says exactly what the server checks (the contract fuzzer holds the two to each other)."""

from __future__ import annotations

import unicodedata
from typing import Any

from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F.
NO_CONTROL_CHARACTERS = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
# Message content: control characters except tab, newline and carriage return.
MESSAGE_TEXT = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f]*$"
# Every character that is a control character or that str.isspace() calls whitespace.
_SPACE_OR_CONTROL = "\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
# Something before the last `@`, something after it, no space or control character anywhere.
EMAIL = f"^[^{_SPACE_OR_CONTROL}]+@[^{_SPACE_OR_CONTROL}@]+$"
WEB_URL = f"^https?://[^{_SPACE_OR_CONTROL}]*$"


def has_control_characters(text: str, allow_newlines: bool = False) -> bool:
    """Whether `text` holds a Cc character (tab, newline and carriage return allowed when asked)."""
    return any(unicodedata.category(c) == "Cc" and not (allow_newlines and c in "\t\n\r") for c in text)


def plain_text(value: str) -> str:
    """Text without control characters (NO_CONTROL_CHARACTERS)."""
    if has_control_characters(value, allow_newlines=False):
        raise ValueError("control characters are not allowed")
    return value


def message_text(value: str) -> str:
    """Text without control characters other than tab and newlines (MESSAGE_TEXT)."""
    if has_control_characters(value, allow_newlines=True):
        raise ValueError("control characters other than tab and newline are not allowed")
    return value


def email(value: str) -> str:
    """A plausible email address (EMAIL): what mail systems accept is wider than any stricter check."""
    local, at, domain = value.rpartition("@")
    # Control characters too: NUL made PostgreSQL fail the insert (a 500), and SQLite stored it.
    if not at or not local or not domain or any(c.isspace() for c in value) \
            or has_control_characters(value, allow_newlines=False):
        raise ValueError("not an email address")
    return value


def web_url(value: str) -> str:
    """An http(s) URL without spaces or control characters (WEB_URL)."""
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value) \
            or has_control_characters(value, allow_newlines=False):
        raise ValueError("not an http(s) URL")
    return value


def integral(value: Any) -> Any:
    """A float with no fraction (`1.0`) is the integer it names: JSON Schema calls it an integer, and
    automation tools that hold every number as a float send it so. Strings and bools stay refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class Documented:
    """Annotation metadata adding JSON Schema keywords for a rule a validator enforces in Python."""

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        documented = dict(handler(schema))
        documented.update(self.keywords)
        return documented


class EmptyMeansAbsent:
    """Annotation metadata on an optional field whose model drops `""` (automation tools send empty fields):
    the document lists `""` as one more accepted value."""

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        documented = dict(handler(schema))
        branches = documented.pop("anyOf", None)
        if branches is None:
            return {"anyOf": [documented, {"enum": [""]}]}
        nulls = [branch for branch in branches if branch.get("type") == "null"]
        others = [branch for branch in branches if branch.get("type") != "null"]
        return {**documented, "anyOf": [*others, {"enum": [""]}, *nulls]}


EMPTY_MEANS_ABSENT = EmptyMeansAbsent()
