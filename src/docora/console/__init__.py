"""The operator console at /admin: server-rendered pages over docora.admin, forms that work
without JavaScript, and a little first-party JavaScript for live numbers and copy buttons."""
