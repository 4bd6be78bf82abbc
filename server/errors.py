"""The error tree every domain raises from, mapped to HTTP in one middleware.

::

    YunkanError                       500 internal_error
    ├── BadRequestError               400 bad_request
    │   ├── MalformedJsonError        400 malformed_json
    │   │   └── JsonTooDeepError      400 json_too_deep
    │   ├── MalformedFormError        400 malformed_form (multipart without boundary, …)
    │   ├── MethodNotAllowedError     405 method_not_allowed (allow=methods)
    │   └── ValidationError           422 validation_failed (fields={name: msgid})
    │       └── InvalidTextError      422 invalid_text (NUL or a lone surrogate)
    ├── AuthenticationError           401 unauthenticated
    ├── PermissionDeniedError         403 forbidden
    │   └── CsrfError                 403 csrf_failed
    ├── NotFoundError                 404 not_found
    ├── ConflictError                 409 conflict
    ├── PayloadTooLargeError          413 payload_too_large
    ├── RateLimitedError              429 rate_limited (retry_after seconds)
    └── ServiceUnavailableError       503 service_unavailable (retry_after seconds)
        ├── DatabaseUnavailableError  503 database_unavailable
        └── RedisUnavailableError     503 redis_unavailable

``message`` is an English msgid; the middleware translates it (and field messages) into
the request's language. Domain packages subclass these with their own ``code``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class YunkanError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    message: str = "Something went wrong on our side"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        fields: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        if message is not None:
            self.message = message
        self.details = dict(details or {})
        self.fields = dict(fields or {})
        self.params = dict(params or {})  # values for %(name)s placeholders in the msgid
        super().__init__(self.message % self.params if self.params else self.message)


class BadRequestError(YunkanError):
    status = 400
    code = "bad_request"
    message = "The request is not valid"


class MalformedJsonError(BadRequestError):
    code = "malformed_json"
    message = "The request body is not valid JSON"


class JsonTooDeepError(MalformedJsonError):
    code = "json_too_deep"
    message = "The request body is nested too deeply"


class MalformedFormError(BadRequestError):
    code = "malformed_form"
    message = "The form data could not be read"


class MethodNotAllowedError(BadRequestError):
    status = 405
    code = "method_not_allowed"
    message = "This method is not allowed here"

    def __init__(self, allow: set[str] | frozenset[str]) -> None:
        self.allow = sorted(allow)  # the ``Allow`` header RFC 9110 requires on a 405
        super().__init__()


class ValidationError(BadRequestError):
    status = 422
    code = "validation_failed"
    message = "Some fields are not valid"


class InvalidTextError(ValidationError):
    code = "invalid_text"
    message = "Some text contains characters that are not allowed"


class AuthenticationError(YunkanError):
    status = 401
    code = "unauthenticated"
    message = "Please log in first"


class PermissionDeniedError(YunkanError):
    status = 403
    code = "forbidden"
    message = "You are not allowed to do this"


class CsrfError(PermissionDeniedError):
    code = "csrf_failed"
    message = "The form has expired or is missing its security token; reload the page"


class NotFoundError(YunkanError):
    status = 404
    code = "not_found"
    message = "Not found"


class ConflictError(YunkanError):
    status = 409
    code = "conflict"
    message = "The request conflicts with the current state"


class PayloadTooLargeError(YunkanError):
    status = 413
    code = "payload_too_large"
    message = "The upload is too large"


class RateLimitedError(YunkanError):
    status = 429
    code = "rate_limited"
    message = "Too many attempts; try again in %(retry_after)s seconds"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(message, params={"retry_after": self.retry_after})


class ServiceUnavailableError(YunkanError):
    """A dependency (the database, Redis) cannot be reached: nothing was changed, and the
    client may simply try again after ``retry_after`` seconds."""

    status = 503
    code = "service_unavailable"
    message = "The service is briefly unavailable; try again in %(retry_after)s seconds"

    def __init__(self, retry_after: int = 5) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(params={"retry_after": self.retry_after})


class DatabaseUnavailableError(ServiceUnavailableError):
    code = "database_unavailable"


class RedisUnavailableError(ServiceUnavailableError):
    code = "redis_unavailable"
