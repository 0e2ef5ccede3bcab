"""OpenAPI descriptions of the error responses each route can give."""

from __future__ import annotations

from litestar.openapi import ResponseSpec

from docora.bodies import ErrorBody

_DESCRIPTIONS = {
    400: "Malformed body or query (the message names the field and why)",
    401: "Missing or invalid bearer token",
    403: "Not allowed",
    404: "No such resource, or the repository cannot be read",
    409: "Conflict",
    413: "Request body larger than 1 MiB",
    422: "Well-formed but unacceptable value (URL, token, webhook target)",
    429: "Rate limited; see Retry-After",
    503: "Postgres unreachable",
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[code])
        for code in (*codes, 429)
    }
