"""What the REST API (api/) and the console (console/) both stand on: the per-process
context, error responses, rate limits and per-request observability. Neither front end
imports the other; docora.asgi composes them."""
