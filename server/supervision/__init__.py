"""Supervision: the supervisor's dashboard, exports and live wall (and, from other
branches, 好差评 ratings and 电子监察 deadline cards)."""
