"""Supervision and service quality (issue 17): 好差评 ratings and their 差评 tickets here;
the 电子监察 deadline cards and the supervisor's dashboard add their own modules."""
