"""Booking's exception tree; the foundation's middleware maps each to status, code and a
localised message.

    YunkanError
    └── BookingError
        ├── MatterNotFound (404)          ├── SlotFullError (409)
        ├── AppointmentNotFound (404)     ├── AlreadyBookedError (409)
        ├── TicketNotFound (404)          ├── AppointmentStateError (409)
        ├── ManageLinkError (403)         ├── IdempotencyConflict (422)
        └── SlotRuleError (422, field "start"): past, too soon, beyond horizon, no such slot
"""

from __future__ import annotations

from server.errors import YunkanError

START_PAST = "This time is in the past"
START_TOO_SOON = "This time is too soon: book further ahead"
START_BEYOND_HORIZON = "This time is too far ahead: it is beyond the booking horizon"
START_NOT_A_SLOT = "There is no slot at this time"
START_NAIVE = "Give the time with its UTC offset, like 2026-12-01T09:00:00+08:00"
STAFF_NOT_QUALIFIED = "This staff member is not qualified for this matter"
SITE_REQUIRED = "Give the site address for an inspection"
VIDEO_NOW_OFF = "This matter does not offer video now"


class BookingError(YunkanError):
    status = 400
    code = "booking_error"
    message = "The booking could not be made"


class MatterNotFound(BookingError):
    status = 404
    code = "matter_not_found"
    message = "No such matter"


class AppointmentNotFound(BookingError):
    status = 404
    code = "appointment_not_found"
    message = "No such appointment"


class TicketNotFound(BookingError):
    status = 404
    code = "ticket_not_found"
    message = "No such queue ticket"


class SlotFullError(BookingError):
    status = 409
    code = "slot_full"
    message = "This slot is fully booked"


class AlreadyBookedError(BookingError):
    status = 409
    code = "already_booked"
    message = "You already hold a booking for this slot"


class AppointmentStateError(BookingError):
    status = 409
    code = "appointment_state"
    message = "This appointment can no longer be changed"


class ManageLinkError(BookingError):
    status = 403
    code = "manage_link_invalid"
    message = "This link is not valid any more; use the newest link we sent you"


class IdempotencyConflict(BookingError):
    status = 422
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used for a different request"


class SlotRuleError(BookingError):
    """A requested start breaks a timing rule; carries the field error for ``start``."""

    status = 422
    code = "validation_error"
    message = "Some fields are not valid"

    def __init__(self, msgid: str, field: str = "start") -> None:
        super().__init__(fields={field: msgid})
