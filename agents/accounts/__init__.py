"""People's accounts: who logs in to the web pages, with which role, at which
extension, serving which queues (with a penalty each).

``rules`` checks a new or changed account against the settings (pure),
``store`` is its SQL, ``service`` the changes every caller makes the same way
(audited, sessions ended where needed, never the last admin removed),
``commands`` the ``hotline agents`` CLI, ``http`` the admins' pages. Logins and
sessions are the auth layer's (:mod:`hotline.auth`); an account is one of its
identities (``account:<id>:<login>``), as an API token is.
"""
