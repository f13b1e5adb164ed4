"""Asterisk AudioSocket: the TCP server the dialplan streams each caller's
audio to, the frame codec, and the per-call session the voice menu owns.

    server = AudioSocketServer(settings, pool); await server.start()
    session = server.session(uuid, call_id=linkedid, grammar=[...])
    async for event in session:      # Partial / Final / StreamFailed / Dtmf / Ended
        ...
"""

from asr.audiosocket.events import Dtmf, Ended, SessionEvent
from asr.audiosocket.framing import Frame, FrameDecoder, Kind, ProtocolError
from asr.audiosocket.server import AudioSocketServer
from asr.audiosocket.session import CallSession

__all__ = ["AudioSocketServer", "CallSession", "Dtmf", "Ended", "Frame", "FrameDecoder", "Kind",
           "ProtocolError", "SessionEvent"]
