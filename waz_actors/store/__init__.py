"""Durable state in SQLite: instances, the outbox with its history, conflicts, events, tokens."""

from waz_actors.store.api import StoreAPI
from waz_actors.store.db import Store
from waz_actors.store.records import InstanceRecord, MessageRecord, TokenRecord
from waz_actors.store.schema import SchemaTooNew

__all__ = ["InstanceRecord", "MessageRecord", "SchemaTooNew", "Store", "StoreAPI", "TokenRecord"]
