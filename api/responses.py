"""The error answers every route documents in the OpenAPI document (one place, one wording).

422 is FastAPI's own `HTTPValidationError` (`detail`: list of loc/msg/type), added to every
route with parameters or a body; radflow's own 422s (bad filters) use the same shape.
"""

from __future__ import annotations

from typing import Any

from radflow.api.schemas import ErrorPublic

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorPublic, "description": "unknown order or item"}}
REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorPublic, "description": "refused by the order (recorded as an exception) or already resolved"}
}
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorPublic, "description": "request body over RADFLOW_API_MAX_BODY_BYTES (refused before it is read)"}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorPublic, "description": "Temporal unavailable: nothing was applied, retry (Retry-After)"}
}
