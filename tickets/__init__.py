"""Tickets: the cases nobody could resolve on the call, each linked to its call,
recording and voice-menu transcript; states and their timeline, deadlines on a
working-day calendar with timers in PostgreSQL, assignment, the 12345 outbox,
the ledger. See ``tickets/setup.py`` for the wiring and README, "Tickets"."""
