"""Supervision of the service (issue 17): deadline cards (电子监察), ratings, the dashboard.

Each part keeps its own modules in this package; this file only names it.
"""
