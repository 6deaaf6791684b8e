"""Consent: the visitor's decision, its signed token, the proof log and the enforcing middleware."""
