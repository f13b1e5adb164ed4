"""Who may use the HTTP side: identities, roles, API tokens, the audit log.

One authorisation layer for machines and people. A request is identified by
an API token (``Authorization: Bearer hl_...``, :mod:`.tokens`) or by a
person's session cookie (:mod:`.sessions`, made by :mod:`.login` after the
password and the lockout are checked); both give the same :class:`Identity`.
Session requests that change something also carry a CSRF token
(:mod:`.middleware`).
Every route declares the least role it needs (:func:`requires`) or that it is
public (:func:`public`); a route that declares neither is refused, so a new
route cannot be left open by forgetting. What was seen or changed is written
to the audit log by the handlers (:func:`hotline.auth.audit.record`).
"""
