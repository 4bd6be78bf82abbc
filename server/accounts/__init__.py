"""Accounts: staff with passwords, applicants with SMS codes, sessions and tokens."""
