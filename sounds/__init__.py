"""The sounds callers hear that Asterisk plays by itself: which files the keypad menu,
the dialplan and app_queue need (``usage``), what each says (``texts``, ``numbers``),
the synthesiser shared with the spoken menu (``synth``), the hold music (``music``) and
``hotline prompts build`` (``build``, ``commands``)."""
