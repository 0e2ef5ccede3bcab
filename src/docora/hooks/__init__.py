"""Push webhooks from git hosts (SPEC section 8): verify as each provider signs, read which
repository and branch moved, wake their syncs."""
