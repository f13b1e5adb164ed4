"""What each sound says, from the settings (one place for each fact).

- The keypad menu's sounds from ``[menu.texts]``; a keypad menu's prompt is made of
  its options (:func:`keypad_prompt`), so a department renamed or a key moved in
  hotline.toml changes what the caller hears, with nothing typed twice.
- app_queue's and the dialplan's sounds from ``[sounds.texts]``, by file name.
- The number words of the language from :mod:`sounds.numbers`.
"""

from __future__ import annotations

from hotline.settings import KeypadMenu, Settings
from sounds.numbers import ZH_NUMBER_WORDS

# How a key is said in a prompt ("请按一", "请按星号键").
KEY_WORDS = {**{str(n): w for n, w in enumerate("零一二三四五六七八九")}, "*": "星号键", "#": "井号键"}
_KEY_ORDER = "1234567890*#"


def sound_texts(settings: Settings) -> dict[str, str]:
    """Sound file name -> text, for every sound the settings can say."""
    menu = settings.menu
    texts = dict(settings.sounds.texts)
    if settings.sounds.language.lower().startswith("zh"):
        texts.update(ZH_NUMBER_WORDS)
    for role in ("greeting", "invalid", "no_input", "transfer"):      # [menu] role = file, [menu.texts] role = text
        texts[getattr(menu, role)] = _fill(menu.texts[role], settings)
    for keypad in menu.keypads.values():
        texts[keypad.prompt] = keypad_prompt(settings, keypad)
    return texts


def keypad_prompt(settings: Settings, keypad: KeypadMenu) -> str:
    """The menu read out: ``choose``, then each key in keypad order (1-9, 0, *, #)
    with its department's name or the title of the menu it opens, the operator key last."""
    menu = settings.menu
    lines = [_fill(menu.texts["choose"], settings)]
    for key in sorted(keypad.options, key=_KEY_ORDER.index):
        if key == menu.operator_digit:
            continue
        target = keypad.options[key]
        name = menu.keypads[target[1:]].title if target.startswith("@") else settings.department(target).name
        lines.append(_fill(menu.texts["option"], settings, name=name, key=KEY_WORDS[key]))
    lines.append(_fill(menu.texts["operator"], settings, key=KEY_WORDS[menu.operator_digit]))
    return "".join(lines)


def _fill(template: str, settings: Settings, **values: str) -> str:
    return template.format(service=settings.service.name, **values)
