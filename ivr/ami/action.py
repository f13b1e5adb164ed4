"""AMI actions whose completion follows what Asterisk 22 really sends.

panoramisk 1.4 guesses whether an action answers with a list from the response
text: anything whose Message starts with "added" and ends with "to queue" is
taken for a list, so ``QueueAdd`` ("Added interface to queue") and ``AGI``
("Added AGI command to queue") wait forever for list items that never come.
Asterisk marks real lists explicitly (``EventList: start`` ... an event with
``EventList: Complete``), so that is the only signal used here.
"""

from __future__ import annotations

from panoramisk.actions import Action


class ListAwareAction(Action):
    @property
    def multi(self) -> bool:
        if self.as_list is not None:
            return bool(self.as_list)
        first = self.responses[0]
        return str(first.get("EventList", "")).lower() == "start"

    @property
    def completed(self) -> bool:
        if not self.multi:
            return True
        last = self.responses[-1]
        return len(self.responses) > 1 and str(last.get("EventList", "")).lower() == "complete"
