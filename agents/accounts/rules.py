"""What a valid account is, checked against the settings. Pure: no I/O.

The department of the extension gives the default queues: the department's
own queue at penalty 0, then the fallback queue (``general_queue``) at
penalty 1 as overflow (app_queue offers a caller to lower penalties first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hotline.auth.roles import Role
from hotline.settings import Settings

LOGIN = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MAX_NAME = 64
MAX_PENALTY = 100
OVERFLOW_PENALTY = 1


class AccountError(ValueError):
    """A request about an account that cannot be done; ``zh`` says why on the pages."""

    def __init__(self, message: str, zh: str):
        super().__init__(message)
        self.zh = zh


@dataclass(frozen=True)
class QueueSeat:
    queue: str
    penalty: int


@dataclass(frozen=True)
class Draft:
    """A new account, checked (see :func:`draft`)."""
    login: str
    name: str
    extension: str | None
    role: Role
    queues: tuple[QueueSeat, ...]


def normalise_login(login: str) -> str:
    return login.strip().lower()


def check_login(login: str) -> str:
    login = normalise_login(login)
    if not LOGIN.match(login):
        raise AccountError(f"login {login!r} must be 2-32 of a-z 0-9 . _ - starting with a letter or digit",
                           "用户名须为 2 至 32 位小写字母、数字或 . _ -，并以字母或数字开头")
    return login


def check_extension(settings: Settings, extension: str | None, role: Role) -> str | None:
    extension = (extension or "").strip() or None
    if extension is None:
        if role is not Role.ADMIN:
            raise AccountError(f"the {role.value} role needs an extension", "坐席和班长必须填写分机号")
        return None
    if settings.department_of_extension(extension) is None:
        known = sorted(e for d in settings.departments for e in d.extensions)
        raise AccountError(f"extension {extension} is not one of the departments' ({known[0]}-{known[-1]})",
                           f"分机号 {extension} 不在配置的分机中（{known[0]}–{known[-1]}）")
    return extension


def default_queues(settings: Settings, extension: str | None) -> tuple[QueueSeat, ...]:
    """The extension's department first, the fallback queue as overflow."""
    if extension is None:
        return ()
    department = settings.department_of_extension(extension)
    if department is None:
        return ()
    seats = [QueueSeat(department.queue, 0)]
    if department.queue != settings.fallback_queue:
        seats.append(QueueSeat(settings.fallback_queue, OVERFLOW_PENALTY))
    return tuple(seats)


def parse_queues(text: str) -> tuple[QueueSeat, ...]:
    """``"social_security:0, general_queue:1"`` (or one per line); a queue
    without ``:penalty`` gets penalty 0."""
    seats = []
    for part in re.split(r"[,\s，]+", text.strip()):
        if not part:
            continue
        queue, sep, penalty = part.partition(":")
        if sep and not (penalty.isascii() and penalty.isdecimal()):
            raise AccountError(f"penalty of {queue!r} must be a whole number", f"队列 {queue} 的优先级须为整数")
        seats.append(QueueSeat(queue, int(penalty) if sep else 0))
    return tuple(seats)


def check_queues(settings: Settings, seats: tuple[QueueSeat, ...]) -> tuple[QueueSeat, ...]:
    known = {d.queue for d in settings.departments}
    seen = set()
    for seat in seats:
        if seat.queue not in known:
            raise AccountError(f"no queue {seat.queue!r} in the settings", f"配置中没有队列 {seat.queue}")
        if seat.queue in seen:
            raise AccountError(f"queue {seat.queue!r} given twice", f"队列 {seat.queue} 重复")
        if not 0 <= seat.penalty <= MAX_PENALTY:
            raise AccountError(f"penalty must be 0-{MAX_PENALTY}", f"优先级须在 0 到 {MAX_PENALTY} 之间")
        seen.add(seat.queue)
    return tuple(sorted(seats, key=lambda s: (s.penalty, s.queue)))


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise AccountError(f"name must be 1-{MAX_NAME} printable characters", f"姓名须为 1 至 {MAX_NAME} 个字符")
    return name


def draft(settings: Settings, login: str, name: str, extension: str | None, role: Role,
          queues: tuple[QueueSeat, ...] | None = None) -> Draft:
    """A checked new account; ``queues`` None: the extension's defaults."""
    extension = check_extension(settings, extension, role)
    seats = default_queues(settings, extension) if queues is None else queues
    return Draft(check_login(login), check_name(name), extension, role, check_queues(settings, seats))
