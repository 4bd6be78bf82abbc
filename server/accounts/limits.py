"""The rate limits that protect logins and SMS codes."""

from server.ratelimit import Limit

OTP_PER_MOBILE_MINUTE = Limit("otp-mobile-1m", 1, 60)
OTP_PER_MOBILE_DAY = Limit("otp-mobile-1d", 10, 86_400)
OTP_PER_IP_HOUR = Limit("otp-ip-1h", 30, 3_600)
OTP_VERIFY_PER_MOBILE = Limit("otp-verify-mobile", 10, 900)
LOGIN_PER_USER = Limit("login-user", 10, 900)
LOGIN_PER_IP = Limit("login-ip", 60, 900)
