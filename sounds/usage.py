"""Which sound files Asterisk will play for the hotline, read from the configuration.

Four places make Asterisk play a file, and each is read here rather than listed by
hand, so a changed setting changes the list:

- the keypad menu (``[menu]`` and ``[menu.keypad.*]`` of hotline.toml), whose files
  the bridge names in ``STREAM FILE`` / ``GET DATA``;
- the satisfaction survey and the callback offer (``[tickets.prompts]``), also named by
  the bridge, and the digits it reads a callback number back with (``SAY DIGITS``:
  ``digits/0`` ... ``digits/9``);
- the dialplan (extensions.conf): ``Playback``, ``Background``, ``Read``, ...;
- app_queue (queues.conf), which announces a caller's position and expected wait.
  :func:`queue_sounds` follows ``say_position()`` in Asterisk 22's apps/app_queue.c:
  its sounds are played only when ``announce-frequency`` is set; position 1 hears
  ``queue-youarenext``, any other ``queue-thereare`` N ``queue-callswaiting`` (or,
  with ``announce-position = more``, ``queue-quantity1`` N ``queue-quantity2``); the
  wait (``announce-holdtime``, on unless set to no) is ``queue-holdtime`` N
  ``queue-minute(s)`` [N ``queue-seconds``]; and ``queue-thankyou`` ends it. A file
  that does not exist is skipped without a word in the log (``play_file`` checks
  ``ast_fileexists`` first), which is how a queue becomes silent. N is said with the
  number files of :mod:`sounds.numbers`. (``queue-less-than`` is no longer played by
  app_queue.)

Every :class:`Need` says why the file is needed, for ``hotline prompts list`` and
for the error when a file has neither a text nor a recording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hotline.asterisk.parse import Category, Config, parse_file
from hotline.settings import Settings
from sounds.numbers import ZH_NUMBER_WORDS

NUMBERS = "numbers"   # Need.name of "every number file of the language"

# app_queue's sound options and their default files (init_queue() in app_queue.c).
QUEUE_SOUND_DEFAULTS = {
    "queue-youarenext": "queue-youarenext",
    "queue-thereare": "queue-thereare",
    "queue-callswaiting": "queue-callswaiting",
    "queue-quantity1": "queue-quantity1",
    "queue-quantity2": "queue-quantity2",
    "queue-holdtime": "queue-holdtime",
    "queue-minute": "queue-minute",
    "queue-minutes": "queue-minutes",
    "queue-seconds": "queue-seconds",
    "queue-thankyou": "queue-thankyou",
    "queue-reporthold": "queue-reporthold",
    "queue-callerannounce": "",
}

# Dialplan applications that play files: name -> index of the argument holding
# the file list (files joined with &).
_PLAYING_APPS = {"playback": 0, "background": 0, "read": 1, "controlplayback": 0}
_NUMBER_APPS = {"saynumber", "saydigits"}
_APP = re.compile(r"^\s*(?P<app>\w+)\s*\((?P<args>.*)\)\s*$")


@dataclass(frozen=True)
class Need:
    name: str     # sound file without extension, under sounds/<language>/ ("hotline/welcome")
    origin: str   # why Asterisk plays it


def required_sounds(settings: Settings, conf_dir: Path) -> list[Need]:
    """Every sound file the keypad menu, the dialplan and app_queue play, each once
    (the first reason found), number files expanded for ``[sounds] language``."""
    needs = [*menu_sounds(settings), *ticket_sounds(settings),
             *dialplan_sounds(parse_file(conf_dir / "extensions.conf", config_dir=conf_dir)),
             *queue_sounds(parse_file(conf_dir / "queues.conf", config_dir=conf_dir))]
    seen: dict[str, Need] = {}
    for need in needs:
        if need.name == NUMBERS:
            for name in number_files(settings.sounds.language):
                seen.setdefault(name, Need(name, f"numbers said in {settings.sounds.language} ({need.origin})"))
        else:
            seen.setdefault(need.name, need)
    return list(seen.values())


def number_files(language: str) -> list[str]:
    """The files ``ast_say_number`` plays for ``language``."""
    if language.lower().startswith("zh"):
        return list(ZH_NUMBER_WORDS)
    raise ValueError(f"no model of Asterisk's number files for language {language!r} (sounds/numbers.py)")


def menu_sounds(settings: Settings) -> list[Need]:
    menu = settings.menu
    needs = [Need(getattr(menu, role), f"[menu] {role}") for role in ("greeting", "invalid", "no_input", "transfer")]
    needs += [Need(k.prompt, f"[menu.keypad.{k.name}] prompt") for k in menu.keypads.values()]
    return needs


def ticket_sounds(settings: Settings) -> list[Need]:
    needs = [Need(name, f"[tickets.prompts] {role}") for role, name in settings.tickets.prompts.items()]
    return needs + [Need(f"digits/{d}", "SAY DIGITS of a callback number (tickets/callback_offer.py)")
                    for d in range(10)]


def dialplan_sounds(extensions: Config) -> list[Need]:
    """Files named in extensions.conf's applications. A name built from a variable
    (``${...}``) cannot be known here and is left out."""
    needs = []
    for context in extensions.objects():
        for line in context.lines:
            if line.key not in ("exten", "same"):
                continue
            # exten => pattern,priority,App(args)   same => priority,App(args)
            fields = line.value.split(",", 2 if line.key == "exten" else 1)
            match = _APP.match(fields[-1]) if len(fields) == (3 if line.key == "exten" else 2) else None
            if not match:
                continue
            app, args = match["app"].lower(), _split_args(match["args"])
            where = f"extensions.conf [{context.name}] line {line.lineno}: {match['app']}"
            if app in _NUMBER_APPS:
                needs.append(Need(NUMBERS, where))
            index = _PLAYING_APPS.get(app)
            if index is None and app == "queue":
                index = 3     # Queue(name,options,URL,announceoverride,...)
            if index is not None and index < len(args):
                needs += [Need(name, where) for name in args[index].split("&") if name and "${" not in name]
    return needs


def queue_sounds(queues: Config) -> list[Need]:
    """What app_queue says to the callers (and agents) of every queue in queues.conf."""
    needs = []
    for queue in queues.objects():
        if queue.name == "general":
            continue
        needs += _one_queue(queue)
    return needs


def _one_queue(queue: Category) -> list[Need]:
    needs: list[Need] = []

    def add(why: str, *options: str) -> None:
        origin = f"queues.conf [{queue.name}] {why}"
        for option in options:
            name = NUMBERS if option == NUMBERS else queue.get(option, QUEUE_SOUND_DEFAULTS.get(option, option))
            if name:
                needs.append(Need(name, origin))

    frequency = _int(queue.get("announce-frequency"))
    position = (queue.get("announce-position") or "yes").lower()
    holdtime = (queue.get("announce-holdtime") or "yes").lower()
    if frequency > 0 and position not in _FALSE:
        why = f"announce-position = {position}"
        add(why, "queue-youarenext", "queue-thereare", NUMBERS, "queue-callswaiting", "queue-thankyou")
        if position == "more":
            add(why, "queue-quantity1", "queue-quantity2")
    if frequency > 0 and holdtime not in _FALSE:
        why = f"announce-holdtime = {holdtime}"
        add(why, "queue-holdtime", NUMBERS, "queue-minute", "queue-minutes", "queue-thankyou")
        if _int(queue.get("announce-round-seconds")):
            add(why, "queue-seconds")
    if _true(queue.get("reportholdtime")):
        add("reportholdtime = yes (to the agent)", "queue-reporthold", NUMBERS, "queue-minutes", "queue-seconds")
    if queue.get("announce"):
        add("announce (to the agent)", queue.get("announce"))
    add("queue-callerannounce", "queue-callerannounce")
    if _int(queue.get("periodic-announce-frequency")):
        files = re.split(r"[,|]", queue.get("periodic-announce") or "queue-periodic-announce")
        add("periodic-announce-frequency", *(f.strip() for f in files if f.strip()))
    return needs


_FALSE = {"no", "false", "n", "f", "0", "off"}


def _true(value: str | None) -> bool:
    return (value or "").lower() in {"yes", "true", "y", "t", "1", "on"}


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0       # atoi()


def _split_args(text: str) -> list[str]:
    """An application's arguments, split on top-level commas (as pbx.c does,
    ignoring commas inside ${...}, $[...] and quotes)."""
    args, depth, quote, current = [], 0, False, []
    for ch in text:
        if ch == '"':
            quote = not quote
        elif not quote and ch in "{[(":
            depth += 1
        elif not quote and ch in "}])":
            depth -= 1
        elif ch == "," and not quote and depth == 0:
            args.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    args.append("".join(current).strip())
    return args
