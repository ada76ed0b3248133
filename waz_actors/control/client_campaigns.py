"""The client library's campaign.* methods (a mixin of Client, kept apart for size)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

RECIPIENTS_PER_CALL = 1000


class CampaignCalls:
    def call(
        self, cmd: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        raise NotImplementedError  # Client's

    def campaign_create(
        self,
        name: str,
        instance_ids: Sequence[str],
        *,
        text: str | None = None,
        media: dict[str, Any] | None = None,
        recipients: Sequence[dict[str, Any]] | None = None,
        start_at: float | None = None,
        window: dict[str, str] | None = None,
        delay: dict[str, float] | None = None,
        check_numbers: bool | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """A draft campaign: {campaign_id, state, added, duplicates}. More than 1,000
        recipients are sent in further campaign.add_recipients calls (their counts summed)."""
        rows = list(recipients or [])
        args = {
            k: v
            for k, v in {
                "name": name,
                "instance_ids": list(instance_ids),
                "text": text,
                "media": media,
                "recipients": rows[:RECIPIENTS_PER_CALL] or None,
                "start_at": start_at,
                "window": window,
                "delay": delay,
                "check_numbers": check_numbers,
            }.items()
            if v is not None
        }
        made: dict[str, Any] = dict(self.call("campaign.create", args, timeout=timeout))
        for chunk in _chunks(rows[RECIPIENTS_PER_CALL:]):
            more = self.campaign_add_recipients(made["campaign_id"], chunk, timeout=timeout)
            made["added"] += more["added"]
            made["duplicates"] += more["duplicates"]
        return made

    def campaign_add_recipients(
        self, campaign_id: str, recipients: Sequence[dict[str, Any]], timeout: float | None = None
    ) -> dict[str, Any]:
        """Up to 1,000 recipients {to, vars?}: {campaign_id, added, duplicates}."""
        args = {"campaign_id": campaign_id, "recipients": list(recipients)}
        return dict(self.call("campaign.add_recipients", args, timeout=timeout))

    def campaign_start(self, campaign_id: str) -> dict[str, Any]:
        return dict(self.call("campaign.start", {"campaign_id": campaign_id}))

    def campaign_pause(self, campaign_id: str) -> dict[str, Any]:
        return dict(self.call("campaign.pause", {"campaign_id": campaign_id}))

    def campaign_resume(self, campaign_id: str) -> dict[str, Any]:
        return dict(self.call("campaign.resume", {"campaign_id": campaign_id}))

    def campaign_cancel(self, campaign_id: str) -> dict[str, Any]:
        return dict(self.call("campaign.cancel", {"campaign_id": campaign_id}))

    def campaign_get(self, campaign_id: str) -> dict[str, Any]:
        """{state, counts, eta, per_instance, ...}."""
        return dict(self.call("campaign.get", {"campaign_id": campaign_id}))

    def campaign_list(self, state: str | None = None) -> list[dict[str, Any]]:
        args = {"state": state} if state else None
        return list(self.call("campaign.list", args)["campaigns"])

    def campaign_recipients(
        self,
        campaign_id: str,
        status: str | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """One page: {recipients: [...], next}."""
        args: dict[str, Any] = {"campaign_id": campaign_id}
        for key, value in (("status", status), ("after", after), ("limit", limit)):
            if value is not None:
                args[key] = value
        return dict(self.call("campaign.recipients", args))

    def campaign_report(self, campaign_id: str, status: str | None = None) -> Iterator[Any]:
        """Every recipient, page by page."""
        after: int | None = None
        while True:
            page = self.campaign_recipients(campaign_id, status, after, 1000)
            yield from page["recipients"]
            if page.get("next") is None:
                return
            after = page["next"]


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), RECIPIENTS_PER_CALL):
        yield rows[i : i + RECIPIENTS_PER_CALL]


__all__ = ["RECIPIENTS_PER_CALL", "CampaignCalls"]
