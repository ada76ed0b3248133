"""Campaigns: one message to many recipients, durable, paced and spread over numbers.

template.py renders texts (pure); window.py says when sending is allowed (pure); feeder.py is
the logic of one running campaign (plain class, clock injected); actor.py the thin actor per
running campaign and the manager that starts them.
"""
