"""waz-actors: an actor-model supervisor daemon for many WhatsApp sessions."""

__version__ = "0.1.0"
