"""Errors of the accounts domain."""

from __future__ import annotations

from server.errors import AuthenticationError, ConflictError, ValidationError


class InvalidCredentialsError(AuthenticationError):
    code = "invalid_credentials"
    message = "Wrong username or password"


class OtpInvalidError(AuthenticationError):
    code = "otp_invalid"
    message = "The verification code is wrong"


class OtpExpiredError(AuthenticationError):
    code = "otp_expired"
    message = "The verification code has expired; request a new one"


class OtpUsedError(AuthenticationError):
    code = "otp_used"
    message = "The verification code has already been used; request a new one"


class OtpTooManyAttemptsError(AuthenticationError):
    code = "otp_too_many_attempts"
    message = "Too many wrong codes; request a new one"


class InvalidMobileError(ValidationError):
    code = "invalid_mobile"
    message = "Enter a mainland China mobile number (11 digits, starting with 1)"

    def __init__(self) -> None:
        super().__init__(fields={"mobile": self.message})


class UserExistsError(ConflictError):
    code = "user_exists"
    message = "A user with that name already exists"
