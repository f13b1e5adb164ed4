"""The supervisors' report: calls offered, answered and abandoned, waiting
times and the service level, what callers asked the voice menu about, the
questions nobody could place, tickets and their deadlines, the 12345 share
and satisfaction, for a period and a department. The SQL is
:mod:`reports.store`; the page and JSON are :mod:`reports.http`; ``hotline
report`` is :mod:`reports.commands`."""
