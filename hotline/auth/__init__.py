"""Who may use the HTTP side: identities, roles, API tokens, the audit log.

One authorisation layer for machines and people. Today a request is
identified by an API token (``Authorization: Bearer hl_...``); the agents'
console adds people's sessions as a second way to the same :class:`Identity`.
Every route declares the least role it needs (:func:`requires`) or that it is
public (:func:`public`); a route that declares neither is refused, so a new
route cannot be left open by forgetting. What was seen or changed is written
to the audit log by the handlers (:func:`hotline.auth.audit.record`).
"""
