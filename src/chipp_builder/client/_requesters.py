"""The two transports: the same send-and-retry loop over httpx.Client and httpx.AsyncClient; everything
else (what to send, when to retry, how to parse) comes from _core and _retry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from chipp_builder.client._config import ClientConfig
from chipp_builder.client._core import USER_AGENT, Call, E, decode, timeout_for, transport_error
from chipp_builder.client._retry import RetryPolicy
from chipp_builder.client.page_cache import PageCache


class _Base:
    def __init__(self, config: ClientConfig, policy: RetryPolicy, headers: dict[str, str] | None,
                 page_cache: PageCache | None) -> None:
        self.config = config
        self.policy = policy
        self.page_cache = page_cache
        self.headers = {
            "Authorization": f"Bearer {config.api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        }

    def _build(self, http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
        # Absolute URLs, so a caller-supplied httpx client needs no base_url of its own.
        return http.build_request(
            call.method,
            self.config.app_url + call.path,
            params=call.params or None,
            json=call.body,
            headers={**self.headers, **call.headers},
            timeout=timeout_for(call, http.timeout),
        )

    def _decode(self, call: Call[E], request: httpx.Request, response: httpx.Response,
                kept: tuple[str, bytes] | None) -> E:
        if self.page_cache is not None:
            kept_body = self.page_cache.answer(request, response, kept)
            if kept_body is not None:  # a 304: the page as it was kept
                return call.envelope.model_validate_json(kept_body)
        return decode(call, response)


class SyncRequester(_Base):
    """Sends calls over an httpx.Client, retrying as the policy says and sleeping with `sleep`."""

    def __init__(
        self,
        http: httpx.Client,
        config: ClientConfig,
        policy: RetryPolicy,
        sleep: Callable[[float], None],
        headers: dict[str, str] | None = None,
        page_cache: PageCache | None = None,
    ) -> None:
        super().__init__(config, policy, headers, page_cache)
        self.http = http
        self.sleep = sleep

    def send(self, call: Call[E]) -> E:
        """Send a call (retrying when allowed) and return its parsed envelope, or raise its error."""
        attempt = 0
        while True:
            request = self._build(self.http, call)
            kept = self.page_cache.prepare(request) if self.page_cache is not None else None
            try:
                response = self.http.send(request)
            except httpx.HTTPError as exc:
                delay = self.policy.after_error(call.retry_safe, exc, attempt)
                if delay is None:
                    raise transport_error(exc, call) from exc
            else:
                delay = self.policy.after_response(call.retry_safe, response, attempt)
                if delay is None:
                    return self._decode(call, request, response, kept)
                response.close()
            self.sleep(delay)
            attempt += 1


class AsyncRequester(_Base):
    """Sends calls over an httpx.AsyncClient, retrying as the policy says and sleeping with `sleep`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: ClientConfig,
        policy: RetryPolicy,
        sleep: Callable[[float], Awaitable[None]],
        headers: dict[str, str] | None = None,
        page_cache: PageCache | None = None,
    ) -> None:
        super().__init__(config, policy, headers, page_cache)
        self.http = http
        self.sleep = sleep

    async def send(self, call: Call[E]) -> E:
        """Send a call (retrying when allowed) and return its parsed envelope, or raise its error."""
        attempt = 0
        while True:
            request = self._build(self.http, call)
            kept = self.page_cache.prepare(request) if self.page_cache is not None else None
            try:
                response = await self.http.send(request)
            except httpx.HTTPError as exc:
                delay = self.policy.after_error(call.retry_safe, exc, attempt)
                if delay is None:
                    raise transport_error(exc, call) from exc
            else:
                delay = self.policy.after_response(call.retry_safe, response, attempt)
                if delay is None:
                    return self._decode(call, request, response, kept)
                await response.aclose()
            await self.sleep(delay)
            attempt += 1
