"""Agents: queue membership as Asterisk reports it. (Accounts, login/pause
over AMI and the console come with the agents issue, in these same rooms.)"""

from __future__ import annotations

from aiohttp import web

from agents.events import MembershipEvents
from hotline.core import Core


def setup(_app: web.Application, core: Core) -> None:
    MembershipEvents(core).subscribe()
