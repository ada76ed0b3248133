"""Actors: the plain Instance logic, its thin actor, and the supervisor."""
