"""Delivery: webhook targets, payloads, signatures and the HTTP client."""
