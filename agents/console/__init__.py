"""The agents' console: the page an agent works from (``/console``) and its one
WebSocket (``/ws/console``).

- :mod:`.masking`: callers' numbers as a person of a role may see them (pure);
- :mod:`.screen_pop`: what the screen-pop shows, from the call's timeline and
  records (pure);
- :mod:`.dispositions`: how an answered call ended (已解决 / 未解决 / 来电人不满意),
  checked (pure), and the ``call.disposed`` timeline row tickets follow;
- :mod:`.store`: its SQL (the menu's rows, the caller's history, dispositions);
- :mod:`.service`: the open consoles of this process, each sent its own agent's
  messages and the queue panel, and the screen-pops made for them;
- :mod:`.http`: the page, the WebSocket and the actions (queue login/logout,
  pause, wrap-up done, transfer, disposition, knowledge search), each audited.

The desk (:class:`agents.service.AgentDesk`) does the queue work; the console
only decides who may ask and shows what the desk publishes.
"""
