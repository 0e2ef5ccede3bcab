"""The client REST API (Litestar + msgspec)."""
