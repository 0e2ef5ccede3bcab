"""The git CLI: URL rules, a hardened environment, remote queries and mirrors."""
