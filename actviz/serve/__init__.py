"""Serving many visitors from one process: what they share, within bounds.

``stores`` (results shared by content, bounded in entries and bytes), ``jobs`` (the job queue,
the operator's limits, deadlines), ``trust`` (when the switch that skips the safety checks may
be shown), ``server`` (one server state per process and its memory budget).
"""
