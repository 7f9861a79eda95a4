"""One error shape for every endpoint: OpenAI's ``{"error": {"message", "type", "param", "code"}}``.

``APIError`` is raised by handlers; a ``GenlabError`` (bad input the library refused) becomes a 400 with its
one-line message, a ``BadArgument`` names its ``param``; FastAPI's validation errors name the first bad field.
Anything else is a bug: a 500 that says so without a traceback or any secret.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from genlab.errors import BadArgument, GenlabError

log = logging.getLogger("genlab.serve")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 408: "timeout_error", 409: "conflict_error",
         413: "invalid_request_error", 415: "invalid_request_error", 422: "invalid_request_error",
         429: "rate_limit_error",
         500: "server_error", 503: "server_error"}


SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["message", "type", "param", "code"], "properties": {
        "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": ["string", "null"]},
        "code": {"type": ["string", "null"]}}}}}
DOCUMENTED = {"400": "Bad request: a field is missing, of the wrong type or out of range",
              "401": "An API key is required", "404": "No such run or endpoint",
              "413": "The body or a file is too large",
              "429": "Too many requests wait: retry after Retry-After seconds"}


class APIError(Exception):
    """An answer other than success: HTTP ``status``, a one-line ``message``, the request field it is about."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.headers = status, message, param, code, headers


def body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"), "param": param,
                      "code": code}}


def response(err: APIError) -> JSONResponse:
    return JSONResponse(body(err.status, err.message, err.param, err.code), status_code=err.status,
                        headers=err.headers)


def install(app: FastAPI, hide: tuple[str, ...] = ()) -> None:
    """Every failure answered in the one shape; a message names a run by its name, not where the server keeps it
    (``hide``: the runs folder's paths)."""

    def plain(message: str) -> str:
        for folder in sorted({h.rstrip("/") for h in hide if h not in ("", ".")}, key=len, reverse=True):
            message = message.replace(folder + "/", "")
        return " ".join(message.split())

    @app.exception_handler(APIError)
    async def _api(request: Request, exc: APIError) -> JSONResponse:
        return response(exc)

    @app.exception_handler(BadArgument)
    async def _bad_argument(request: Request, exc: BadArgument) -> JSONResponse:
        return response(APIError(400, plain(str(exc)), param=exc.param, code="invalid_value"))

    @app.exception_handler(GenlabError)
    async def _genlab(request: Request, exc: GenlabError) -> JSONResponse:
        return response(APIError(400, plain(str(exc)), code="invalid_request"))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return response(validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status, path = exc.status_code, request.url.path
        methods = sorted(m.upper() for m in app.openapi().get("paths", {}).get(path, {})) if status == 404 else []
        if status == 404 and methods:  # the studio's files answer every other GET: say what the path takes
            status = 405
        message = {404: f"no such endpoint: {request.method} {path}",
                   405: f"{request.method} is not allowed on {path}" + (f"; use {', '.join(methods)}" if methods
                                                                          else "")}.get(status, str(exc.detail))
        return response(APIError(status, message, headers=getattr(exc, "headers", None)))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return response(APIError(500, "internal error; the server log says more", code="internal_error"))


def validation_error(errors: list[dict[str, Any]]) -> APIError:
    """FastAPI's list of problems -> one 400 naming the first bad field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "form")]
    param = ".".join(loc) or None
    message = first.get("msg", "invalid value")
    if first.get("type") == "json_invalid":
        return APIError(400, "the body is not valid JSON", code="invalid_json")
    if first.get("type") == "missing":
        return APIError(400, f"{param} is required", param=param, code="missing_field")
    if first.get("type") == "extra_forbidden":
        return APIError(400, f"{param} is not a field of this request", param=param, code="unknown_field")
    return APIError(400, f"{param}: {message}" if param else message, param=param, code="invalid_value")
