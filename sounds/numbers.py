"""How Asterisk says a number in Mandarin, and the files that takes.

app_queue says a caller's position and the expected wait with ``ast_say_number``;
for a channel whose language starts with ``zh`` that is ``ast_say_number_full_zh``
in Asterisk's main/say.c (unchanged from Asterisk 13 to 22). :func:`zh_number_files`
is that function written out in Python, so the files it streams are known exactly:
``digits/0`` to ``digits/9``, the tens ``digits/10`` ... ``digits/90``,
``digits/hundred``, ``digits/thousand``, ``digits/wan``, ``digits/yi`` and
``digits/minus`` (:data:`ZH_NUMBER_WORDS`, with what each one says).
"""

from __future__ import annotations

# File (under sounds/zh/) -> what it says. 2 is 二, as in 第二位; say.c has no 两.
ZH_NUMBER_WORDS: dict[str, str] = {
    **{f"digits/{n}": w for n, w in enumerate("零一二三四五六七八九")},
    **{f"digits/{10 * n}": ("" if n == 1 else w) + "十" for n, w in enumerate("零一二三四五六七八九") if n},
    "digits/hundred": "百",
    "digits/thousand": "千",
    "digits/wan": "万",
    "digits/yi": "亿",
    "digits/minus": "负",
}

_TOO_BIG = 1_000_000_000     # say.c gives up at 10 digits ("Number '%d' is too big for me")


def zh_number_files(num: int) -> list[str]:
    """The files ``ast_say_number_full_zh`` streams for ``num``, in order.

    Follows say.c line by line, its quirks included: 10-19 start with 十 (no 一),
    a skipped place is one 零 (105 → 一百零五), and the test that decides on 零
    compares an int with a size_t, so it is done here in unsigned arithmetic too."""
    if num == 0:
        return ["digits/0"]              # ast_say_digits_full(chan, 0, ...)
    files: list[str] = []
    playh = playt = playz = False
    last_length = 0
    while num or playh or playt or playz:
        if num < 0:
            files.append("digits/minus")
            num = -num
        elif playz:
            files.append("digits/0")
            last_length = 0
            playz = False
        elif playh:
            files.append("digits/hundred")
            playh = False
        elif playt:
            files.append("digits/thousand")
            playt = False
        elif num < 1000:
            length = len(str(num))
            if _zero_first(last_length, length):
                last_length = length
                playz = True
                continue
            if num < 10:
                files.append(f"digits/{num}")
                num = 0
            elif num < 100:
                last_length = length
                files.append(f"digits/{num // 10 * 10}")
                num %= 10
            else:
                files.append(f"digits/{num // 100}")
                playh = True
                last_length = length
                num -= num // 100 * 100
        elif num < 10000:
            files.append(f"digits/{num // 1000}")
            playt = True
            last_length = len(str(num))
            num -= num // 1000 * 1000
        elif num < 100_000_000:
            files += zh_number_files(num // 10000)
            last_length = len(str(num))
            num -= num // 10000 * 10000
            files.append("digits/wan")
        elif num < _TOO_BIG:
            files += zh_number_files(num // 100_000_000)
            last_length = len(str(num))
            num -= num // 100_000_000 * 100_000_000
            files.append("digits/yi")
        else:
            break                        # res = -1: nothing more is said
    return files


def _zero_first(last_length: int, length: int) -> bool:
    """say.c: ``last_length - strlen(buf) > 1 && last_length != 0``, where the
    subtraction is unsigned (size_t)."""
    return last_length != 0 and (last_length - length) % (1 << 64) > 1


def spoken(num: int) -> str:
    """What a caller hears for ``num`` (for the README and the tests)."""
    return "".join(ZH_NUMBER_WORDS[f] for f in zh_number_files(num))
