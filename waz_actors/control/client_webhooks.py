"""The webhook.* calls of the client library (a mixin of `Client`, kept apart so client.py
stays small). docs/protocol.md documents each command."""

from __future__ import annotations

from typing import Any


def _drop_none(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


class WebhookCalls:
    def _map(
        self, cmd: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        raise NotImplementedError  # Client's

    def webhook_create(
        self,
        url: str,
        events: list[str] | None = None,
        secret: str | None = None,
        tenant: str | None = None,
    ) -> dict[str, Any]:
        """{webhook_id, secret, url, events, tenant, ...}: the secret is shown only here."""
        args = _drop_none(url=url, events=events, secret=secret, tenant=tenant)
        return self._map("webhook.create", args)

    def webhook_list(self) -> list[dict[str, Any]]:
        return list(self._map("webhook.list")["webhooks"])

    def webhook_get(self, webhook_id: str) -> dict[str, Any]:
        return self._map("webhook.get", {"webhook_id": webhook_id})

    def webhook_delete(self, webhook_id: str) -> dict[str, Any]:
        return self._map("webhook.delete", {"webhook_id": webhook_id})

    def webhook_deliveries(
        self,
        webhook_id: str,
        status: str | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """{deliveries, next}: oldest first; `next` is the `after` of the next page."""
        args = _drop_none(webhook_id=webhook_id, status=status, after=after, limit=limit)
        return self._map("webhook.deliveries", args)

    def webhook_redeliver(
        self, webhook_id: str, event_ids: list[str] | None = None
    ) -> dict[str, Any]:
        return self._map(
            "webhook.redeliver", _drop_none(webhook_id=webhook_id, event_ids=event_ids)
        )

    def webhook_test(self, webhook_id: str) -> dict[str, Any]:
        return self._map("webhook.test", {"webhook_id": webhook_id})


__all__ = ["WebhookCalls"]
