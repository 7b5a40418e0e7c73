"""Durable storage: the card ledger, oncologists' feedback, suppression look-ups and JWT replay protection."""
