"""The spoken menu for one caller (the :class:`~ivr.menu.session.IntentListener`
the keypad menu hands over to first).

How it reaches the caller's audio: inside the caller's AsyncAGI session the menu
runs ``EXEC AudioSocket <uuid>,<host:port>``. Asterisk connects to our
AudioSocket server and streams the caller's audio; we send the prompts back on
the same socket, so the caller can talk over them (barge-in) and keys arrive as
DTMF frames. When the dialogue is over we send the hangup frame (``00 00 00``):
Asterisk leaves AudioSocket with ``200 result=0`` and the AGI session goes on
(routing with ``EXEC Queue``, or the keypad menu).

The dialogue (README.md, "The spoken menu", tells the same for operators):
greeting → the caller speaks → the intent router decides → route (with
"正在为您转接……"), play a short self-service answer, confirm
("您是要办理……业务吗？", yes/no by voice or key 1/2), re-prompt once, then the
keypad menu. "人工"/0 at any time: a person. A key other than 0 goes to the
keypad menu as if pressed there; # opens it. Anything wrong with speech (no
model, no connection, the recogniser failed, no prompt audio) ends in the
keypad menu, never in silence.

Every turn is a timeline row: ``voice.heard`` holds the transcript(s), the
partial results, the recogniser's confidence, the chosen intent, the router's
confidence and reason, the menu's reaction and the decision time.

The modules:

- :mod:`~ivr.menu.voice.dialogue`: one caller's conversation, what it ends with
  (:class:`VoiceOutcome`, :class:`Outcome`) and its reactions (:class:`Reaction`);
- :mod:`~ivr.menu.voice.listening`: playing a prompt and waiting for the answer
  (:class:`HeardKind`), dropping recognition results from before the prompt;
- :mod:`~ivr.menu.voice.service`: what every call shares (:class:`VoiceMenu`)
  and starting it all in ``hotline serve`` (:class:`VoiceService`).
"""

from ivr.menu.voice.dialogue import Outcome, Reaction, VoiceOutcome
from ivr.menu.voice.listening import HeardKind
from ivr.menu.voice.service import VoiceMenu, VoiceService

__all__ = ["HeardKind", "Outcome", "Reaction", "VoiceMenu", "VoiceOutcome", "VoiceService"]
