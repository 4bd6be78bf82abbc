"""The rate limits that protect logins and SMS codes.

Wrong passwords and codes slow their *source*: each address may fail a few times per
window. An account's own failure count is higher (an attacker needs several addresses to
reach it), a successful login clears it, and it never holds back a browser that logged in
to that account before (the ``yk_device`` cookie, see ``service.device_mark``), so it
cannot be used to lock the owner out. A code itself dies after ``otp.MAX_ATTEMPTS`` wrong
tries; the next SMS starts afresh. A supervisor or admin can clear an account's hold
(``server.accounts.unlock``).

SMS codes cost money and reach real phones: a number gets one a minute and ten a day, an
address thirty an hour and a hundred a day, whichever ends first.
"""

from server.ratelimit import Limit

OTP_PER_MOBILE_MINUTE = Limit("otp-mobile-1m", 1, 60)
OTP_PER_MOBILE_DAY = Limit("otp-mobile-1d", 10, 86_400)
OTP_PER_IP_HOUR = Limit("otp-ip-1h", 30, 3_600)
OTP_PER_IP_DAY = Limit("otp-ip-1d", 100, 86_400)  # an address cannot send SMS all day
OTP_VERIFY_PER_IP = Limit("otp-verify-ip", 60, 900)  # every attempt
OTP_VERIFY_FAILURES_PER_IP = Limit("otp-verify-fail-ip", 10, 900)
OTP_VERIFY_FAILURES_PER_MOBILE = Limit("otp-verify-fail-mobile", 30, 900)
LOGIN_PER_IP = Limit("login-ip", 60, 900)  # every attempt
LOGIN_FAILURES_PER_IP = Limit("login-fail-ip", 10, 900)
LOGIN_FAILURES_PER_USER = Limit("login-fail-user", 30, 900)
