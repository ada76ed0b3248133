"""Outbound network access on behalf of clients: media fetches now, webhooks later."""
