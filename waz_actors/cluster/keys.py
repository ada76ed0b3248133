"""Claim keys (cluster/claims.py), importable without psycopg: the campaign code names its
keys with these whether or not the daemon runs in a cluster."""

from __future__ import annotations

CAMPAIGN = "campaign:"
WEBHOOK = "webhook:"


def campaign_key(campaign_id: str) -> str:
    return CAMPAIGN + campaign_id


def webhook_key(webhook_id: str) -> str:
    return WEBHOOK + webhook_id


__all__ = ["CAMPAIGN", "WEBHOOK", "campaign_key", "webhook_key"]
