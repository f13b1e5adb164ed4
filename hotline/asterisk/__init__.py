"""The Asterisk configuration of the hotline (config/asterisk/, its /etc/asterisk).

One job per module; import from the module you need:

- :mod:`hotline.asterisk.parse`: reading Asterisk ``.conf`` files (categories,
  templates, ``#include``), as Asterisk's own loader does;
- :mod:`hotline.asterisk.generate`: the files generated from the settings
  (``queues_departments.conf``, ``pjsip_extensions.conf``) and their staleness check
  (``hotline asterisk-config [--check]``);
- :mod:`hotline.asterisk.secrets`: the secrets outside the repository
  (``pjsip_auth.conf``, ``manager_secret.conf``; ``hotline asterisk-secrets``) and the
  AMI secret policy ``hotline serve`` enforces (weak secrets only in development mode);
- :mod:`hotline.asterisk.ami_rights`: the manager.conf class of every AMI action and
  event, from which the AMI user's rights are checked;
- :mod:`hotline.asterisk.modules`: which Asterisk module provides each application and
  function the hotline uses, and what each module requires (modules.conf);
- :mod:`hotline.asterisk.files`: atomic writes with a mode and an owner;
- :mod:`hotline.asterisk.errors`: :class:`AsteriskConfigError`, raised by the writers.
"""
