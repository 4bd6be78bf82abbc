"""Booking's exception tree; the foundation's middleware maps each to status, code and a
localised message.

    YunkanError
    └── BookingError
        ├── MatterNotFound (404)          ├── SlotFullError (409)
        ├── AppointmentNotFound (404)     ├── AlreadyBookedError (409)
        ├── TicketNotFound (404)          ├── StaffBusyError (409): the chosen officer is taken
        ├── BookingBlockedError (403)     ├── PersonBusyError (409), BookingLimitError (409)
        │                                 ├── AppointmentStateError (409)
        ├── ManageLinkError (403)         │   ├── AppointmentStatusError: names the status
        │                                 │   └── NoShowTooEarly: names the start
        │                                 ├── IdempotencyConflict (422)
        │                                 ├── CodeTakenError (409): a matter's or window's code
        └── SlotRuleError (422, field "start"): past, too soon, beyond horizon, no such slot
"""

from __future__ import annotations

from server.errors import YunkanError

START_PAST = "This time is in the past"
START_TOO_SOON = "This time is too soon: book further ahead"
START_BEYOND_HORIZON = "This time is too far ahead: it is beyond the booking horizon"
START_NOT_A_SLOT = "There is no slot at this time"
YEAR_NOT_LOADED = "Booking for this year opens once its public holidays are published and loaded"
START_NAIVE = "Give the time with its UTC offset, like 2026-12-01T09:00:00+08:00"
STAFF_NOT_QUALIFIED = "This staff member is not qualified for this matter"
SITE_REQUIRED = "Give the site address for an inspection"
VIDEO_NOW_OFF = "This matter does not offer video now"
FOLLOW_UP_MATTER = "A follow-up booking must be for the case's own matter"
FOLLOW_UP_APPLICANT = "A follow-up booking must be for the case's own applicant"
REVIEWER_CANNOT_LEAD = "The reviewer of this case cannot also lead it"


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


class StaffBusyError(BookingError):
    """The officer named for an appointment already holds another one over that time."""

    status = 409
    code = "staff_busy"
    message = "This officer already has an appointment at this time"

    def __init__(self, staff_id: int) -> None:
        super().__init__(details={"staff_id": staff_id})


class PersonBusyError(BookingError):
    """The applicant already holds an appointment (of any matter) over this time."""

    status = 409
    code = "person_busy"
    message = "You already have another appointment at this time"


class BookingLimitError(BookingError):
    status = 409
    code = "booking_limit"
    message = "You already hold %(n)s open bookings of this matter, the most allowed"

    def __init__(self, limit: int) -> None:
        super().__init__(params={"n": limit}, details={"limit": limit})


class BookingBlockedError(BookingError):
    """Too many no-shows: the reason (count, window, end of the block) is in the message."""

    status = 403
    code = "booking_blocked"
    message = (
        "You missed %(count)s appointments in %(days)s days, so booking is closed to you "
        "until %(until)s"
    )

    def __init__(self, count: int, days: int, until: str) -> None:
        super().__init__(
            params={"count": count, "days": days, "until": until},
            details={"no_shows": count, "window_days": days, "until": until},
        )


class AlreadyQueuedError(BookingError):
    status = 409
    code = "already_queued"
    message = "You already hold a ticket for this matter"


class VideoNowClosedError(BookingError):
    """Outside the matter's video-now hours; names the next opening."""

    status = 409
    code = "video_now_closed"
    message = "Video now is closed at the moment; it opens at %(opens)s. You can book a time."

    def __init__(self, opens: str) -> None:
        super().__init__(params={"opens": opens}, details={"opens": opens})


class AlreadyBookedError(BookingError):
    status = 409
    code = "already_booked"
    message = "You already hold a booking for this slot"


class AppointmentStateError(BookingError):
    status = 409
    code = "appointment_state"
    message = "This appointment can no longer be changed"


class AppointmentStatusError(AppointmentStateError):
    """A move the appointment's status does not allow; the message names the status."""

    message = "Appointment %(id)s is %(status)s"

    def __init__(self, appointment_id: int, status: str, message: str | None = None) -> None:
        super().__init__(
            message,
            params={"id": appointment_id, "status": status},
            details={"appointment": appointment_id, "status": status},
        )


class NoShowTooEarly(AppointmentStateError):
    message = "Appointment %(id)s starts at %(start)s: it can be marked a no-show only after that"

    def __init__(self, appointment_id: int, start: str) -> None:
        super().__init__(
            params={"id": appointment_id, "start": start},
            details={"appointment": appointment_id, "start": start},
        )


JOINED_NOT_NO_SHOW = "Appointment %(id)s is %(status)s: the applicant joined, so it is no no-show"


class ManageLinkError(BookingError):
    status = 403
    code = "manage_link_invalid"
    message = "This link is not valid any more; use the newest link we sent you"


class IdempotencyConflict(BookingError):
    status = 422
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was already used for a different request"


class CodeTakenError(BookingError):
    """A matter's or window's ``code`` is unique (the database says so, not a lookup)."""

    status = 409
    code = "code_taken"
    message = "This code is already in use"

    def __init__(self) -> None:
        super().__init__(fields={"code": self.message})


class SlotRuleError(BookingError):
    """A requested start breaks a timing rule; carries the field error for ``start``."""

    status = 422
    code = "validation_failed"
    message = "Some fields are not valid"

    def __init__(self, msgid: str, field: str = "start") -> None:
        super().__init__(fields={field: msgid})
