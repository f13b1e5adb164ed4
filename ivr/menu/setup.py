"""The voice menu: every caller's AsyncAGI session, spoken first when a
speech model is loaded, keypad otherwise.

Reads ``VOICE_LISTENER`` from the application when it was provided (tests and
tools hand in a spoken menu they built); otherwise starts the
:class:`~ivr.menu.voice.VoiceService` from the settings, which is None (keypad
only, reason logged) without a usable model.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from aiohttp import web

from hotline.core import Core
from ivr.menu.sessions import MenuSessions

VOICE_LISTENER: web.AppKey[Any] = web.AppKey("voice_listener", object)
MENU_SESSIONS = web.AppKey("menu_sessions", MenuSessions)


def setup(app: web.Application, core: Core) -> None:
    if core.ami is None:
        return  # a web-only process has no callers
    sessions = MenuSessions(core, app.get(VOICE_LISTENER))
    sessions.subscribe()
    app[MENU_SESSIONS] = sessions

    async def context(_app: web.Application) -> AsyncIterator[None]:
        voice = None
        if sessions.listener is None:
            from ivr.menu.voice import VoiceService

            voice = await VoiceService.start(core.settings, core.pool)
            sessions.listener = voice.menu if voice is not None else None
        try:
            yield
        finally:
            await sessions.stop()
            if voice is not None:
                await voice.close()

    app.cleanup_ctx.append(context)
