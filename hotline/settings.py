"""Settings: read once from ``config/hotline.toml`` plus environment overrides.

Everything the service needs to know (departments, queues, extensions, the keypad
menu, how to reach Asterisk and PostgreSQL) comes from here, so the dialplan
generator, the bridge and the tests read the same facts.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
import zoneinfo
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config" / "hotline.toml"

# app_queue treats every [general] section of queues.conf as its global settings.
RESERVED_QUEUE_NAMES = frozenset({"general"})

# [carrier] contact: a host name, an IPv4 address or a bracketed IPv6 one, and a port.
CONTACT_PATTERN = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?")


class SettingsError(ValueError):
    """The configuration is missing something or contradicts itself."""


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    queue: str
    extensions: tuple[str, ...]


@dataclass(frozen=True)
class KeypadMenu:
    name: str
    prompt: str
    options: Mapping[str, str]  # digit -> department code or "@menu"
    title: str = ""             # what another menu's prompt calls this one ("其他业务")


@dataclass(frozen=True)
class MenuSettings:
    greeting: str
    invalid: str
    no_input: str
    transfer: str
    digit_timeout_ms: int
    max_attempts: int
    operator_digit: str
    fallback_department: str
    keypads: Mapping[str, KeypadMenu]
    # What the keypad menu's sound files say ([menu.texts]; `hotline prompts build`).
    texts: Mapping[str, str] = field(default_factory=dict)


# [menu.texts]: the greeting, retry and transfer sounds, and the pieces a keypad
# menu's prompt is made of (sounds.texts.keypad_prompt).
MENU_TEXTS = ("greeting", "choose", "option", "operator", "invalid", "no_input", "transfer")


@dataclass(frozen=True)
class SoundSettings:
    """The sounds Asterisk plays itself ([sounds]): `hotline prompts build` speaks
    them into Asterisk's sounds tree for ``language``."""

    language: str                # the callers' endpoints' language (pjsip.conf language = zh)
    texts: Mapping[str, str]     # sound file name -> what it says (app_queue's, the dialplan's)


VOICE_PROMPTS = ("greeting", "reprompt", "confirm", "confirm_again", "transfer", "operator", "followup",
                 "goodbye", "keypad")


@dataclass(frozen=True)
class VoiceSettings:
    """The spoken menu (``[voice]``). It runs when a speech model is loaded
    (``[asr] model_path``) and ``enabled`` is true; otherwise the keypad menu."""

    enabled: bool
    # How Asterisk reaches our AudioSocket server (host:port as seen from Asterisk);
    # empty: the server's own [asr] audiosocket_host and bound port (one host).
    audiosocket_address: str
    connect_timeout: float      # Asterisk must connect within this, else keypad menu
    answer_timeout: float       # seconds of waiting for an answer after a prompt ends
    answer_overrun: float       # a caller still talking then gets this long to finish
    listen_grammar: str         # "free" (whole vocabulary) or "knowledge" (the menu's terms)
    max_answers: int            # self-service answers per call before the goodbye
    prompt_dir: Path            # recorded prompts <name>.wav (8 kHz mono); else synthesised
    tts_command: str            # espeak-ng, for prompts without a recording ("" disables)
    tts_voice: str
    tts_speed: int
    prompts: Mapping[str, str]  # name -> text ({department} is filled in)


@dataclass(frozen=True)
class AsrSettings:
    # Folder of an unpacked Vosk model. Empty: speech recognition is off and the
    # menu uses the keypad only. Never downloaded at run time.
    model_path: str = ""
    # Optional sha256sum file (paths relative to the model folder) checked at start-up;
    # a bare file name is one of the lists shipped in asr/engine/checksums.
    model_checksums: str = ""
    sample_rate: int = 8000            # AudioSocket kind 0x10 is 8 kHz signed linear
    workers: int = 0                   # decoding threads (vosk releases the GIL); 0: one per core
    max_streams: int = 40              # concurrent recognisers; more calls get keys only
    spare_recognizers: int = 8         # idle recognisers kept warm for the next calls
    partial_interval: float = 0.2      # seconds of audio between partial results
    words: bool = True                 # word timings and confidences in final results
    # Vosk/Kaldi endpointing, written into the model's conf/model.conf overlay.
    # None keeps the model's own value.
    no_speech_timeout: float | None = 5.0         # rule1: only silence for this long -> empty final
    endpoint_silence: float | None = 0.5          # rule2: trailing silence after a confident utterance
    endpoint_silence_unsure: float | None = 1.0   # rule3: ... after a less confident one
    endpoint_silence_max: float | None = 2.0      # rule4: ... after anything
    max_utterance: float | None = 20.0            # rule5: an utterance never runs longer
    # Decoder search width (speed against accuracy); None keeps the model's value.
    beam: float | None = None
    max_active: int | None = None
    # Decoding this many seconds behind real time: the stream is failed as
    # overloaded, so the caller goes to the keypad instead of waiting.
    max_lag: float = 3.0
    # AudioSocket server (dialplan: AudioSocket(${AS_UUID},host:port)).
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int = 9092
    first_frame_timeout: float = 5.0   # a connection must send its UUID frame within this
    # Connections from one address still without their UUID frame after a
    # quarter of a second; more are closed. A UUID no call registered is closed at once.
    max_pending_per_address: int = 16
    # Audio arriving this many seconds ahead of real time (counted from the
    # connection's first frame) fails the stream as a flood: keypad menu.
    max_audio_ahead: float = 1.0
    max_frame_payload: int = 4096      # larger length fields are treated as garbage

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, base: Path | None = None) -> "AsrSettings":
        """Build from the raw ``[asr]`` table; unknown keys and wrong types raise
        :class:`SettingsError` naming the key. Relative paths are taken from
        ``base`` (the settings file's folder)."""
        data = _known_only(cls, "asr", data)
        values: dict[str, Any] = {}
        for name, value in data.items():
            values[name] = _coerce_asr(name, value, getattr(cls, name))
        if base is not None and values.get("model_path") and not Path(values["model_path"]).is_absolute():
            values["model_path"] = str(base / values["model_path"])
        if values.get("model_checksums"):
            # A bare file name names a list shipped with the engine (asr/engine/checksums,
            # resolved when the model is loaded); a path is taken from the settings' folder.
            sums = Path(values["model_checksums"])
            if sums.name != values["model_checksums"] and not sums.is_absolute() and base is not None:
                values["model_checksums"] = str(base / sums)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`SettingsError` when a value cannot work."""
        if self.sample_rate not in (8000, 16000):
            raise SettingsError("[asr] sample_rate must be 8000 or 16000")
        if self.workers < 0:
            raise SettingsError("[asr] workers must be 0 (one per core) or more")
        if self.max_streams < 1:
            raise SettingsError("[asr] max_streams must be at least 1")
        if self.spare_recognizers < 0:
            raise SettingsError("[asr] spare_recognizers must be 0 or more")
        if not 0.02 <= self.partial_interval <= 5:
            raise SettingsError("[asr] partial_interval must be between 0.02 and 5 seconds")
        if not 0 < self.audiosocket_port < 65536:
            raise SettingsError("[asr] audiosocket_port must be a TCP port")
        for name in ("no_speech_timeout", "endpoint_silence", "endpoint_silence_unsure",
                     "endpoint_silence_max", "max_utterance", "beam"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise SettingsError(f"[asr] {name} must be positive")
        if self.max_frame_payload < 320:
            raise SettingsError("[asr] max_frame_payload must be at least 320 bytes")
        if self.max_pending_per_address < 1:
            raise SettingsError("[asr] max_pending_per_address must be at least 1")
        if self.max_audio_ahead <= 0:
            raise SettingsError("[asr] max_audio_ahead must be positive (seconds)")

    @property
    def enabled(self) -> bool:
        """True when a model is configured."""
        return bool(self.model_path)

    @property
    def worker_count(self) -> int:
        """Decoding threads to start: ``workers``, or one per CPU core when 0."""
        return self.workers or max(1, os.cpu_count() or 1)

    @property
    def frame_bytes(self) -> int:
        """Bytes in 20 ms of 16-bit mono audio at the configured rate."""
        return self.sample_rate * 2 // 50


def _coerce_asr(name: str, value: Any, default: Any) -> Any:
    if value is None:
        return None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise SettingsError(f"[asr] {name} must be true or false")
        return value
    if isinstance(default, int) or name in ("max_active",):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(f"[asr] {name} must be an integer")
        return value
    if isinstance(default, float) or default is None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(f"[asr] {name} must be a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise SettingsError(f"[asr] {name} must be a string")
        return value
    return value


@dataclass(frozen=True)
class AmiSettings:
    host: str
    port: int
    username: str
    secret: str
    action_timeout: float
    ping_interval: float
    ping_timeout: float
    reconnect_min: float
    reconnect_max: float
    heartbeat_variable: str


@dataclass(frozen=True)
class DatabaseSettings:
    url: str
    pool_min: int              # the features' own queries (Core.pool)
    pool_max: int
    api_pool_max: int          # the HTTP API's connections (Core.api_pool), with statement_timeout
    writer_pool_max: int       # the call writer's own connections
    statement_timeout: float   # seconds; on the API's connections (0: none)
    connect_timeout: float     # seconds to open a connection or wait for a pooled one


@dataclass(frozen=True)
class CallSettings:
    flush_interval: float
    flush_max_rows: int
    # Rows kept in memory while PostgreSQL cannot take them; past this, new
    # changes go to an append-only file in spill_dir, read back in order.
    max_backlog: int
    spill_dir: str
    retry_min: float           # first back-off after a failed write, doubling to retry_max
    retry_max: float


@dataclass(frozen=True)
class RecordingSettings:
    asterisk_dir: str
    local_dir: str
    settle_seconds: float
    missing_retries: int


@dataclass(frozen=True)
class CarrierSettings:
    """The SIP trunk that brings the public number's calls (pjsip.conf endpoint
    ``carrier``); generated into pjsip_carrier.conf by ``hotline asterisk-config``."""

    # Source addresses of the carrier's SIP signalling: IP addresses or CIDR subnets.
    # A request from one of them that no phone's user name claims is the carrier's.
    match: tuple[str, ...] = ("192.0.2.10",)
    # Where Asterisk sends its OPTIONS pings (and outgoing calls): host or host:port.
    contact: str = "192.0.2.10:5060"


@dataclass(frozen=True)
class ReconcileSettings:
    """What Asterisk writes down itself, read after every start and AMI login
    (and every ``interval`` seconds) to catch up with calls the bridge did not
    see (``[reconcile]``; README, "Calls while the bridge was down"). An empty
    path leaves that source out."""

    queue_log: str = "/var/log/asterisk/queue_log"
    cdr_csv: str = "/var/log/asterisk/cdr-csv/Master.csv"
    interval: float = 300.0           # seconds between runs besides start-up and logins (0: none)
    # Lines younger than this wait for the next run: their AMI events may still be on the way.
    settle_seconds: float = 5.0
    # A recording of a call nobody knows of, written to this recently, may belong to a
    # call still going on: not swept yet.
    recording_quiet_seconds: float = 60.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "ReconcileSettings":
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise SettingsError(f"[reconcile] has unknown setting(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = getattr(cls, name)
            if isinstance(default, str) and not isinstance(value, str):
                raise SettingsError(f"[reconcile] {name} must be a string (a path, or empty)")
            if isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise SettingsError(f"[reconcile] {name} must be a number of seconds, 0 or more")
                value = float(value)
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class ServiceSettings:
    name: str
    public_number: str
    log_format: str
    http_host: str
    http_port: int
    # Explicit development mode ([service] development = true or HOTLINE_DEVELOPMENT=1):
    # the only way `hotline serve` and `hotline asterisk-secrets` accept a weak or
    # published AMI secret (hotline.asterisk.secrets). Never set it in production.
    development: bool = False


def _known_only(cls: type, section: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The raw ``[section]`` table as a dict; a key ``cls`` has no field for raises."""
    data = dict(data or {})
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise SettingsError(f"[{section}] has unknown setting(s): {', '.join(unknown)}")
    return data


def _known_zone(name: str) -> bool:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class WebSettings:
    """People's sessions and logins (``[web]``); every field has a default, so the
    section may be left out."""

    session_max_age: float = 43200.0      # seconds a session lives at most (12 h: a shift and margin)
    session_idle_timeout: float = 1800.0  # seconds without a request before it ends
    # "auto": the cookie is Secure when the request came over HTTPS; true behind a
    # TLS-terminating proxy (which aiohttp sees as plain HTTP); false never.
    cookie_secure: str | bool = "auto"
    lockout_failures: int = 5             # failed logins for one login within lockout_window
    lockout_address_failures: int = 20    # failed logins from one address within lockout_window
    lockout_window: float = 900.0         # seconds; a lockout ends when its failures are older
    argon2_time_cost: int = 3             # argon2id parameters; hashes made with others are
    argon2_memory_cost: int = 65536       # rehashed at the next login (KiB)
    argon2_parallelism: int = 4
    password_min_length: int = 10
    time_zone: str = "Asia/Shanghai"      # how the pages show times (stored in UTC)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "WebSettings":
        data = _known_only(cls, "web", data)
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = getattr(cls, name)
            if name == "cookie_secure":
                if value != "auto" and not isinstance(value, bool):
                    raise SettingsError('[web] cookie_secure must be "auto", true or false')
            elif name == "time_zone":
                if not isinstance(value, str) or not _known_zone(value):
                    raise SettingsError(f"[web] time_zone {value!r} is not a known time zone (e.g. Asia/Shanghai)")
            elif isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise SettingsError(f"[web] {name} must be a positive number of seconds")
                value = float(value)
            elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"[web] {name} must be a whole number, at least 1")
            values[name] = value
        settings = cls(**values)
        if settings.argon2_memory_cost < 8 * settings.argon2_parallelism:
            raise SettingsError("[web] argon2_memory_cost must be at least 8 KiB per lane (argon2_parallelism)")
        return settings


@dataclass(frozen=True)
class AgentSettings:
    """The agents' queue membership and console states (agents/)."""

    # What an agent may give as the reason of a pause (QueuePause Reason, 小休 on the console).
    pause_reasons: tuple[str, ...] = ("午休", "培训", "整理工单", "会议", "临时离开")
    # Seconds the console's own wrap-up (整理中) after a call lasts at most before it ends
    # by itself; queues.conf wrapuptime is Asterisk's separate gap before the next call.
    wrapup_max: float = 120.0
    # Least seconds between two queue panel messages (callers waiting, agents free/busy).
    panel_interval: float = 0.5


@dataclass(frozen=True)
class TicketSettings:
    """Tickets (``[tickets]``, tickets/): deadlines, their timers, callbacks for
    abandoned calls and the 12345 outbox."""

    timezone: str = "Asia/Shanghai"     # the hotline's local time: days, the ledger's times
    # Holidays and make-up working days (调休) by year; relative to the settings file.
    calendar: str = "calendar.toml"
    verify_hours: float = 2.0           # contact (verify with) the caller within this, clock hours
    answer_hours: float = 24.0          # a solution within this, clock hours
    knowledge_working_days: int = 5     # a knowledge-base answer for a gap within this
    # Reminders to the assignee this long before each deadline (0: none).
    verify_remind_minutes: float = 30.0
    answer_remind_minutes: float = 240.0
    knowledge_remind_minutes: float = 1440.0
    abandoned_callback_seconds: float = 30.0   # a caller who waited longer and hung up is called back
    timer_poll: float = 0.5             # seconds between looks at the timers table (at most)
    reconcile_hours: float = 24.0       # at start, calls this recent that should have a ticket get one
    dispatch_url: str = ""              # the 12345 platform's endpoint; empty: dispatches wait
    dispatch_timeout: float = 10.0      # seconds for one POST
    dispatch_retry_min: float = 1.0     # back-off after a failed POST, doubling up to retry_max
    dispatch_retry_max: float = 300.0
    dispatch_goal: float = 0.10         # at most this share of tickets dispatched (reported)
    # The queue's callback offer: a caller waiting this long hears "press 1 to be called
    # back" (app_queue's periodic announcement, generated into queues_departments.conf;
    # 0: no periodic offer). A queue nobody is logged in to is offered it at once.
    callback_offer_seconds: float = 120.0
    # Callbacks (AMI Originate to the caller through the carrier, then the agent's phone
    # or the queue): the dial string ({number}: the digits to call), how long it rings,
    # how many attempts and how far apart.
    callback_dial: str = "PJSIP/{number}@carrier"
    callback_ring_seconds: float = 30.0
    callback_attempts: int = 3
    callback_spacing_minutes: float = 10.0
    # How long past the ring time Asterisk may take to report an Originate before the
    # attempt counts as lost (the process that sent it died) and is tried again.
    callback_response_timeout: float = 30.0
    # The satisfaction callback (回访) after a ticket is answered: this long after (0: none).
    follow_up_delay_minutes: float = 60.0
    survey_attempts: int = 2            # the survey question is asked at most this often
    # Sound files (under sounds/<language>/) of the survey and the callback offer; what
    # they say is in [sounds.texts] under the same names ([tickets.prompts]).
    prompts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReportSettings:
    """The supervisors' report (``[reports]``, reports/)."""

    service_level_seconds: int = 60     # "answered within": the service level's threshold
    escalation_goal: float = 0.02       # at most this share of calls ends as a ticket (reported)
    top: int = 10                       # hot topics and unanswered questions listed

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "ReportSettings":
        data = _known_only(cls, "reports", data)
        for name, value in data.items():
            whole = isinstance(getattr(cls, name), int)
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or value <= 0:
                raise SettingsError(f"[reports] {name} must be a {'whole ' if whole else ''}number more than 0")
        if float(data.get("escalation_goal", cls.escalation_goal)) > 1:
            raise SettingsError("[reports] escalation_goal is a share of calls (0.02 is 2%)")
        return cls(**{name: (value if isinstance(getattr(cls, name), int) else float(value))
                      for name, value in data.items()})


@dataclass(frozen=True)
class ConsoleSettings:
    """The agents' console (``[console]``, agents/console/); every field has a
    default, so the section may be left out."""

    # The least role that sees callers' numbers in full; below it the console shows
    # them masked (138****5678), masked by the server before anything is sent.
    full_number_role: str = "supervisor"
    mask_keep_start: int = 3              # digits kept at the start of a masked number
    mask_keep_end: int = 4                # ... and at its end
    history_days: int = 90                # the caller's previous calls shown in the screen-pop
    history_limit: int = 10
    knowledge_items: int = 5              # knowledge items for the call's intent in the screen-pop
    search_limit: int = 20                # knowledge-base search results
    # Seconds between two checks that an open console's session is still live (an
    # account disabled, a session ended or expired closes the console's WebSocket).
    session_check_interval: float = 15.0

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "ConsoleSettings":
        data = _known_only(cls, "console", data)
        for name, value in data.items():
            default = getattr(cls, name)
            if name == "full_number_role":
                if value not in ("agent", "supervisor", "admin"):
                    raise SettingsError('[console] full_number_role must be "agent", "supervisor" or "admin"')
            elif isinstance(default, float):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                    raise SettingsError(f"[console] {name} must be a positive number of seconds")
                data[name] = float(value)
            elif isinstance(value, bool) or not isinstance(value, int) or value < (0 if name.startswith("mask") else 1):
                raise SettingsError(f"[console] {name} must be a whole number"
                                    + (" (0 or more)" if name.startswith("mask") else ", at least 1"))
        return cls(**data)


@dataclass(frozen=True)
class Settings:
    service: ServiceSettings
    database: DatabaseSettings
    ami: AmiSettings
    calls: CallSettings
    recordings: RecordingSettings
    menu: MenuSettings
    departments: tuple[Department, ...]
    asr: AsrSettings
    voice: VoiceSettings
    sounds: SoundSettings
    # Extensions whose phones may use the supervisor codes (*1 listen, *2 whisper,
    # *3 barge); each is one of the departments' extensions. Generated into
    # pjsip_extensions.conf as set_var = HOTLINE_ROLE=supervisor on those endpoints.
    supervisors: tuple[str, ...] = ()
    carrier: CarrierSettings = CarrierSettings()
    agents: AgentSettings = field(default_factory=AgentSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    web: WebSettings = field(default_factory=WebSettings)
    tickets: TicketSettings = field(default_factory=TicketSettings)
    reports: ReportSettings = field(default_factory=ReportSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    source: Path | None = field(default=None, compare=False)

    def department(self, code: str) -> Department:
        for dept in self.departments:
            if dept.code == code:
                return dept
        raise KeyError(code)

    def department_for_queue(self, queue: str) -> Department | None:
        for dept in self.departments:
            if dept.queue == queue:
                return dept
        return None

    def department_of_extension(self, extension: str) -> Department | None:
        for dept in self.departments:
            if extension in dept.extensions:
                return dept
        return None

    @property
    def asterisk_dir(self) -> Path:
        """config/asterisk beside the settings file, wherever that was read from."""
        return (self.source.parent if self.source else DEFAULT_CONFIG.parent) / "asterisk"

    @property
    def fallback_queue(self) -> str:
        return self.department(self.menu.fallback_department).queue

    def with_overrides(self, **sections: Any) -> "Settings":
        """Copy with some sections' fields replaced, e.g. ``ami={"port": 1}``."""
        changed = {name: replace(getattr(self, name), **values) for name, values in sections.items()}
        return replace(self, **changed)


def boolean(value: str) -> bool:
    """An on/off environment variable: 1/true/yes/on, or 0/false/no/off/empty."""
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(value)


_ENV_OVERRIDES: tuple[tuple[str, str, str, type], ...] = (
    ("HOTLINE_DATABASE_URL", "database", "url", str),
    ("HOTLINE_AMI_HOST", "ami", "host", str),
    ("HOTLINE_AMI_PORT", "ami", "port", int),
    ("HOTLINE_AMI_USERNAME", "ami", "username", str),
    ("HOTLINE_AMI_SECRET", "ami", "secret", str),
    ("HOTLINE_LOG_FORMAT", "service", "log_format", str),
    ("HOTLINE_HTTP_HOST", "service", "http_host", str),
    ("HOTLINE_HTTP_PORT", "service", "http_port", int),
    ("HOTLINE_RECORDINGS_DIR", "recordings", "local_dir", str),
    ("HOTLINE_ASR_MODEL_PATH", "asr", "model_path", str),
    ("HOTLINE_ASR_MODEL_CHECKSUMS", "asr", "model_checksums", str),   # "" for a model without a list
    ("HOTLINE_AUDIOSOCKET_HOST", "asr", "audiosocket_host", str),
    ("HOTLINE_AUDIOSOCKET_ADDRESS", "voice", "audiosocket_address", str),
    ("HOTLINE_DEVELOPMENT", "service", "development", boolean),
    ("HOTLINE_QUEUE_LOG", "reconcile", "queue_log", str),
    ("HOTLINE_CDR_CSV", "reconcile", "cdr_csv", str),
)


def read_toml(path: Path, error: type[ValueError], what: str) -> dict[str, Any]:
    """A TOML file's tables; ``error`` naming the file when it is missing or malformed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{what} not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: {exc}") from exc


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (``HOTLINE_CONFIG`` or the repository default) and apply
    environment overrides. Raises :class:`SettingsError` naming what is wrong."""
    env = os.environ if env is None else env
    path = Path(path or env.get("HOTLINE_CONFIG") or DEFAULT_CONFIG)
    raw = read_toml(path, SettingsError, "settings file")
    if "HOTLINE_DATABASE_URL" not in env and env.get("DATABASE_URL"):
        env = {**env, "HOTLINE_DATABASE_URL": env["DATABASE_URL"]}
    for var, section, key, kind in _ENV_OVERRIDES:
        if var in env:
            try:
                raw.setdefault(section, {})[key] = kind(env[var])
            except ValueError as exc:
                raise SettingsError(f"{var}={env[var]!r} is not a valid {kind.__name__}") from exc
    secret_file = env.get("HOTLINE_AMI_SECRET_FILE")
    if secret_file and not env.get("HOTLINE_AMI_SECRET"):
        # The secret `hotline asterisk-secrets` generated when none was given.
        try:
            raw.setdefault("ami", {})["secret"] = Path(secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"HOTLINE_AMI_SECRET_FILE={secret_file}: {exc.strerror}") from exc
    settings = _build(raw, path.parent)
    settings = replace(settings, source=path)
    validate(settings)
    return settings


def _section(raw: Mapping[str, Any], name: str, cls: type) -> Any:
    values = raw.get(name)
    if not isinstance(values, dict):
        raise SettingsError(f"missing section [{name}]")
    wanted = [f for f in cls.__dataclass_fields__]
    # Fields with a default (ServiceSettings.development) may be left out.
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [f for f in required if f not in values]
    if missing:
        raise SettingsError(f"[{name}] is missing {', '.join(missing)}")
    return cls(**{f: values[f] for f in wanted if f in values})


_VOICE_DEFAULTS: dict[str, Any] = {
    "enabled": True, "audiosocket_address": "127.0.0.1:9092", "connect_timeout": 3.0,
    "answer_timeout": 8.0, "answer_overrun": 5.0,
    "listen_grammar": "free", "max_answers": 3, "prompt_dir": "prompts",
    "tts_command": "espeak-ng", "tts_voice": "cmn-latn-pinyin", "tts_speed": 165,
}


def _voice(raw: Mapping[str, Any] | None, config_dir: Path) -> VoiceSettings:
    values = dict(raw or {})
    prompts = dict(values.pop("prompts", None) or {})
    unknown = sorted(set(values) - set(_VOICE_DEFAULTS))
    if unknown:
        raise SettingsError(f"[voice] has unknown setting(s): {', '.join(unknown)}")
    merged = {**_VOICE_DEFAULTS, **values}
    for name, default in _VOICE_DEFAULTS.items():
        value = merged[name]
        kind = type(default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            merged[name] = value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SettingsError(f"[voice] {name} must be a {kind.__name__}")
    missing = [name for name in VOICE_PROMPTS if not str(prompts.get(name, "")).strip()]
    if missing:
        raise SettingsError(f"[voice.prompts] is missing {', '.join(missing)}")
    prompt_dir = Path(merged["prompt_dir"])
    merged["prompt_dir"] = prompt_dir if prompt_dir.is_absolute() else config_dir / prompt_dir
    return VoiceSettings(**merged, prompts=prompts)


def _sounds(raw: Mapping[str, Any] | None) -> SoundSettings:
    values = dict(raw or {})
    texts = values.pop("texts", None) or {}
    unknown = sorted(set(values) - {"language"})
    if unknown:
        raise SettingsError(f"[sounds] has unknown setting(s): {', '.join(unknown)}")
    language = values.get("language", "zh")
    if not isinstance(language, str) or not language.replace("_", "").isalnum():
        raise SettingsError("[sounds] language must be a language code such as zh")
    bad = sorted(k for k, v in texts.items() if not isinstance(v, str) or not v.strip())
    if bad:
        raise SettingsError(f"[sounds.texts] {', '.join(bad)} must be non-empty text")
    return SoundSettings(language=language, texts=dict(texts))


def _build(raw: Mapping[str, Any], config_dir: Path) -> Settings:
    menu_raw = dict(raw.get("menu") or {})
    keypads_raw = menu_raw.pop("keypad", None) or {}
    keypads = {
        name: KeypadMenu(name=name, prompt=body.get("prompt", ""), options=dict(body.get("options", {})),
                         title=body.get("title", ""))
        for name, body in keypads_raw.items()
    }
    menu = _section({"menu": {**menu_raw, "keypads": keypads}}, "menu", MenuSettings)
    departments = []
    for index, item in enumerate(raw.get("departments") or []):
        try:
            departments.append(
                Department(
                    code=item["code"],
                    name=item["name"],
                    queue=item.get("queue", item["code"]),
                    extensions=tuple(str(e) for e in item.get("extensions", [])),
                )
            )
        except KeyError as exc:
            raise SettingsError(f"departments[{index}] is missing {exc.args[0]}") from exc
    return Settings(
        service=_section(raw, "service", ServiceSettings),
        database=_section(raw, "database", DatabaseSettings),
        ami=_section(raw, "ami", AmiSettings),
        calls=_section(raw, "calls", CallSettings),
        recordings=_section(raw, "recordings", RecordingSettings),
        menu=menu,
        departments=tuple(departments),
        asr=AsrSettings.from_mapping(raw.get("asr"), base=config_dir),
        voice=_voice(raw.get("voice"), config_dir),
        sounds=_sounds(raw.get("sounds")),
        supervisors=_supervisors(raw.get("supervisors", [])),
        carrier=_carrier(raw.get("carrier")),
        agents=_agents(raw.get("agents")),
        reconcile=ReconcileSettings.from_mapping(raw.get("reconcile")),
        web=WebSettings.from_mapping(raw.get("web")),
        tickets=_tickets(raw.get("tickets"), config_dir),
        reports=ReportSettings.from_mapping(raw.get("reports")),
        console=ConsoleSettings.from_mapping(raw.get("console")),
    )


def _carrier(raw: Any) -> CarrierSettings:
    values = dict(raw or {})
    unknown = sorted(set(values) - {"match", "contact"})
    if unknown:
        raise SettingsError(f"[carrier] has unknown setting(s): {', '.join(unknown)}")
    match = values.get("match", list(CarrierSettings.match))
    if not isinstance(match, list) or not match or not all(isinstance(m, str) for m in match):
        raise SettingsError('[carrier] match must be a list of addresses, e.g. ["203.0.113.7", "198.51.100.0/24"]')
    contact = values.get("contact", CarrierSettings.contact)
    if not isinstance(contact, str):
        raise SettingsError("[carrier] contact must be a string (host or host:port)")
    return CarrierSettings(match=tuple(m.strip() for m in match), contact=contact.strip())


def _agents(raw: Any) -> AgentSettings:
    values = dict(raw or {})
    defaults = AgentSettings()
    unknown = sorted(set(values) - set(AgentSettings.__dataclass_fields__))
    if unknown:
        raise SettingsError(f"[agents] has unknown setting(s): {', '.join(unknown)}")
    reasons = values.get("pause_reasons", list(defaults.pause_reasons))
    if (not isinstance(reasons, list) or not reasons
            or not all(isinstance(r, str) and r.strip() == r and r for r in reasons)):
        raise SettingsError('[agents] pause_reasons must be a list of reasons, e.g. ["午休", "会议"]')
    if len(set(reasons)) != len(reasons):
        raise SettingsError("[agents] pause_reasons lists a reason twice")
    numbers = {}
    for name in ("wrapup_max", "panel_interval"):
        value = values.get(name, getattr(defaults, name))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SettingsError(f"[agents] {name} must be a number of seconds")
        numbers[name] = float(value)
    if numbers["wrapup_max"] <= 0:
        raise SettingsError("[agents] wrapup_max must be more than 0 seconds")
    return AgentSettings(pause_reasons=tuple(reasons), **numbers)


# [tickets.prompts]: the roles of the survey's and the callback offer's sound files.
TICKET_PROMPTS = ("survey_question", "survey_invalid", "survey_thanks", "survey_sorry", "follow_up_intro",
                  "callback_nobody", "callback_number", "callback_confirm", "callback_enter",
                  "callback_invalid", "callback_registered", "callback_declined")
# What a callback may dial: digits only (a dial string cannot be smuggled in).
CALLBACK_NUMBER = re.compile(r"[0-9]{5,20}")


def _tickets(raw: Any, config_dir: Path) -> TicketSettings:
    values = dict(raw or {})
    prompts = values.pop("prompts", None) or {}
    defaults = TicketSettings()
    unknown = sorted(set(values) - set(TicketSettings.__dataclass_fields__))
    if unknown:
        raise SettingsError(f"[tickets] has unknown setting(s): {', '.join(unknown)}")
    for name, value in values.items():
        default = getattr(defaults, name)
        if isinstance(default, str):
            if not isinstance(value, str):
                raise SettingsError(f"[tickets] {name} must be a string")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise SettingsError(f"[tickets] {name} must be a number, 0 or more")
        elif isinstance(default, int) and not isinstance(value, int):
            raise SettingsError(f"[tickets] {name} must be a whole number")
        elif isinstance(default, float):
            values[name] = float(value)
    calendar = Path(values.get("calendar", defaults.calendar))
    values["calendar"] = str(calendar if calendar.is_absolute() else config_dir / calendar)
    missing = [role for role in TICKET_PROMPTS if not str(prompts.get(role, "")).strip()]
    if missing:
        raise SettingsError(f"[tickets.prompts] is missing {', '.join(missing)}")
    unknown = sorted(set(prompts) - set(TICKET_PROMPTS))
    if unknown:
        raise SettingsError(f"[tickets.prompts] has unknown prompt(s): {', '.join(unknown)}")
    settings = TicketSettings(**values, prompts=dict(prompts))
    if "{number}" not in settings.callback_dial or not settings.callback_dial.startswith("PJSIP/"):
        raise SettingsError('[tickets] callback_dial must be a PJSIP dial string with {number}, '
                            'e.g. "PJSIP/{number}@carrier"')
    if settings.callback_attempts < 1 or settings.survey_attempts < 1 or settings.callback_ring_seconds <= 0:
        raise SettingsError("[tickets] callback_attempts, survey_attempts and callback_ring_seconds "
                            "must be more than 0")
    if settings.verify_hours <= 0 or settings.answer_hours <= 0 or settings.knowledge_working_days < 1:
        raise SettingsError("[tickets] verify_hours, answer_hours and knowledge_working_days must be more than 0")
    if settings.timer_poll <= 0 or settings.dispatch_timeout <= 0 or settings.dispatch_retry_min <= 0:
        raise SettingsError("[tickets] timer_poll, dispatch_timeout and dispatch_retry_min must be more than 0")
    try:
        zoneinfo.ZoneInfo(settings.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(f"[tickets] timezone {settings.timezone!r} is not a known time zone") from exc
    if settings.dispatch_url and not settings.dispatch_url.startswith(("http://", "https://")):
        raise SettingsError("[tickets] dispatch_url must be an http:// or https:// address")
    return settings


def _supervisors(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
        raise SettingsError('supervisors must be a list of extensions as strings, e.g. ["8025"]')
    return tuple(raw)


def validate(settings: Settings) -> None:
    """Check the facts that must agree with each other; raise SettingsError."""
    if not settings.departments:
        raise SettingsError("no departments configured")
    codes = [d.code for d in settings.departments]
    queues = [d.queue for d in settings.departments]
    for label, values in (("department code", codes), ("queue", queues)):
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise SettingsError(f"duplicate {label}: {', '.join(dupes)}")
    for dept in settings.departments:
        if dept.queue in RESERVED_QUEUE_NAMES:
            raise SettingsError(
                f"department {dept.code!r}: queue name {dept.queue!r} is reserved by app_queue; "
                f"set queue = \"{dept.queue}_queue\""
            )
    owners: dict[str, str] = {}
    for dept in settings.departments:
        for ext in dept.extensions:
            if ext in owners:
                raise SettingsError(f"extension {ext} belongs to both {owners[ext]} and {dept.code}")
            owners[ext] = dept.code
    menu = settings.menu
    if menu.fallback_department not in codes:
        raise SettingsError(f"menu.fallback_department {menu.fallback_department!r} is not a department")
    if "main" not in menu.keypads:
        raise SettingsError("menu.keypad.main is missing")
    for keypad in menu.keypads.values():
        for digit, target in keypad.options.items():
            if len(digit) != 1 or digit not in "0123456789*#":
                raise SettingsError(f"menu.keypad.{keypad.name}: {digit!r} is not a keypad key")
            if target.startswith("@"):
                if target[1:] not in menu.keypads:
                    raise SettingsError(f"menu.keypad.{keypad.name}: {digit} opens unknown menu {target}")
            elif target not in codes:
                raise SettingsError(f"menu.keypad.{keypad.name}: {digit} names unknown department {target!r}")
    missing = [name for name in MENU_TEXTS if not str(menu.texts.get(name, "")).strip()]
    if missing:
        raise SettingsError(f"[menu.texts] is missing {', '.join(missing)}")
    for keypad in menu.keypads.values():
        opened = [t[1:] for t in keypad.options.values() if t.startswith("@")]
        untitled = [m for m in opened if not menu.keypads[m].title]
        if untitled:
            raise SettingsError(f"menu.keypad.{keypad.name} opens menu {untitled[0]!r}, which has no title "
                                f"to announce it by")
    voice = settings.voice
    if voice.listen_grammar not in ("free", "knowledge"):
        raise SettingsError("voice.listen_grammar must be 'free' or 'knowledge'")
    host, sep, port = voice.audiosocket_address.rpartition(":")
    if voice.audiosocket_address and (not sep or not host or not port.isdigit()):
        raise SettingsError(f"voice.audiosocket_address {voice.audiosocket_address!r} is not host:port")
    if settings.service.log_format not in ("console", "json"):
        raise SettingsError("service.log_format must be 'console' or 'json'")
    if not isinstance(settings.service.development, bool):
        raise SettingsError("service.development must be true or false")
    dupes = sorted({e for e in settings.supervisors if settings.supervisors.count(e) > 1})
    if dupes:
        raise SettingsError(f"supervisors lists {', '.join(dupes)} twice")
    strangers = [e for e in settings.supervisors if e not in owners]
    if strangers:
        raise SettingsError(f"supervisors {', '.join(strangers)} are not extensions of any department")
    _validate_carrier(settings.carrier)


def _validate_carrier(carrier: CarrierSettings) -> None:
    for entry in carrier.match:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError as exc:
            raise SettingsError(f"[carrier] match {entry!r} is not an IP address or subnet") from exc
    if not CONTACT_PATTERN.fullmatch(carrier.contact):
        raise SettingsError(f"[carrier] contact {carrier.contact!r} is not host or host:port")
