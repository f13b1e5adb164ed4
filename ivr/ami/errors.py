"""Errors of the AMI connection, each naming what went wrong."""


class AmiError(Exception):
    """Base class for AMI failures."""


class AmiNotConnected(AmiError):
    """No logged-in AMI connection right now."""


class AmiConnectionLost(AmiError):
    """The socket closed before the action was answered."""


class AmiActionTimeout(AmiError):
    """Asterisk did not answer an action in time."""


class AmiActionFailed(AmiError):
    """Asterisk answered ``Response: Error``."""

    def __init__(self, action: str, message: str):
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message


class AmiLoginFailed(AmiError):
    """Asterisk refused the manager login."""


class AmiBadAction(AmiError):
    """An action that cannot be sent as it is: a header name or value contains a
    line break (CR or LF), which would end the header there and let the rest be read
    as further headers or a second action. Raised before anything is written."""
