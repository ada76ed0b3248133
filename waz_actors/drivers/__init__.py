"""Drivers: how an instance actor reaches WhatsApp (real or simulated)."""
