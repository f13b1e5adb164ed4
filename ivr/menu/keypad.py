"""The keypad menu's decisions: key pressed (or none) → what happens next. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from hotline.settings import MenuSettings


@dataclass(frozen=True)
class MenuPosition:
    menu: str = "main"
    failures: int = 0  # invalid or missing inputs so far


@dataclass(frozen=True)
class Route:
    department: str
    reason: str  # "key" | "operator" | "gave_up" | "speech" | "prompt_failed"


@dataclass(frozen=True)
class OpenMenu:
    position: MenuPosition


@dataclass(frozen=True)
class Retry:
    position: MenuPosition
    reason: str  # "invalid" | "no_input"


Decision = Route | OpenMenu | Retry


def decide(menu: MenuSettings, position: MenuPosition, key: str) -> Decision:
    """``key`` is what the caller pressed ("" for nothing before the timeout)."""
    if key == menu.operator_digit:
        return Route(menu.fallback_department, "operator")
    target = menu.keypads[position.menu].options.get(key) if key else None
    if target is None:
        failures = position.failures + 1
        if failures >= menu.max_attempts:
            return Route(menu.fallback_department, "gave_up")
        return Retry(MenuPosition(position.menu, failures), "invalid" if key else "no_input")
    if target.startswith("@"):
        return OpenMenu(MenuPosition(target[1:], position.failures))
    return Route(target, "key")
