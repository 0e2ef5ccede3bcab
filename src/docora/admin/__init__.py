"""What operators do, shared by the operator API (api/admin.py) and the console (console/)."""
