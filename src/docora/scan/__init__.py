"""Scanning a commit: the tree, ignore rules, hashing, and snapshot transforms."""
