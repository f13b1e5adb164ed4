"""What the hotline needs Asterisk to load, and why (config/asterisk/modules.conf).

modules.conf says ``autoload = no`` and names every module the hotline uses: with
autoload, Asterisk 22.10.1 loaded 298 modules and logged 45 ERROR/WARNING lines at
start-up for modules nobody configured (the real start-up log:
``../shared/asterisk/logs/full.log``, lines 49-1353). These tables are the one place
that says which module provides what; ``tests/test_asterisk_config.py`` checks
modules.conf, extensions.conf and the code's AGI commands against them.

Where each fact comes from:

- :data:`APPLICATION_MODULE` / :data:`FUNCTION_MODULE`: the ``Registered application``
  / ``Registered custom function`` lines of that start-up log, each between the
  ``Loading <module>.`` line and the module's ``=> (...)`` line (``core``: registered
  before the loader started, i.e. built into the asterisk binary).
- :data:`BUILTIN_MODULES`: the module names without ``.so`` in the same log (built-in
  modules: always loaded, ``noload`` is refused for them).
- :data:`MODULES`: ``.requires`` / ``.optional_modules`` of each module's
  ``AST_MODULE_INFO`` in the Asterisk sources, with the file and the copy that was
  read. The loader (main/loader.c, ``load_resource_list``) never loads a module
  that modules.conf does not name: a missing ``requires`` makes the module fail, and
  a failing ``require =`` module stops Asterisk. ``optional_modules`` may be absent:
  the capture's config had ``noload => res_statsd.so`` and res_pjsip (optional
  res_statsd) loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "APPLICATION_MODULE",
    "FUNCTION_MODULE",
    "BUILTIN_MODULES",
    "CORE",
    "ModuleInfo",
    "MODULES",
    "NOISY_MODULES",
    "module_name",
]

CORE = "core"  # built into the asterisk binary

# Built-in modules (no .so), from the start-up log. Requirements on them always hold.
BUILTIN_MODULES = frozenset({
    "acl", "ccss", "cdr", "cel", "dnsmgr", "dsp", "enum", "extconfig", "features", "http",
    "indications", "logger", "manager", "plc", "sounds", "udptl",
})

# Lower-case application name -> module that registers it (start-up log).
APPLICATION_MODULE: dict[str, str] = {
    "answer": CORE, "background": CORE, "goto": CORE, "gotoif": CORE, "hangup": CORE,
    "noop": CORE, "progress": CORE, "wait": CORE, "set": CORE,
    "agi": "res_agi",
    "audiosocket": "app_audiosocket",
    "chanspy": "app_chanspy",
    "dial": "app_dial",
    "gosub": "app_stack",
    "return": "app_stack",
    "log": "app_verbose",
    "verbose": "app_verbose",
    "mixmonitor": "app_mixmonitor",
    "musiconhold": "res_musiconhold",
    "playback": "app_playback",
    "playtones": "app_playtones",
    "queue": "app_queue",
    "userevent": "app_userevent",
}

# Upper-case dialplan function name -> module that registers it (start-up log).
FUNCTION_MODULE: dict[str, str] = {
    "CALLERID": "func_callerid",
    "CHANNEL": "func_channel",
    "GLOBAL": "func_global",
    "MIXMONITOR": "app_mixmonitor",
    "QUEUE_MEMBER": "app_queue",
    "STRFTIME": "func_strings",
    "TIMEOUT": "func_timeout",
}


@dataclass(frozen=True)
class ModuleInfo:
    """``AST_MODULE_INFO`` of one module: what the loader needs running first.

    ``source`` names the file and the copy read; ``read`` is False for modules whose
    source was not read (small modules of the core; their dependencies, if any, are
    inferred, not checked)."""

    requires: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    source: str = ""
    read: bool = True


_AA = "asterisk/asterisk"
_JS = "jsoref/asterisk (a mirror of asterisk master, 20.x era)"


def _m(source: str, requires: str = "", optional: str = "", read: bool = True) -> ModuleInfo:
    split = lambda s: tuple(x for x in s.split(",") if x)  # noqa: E731
    return ModuleInfo(split(requires), split(optional), source, read)


# Every module modules.conf loads. A module whose stored source was older than the
# "requires" field (Asterisk < 16) shows none; those are leaf modules (no module
# dependency in the code either).
MODULES: dict[str, ModuleInfo] = {
    # SIP: the agents' phones and the carrier.
    "res_sorcery_config": _m(f"res/res_sorcery_config.c ({_AA})"),
    "res_sorcery_memory": _m(f"res/res_sorcery_memory.c ({_AA})"),
    "res_sorcery_astdb": _m(f"res/res_sorcery_astdb.c ({_AA})"),
    "res_pjproject": _m(f"res/res_pjproject.c ({_AA})", "res_sorcery_config"),
    "res_pjsip": _m(f"res/res_pjsip.c ({_AA})",
                    "dnsmgr,res_pjproject,res_sorcery_config,res_sorcery_memory,res_sorcery_astdb",
                    "res_statsd"),
    "res_pjsip_session": _m(f"res/res_pjsip_session.c ({_JS})", "res_pjsip"),
    "res_pjsip_pubsub": _m(f"res/res_pjsip_pubsub.c ({_JS})", "res_pjsip"),
    "chan_pjsip": _m(f"channels/chan_pjsip.c ({_AA})", "res_pjsip,res_pjsip_session,res_pjsip_pubsub"),
    "res_pjsip_registrar": _m(f"res/res_pjsip_registrar.c ({_JS})", "res_pjproject,res_pjsip"),
    "res_pjsip_authenticator_digest": _m("res/res_pjsip_authenticator_digest.c (pre-16 copy: no field)",
                                         "res_pjsip", read=False),
    "res_pjsip_endpoint_identifier_user": _m(
        "res/res_pjsip_endpoint_identifier_user.c (pre-16 copy: no field)", "res_pjsip", read=False),
    "res_pjsip_endpoint_identifier_ip": _m(
        "res/res_pjsip_endpoint_identifier_ip.c (pre-16 copy: no field)", "res_pjsip", read=False),
    "res_pjsip_sdp_rtp": _m(f"res/res_pjsip_sdp_rtp.c ({_JS})", "res_pjsip,res_pjsip_session"),
    "res_pjsip_nat": _m(f"res/res_pjsip_nat.c ({_JS})", "res_pjsip,res_pjsip_session"),
    "res_pjsip_caller_id": _m(f"res/res_pjsip_caller_id.c ({_JS})", "res_pjsip,res_pjsip_session"),
    "res_pjsip_refer": _m(f"res/res_pjsip_refer.c ({_JS})", "res_pjsip,res_pjsip_session,res_pjsip_pubsub"),
    "res_pjsip_rfc3326": _m("res/res_pjsip_rfc3326.c (not read)", "res_pjsip,res_pjsip_session", read=False),
    "res_pjsip_logger": _m("res/res_pjsip_logger.c (not read)", "res_pjsip", read=False),
    "res_rtp_asterisk": _m(f"res/res_rtp_asterisk.c ({_JS}; with bundled pjproject)", "res_pjproject"),
    # Voice menu, queues, recording, supervisors.
    "res_speech": _m(f"res/res_speech.c ({_AA})"),
    "res_agi": _m(f"res/res_agi.c ({_JS})", "res_speech"),
    "res_audiosocket": _m(f"res/res_audiosocket.c ({_AA})"),
    "app_audiosocket": _m(f"apps/app_audiosocket.c ({_JS})", "res_audiosocket"),
    # jsoref's copy has optional res_monitor, which Asterisk 21 removed (absent from
    # the 22.10.1 start-up log); optional, so its absence is harmless either way.
    "app_queue": _m(f"apps/app_queue.c ({_JS})", optional="res_monitor"),
    "app_mixmonitor": _m(f"apps/app_mixmonitor.c ({_JS})", optional="func_periodic_hook"),
    "app_chanspy": _m(f"apps/app_chanspy.c ({_AA})"),
    "app_dial": _m(f"apps/app_dial.c ({_JS})", "ccss"),
    "app_stack": _m(f"apps/app_stack.c ({_AA}, pre-16: nonoptreq res_agi)", optional="res_agi"),
    "app_verbose": _m("apps/app_verbose.c (not read)", read=False),
    "app_userevent": _m("apps/app_userevent.c (not read)", read=False),
    "app_playtones": _m("apps/app_playtones.c (not read)", read=False),
    "app_playback": _m("apps/app_playback.c (not read)", read=False),
    "res_musiconhold": _m(f"res/res_musiconhold.c ({_JS})"),
    "pbx_config": _m(f"pbx/pbx_config.c ({_JS})"),
    "func_callerid": _m("funcs/func_callerid.c (not read)", read=False),
    "func_channel": _m("funcs/func_channel.c (not read)", read=False),
    "func_strings": _m("funcs/func_strings.c (not read)", read=False),
    "func_global": _m("funcs/func_global.c (not read)", read=False),
    "func_timeout": _m("funcs/func_timeout.c (not read)", read=False),
    # Call records.
    "cdr_manager": _m(f"cdr/cdr_manager.c ({_AA})"),
    "cdr_csv": _m("cdr/cdr_csv.c (not read)", read=False),
    # Media: timing, bridging, codecs, file formats.
    "res_timing_timerfd": _m(f"res/res_timing_timerfd.c ({_AA})"),
    "bridge_simple": _m("bridges/bridge_simple.c (not read)", read=False),
    "bridge_native_rtp": _m("bridges/bridge_native_rtp.c (not read)", read=False),
    "codec_ulaw": _m("codecs/codec_ulaw.c (not read)", read=False),
    "codec_alaw": _m("codecs/codec_alaw.c (not read)", read=False),
    "codec_a_mu": _m("codecs/codec_a_mu.c (not read)", read=False),
    "codec_resample": _m("codecs/codec_resample.c (not read)", read=False),
    "format_wav": _m("formats/format_wav.c (not read)", read=False),
    "format_pcm": _m("formats/format_pcm.c (not read)", read=False),
    "format_sln": _m("formats/format_sln.c (not read)", read=False),
    "format_gsm": _m("formats/format_gsm.c (not read)", read=False),
    # security.log: security events become log lines only through this module.
    "res_security_log": _m("res/res_security_log.c (not read)", read=False),
}

# Modules that must not load: each logged an ERROR or WARNING at the capture's start
# (full.log) because nothing configures it, or is deprecated. Value: that line.
NOISY_MODULES: dict[str, str] = {
    "res_geolocation": "res_sorcery_config.c: Unable to load config file 'geolocation.conf'",
    "res_pjsip_geolocation": "(needs res_geolocation, geolocation.conf)",
    "res_pjsip_config_wizard": "res_pjsip_config_wizard.c: Unable to load config file 'pjsip_wizard.conf'",
    "res_aeap": "res_sorcery_config.c: Unable to load config file 'aeap.conf'",
    "res_speech_aeap": "(needs res_aeap)",
    "res_websocket_client": "res_sorcery_config.c: Unable to load config file 'websocket_client.conf'",
    "chan_websocket": "res_sorcery_config.c: Unable to load config file 'chan_websocket.conf'",
    "res_ari": "res_sorcery_config.c: Unable to load config file 'ari.conf'",
    "res_pjsip_notify": "config_options.c: Unable to load config file 'pjsip_notify.conf'",
    "res_parking": "config_options.c: Unable to load config file 'res_parking.conf'",
    "app_confbridge": "app_confbridge.c: Unable to load config. Not loading module.",
    "app_page": "loader.c: Declined modules which depend on app_confbridge: app_page",
    "cel_custom": "cdrel_custom/config.c: Unable to load cel_custom.conf",
    "cdr_custom": "cdrel_custom/config.c: Unable to load cdr_custom.conf",
    "res_http_media_cache": "config_options.c: Unable to load config file 'res_http_media_cache.conf'",
    "app_festival": "app_festival.c: No such configuration file festival.conf",
    "app_voicemail": "app_voicemail.c: Failed to load configuration file.",
    "res_clialiases": "res_clialiases.c: res_clialiases configuration file 'cli_aliases.conf' not found",
    "app_minivm": "app_minivm.c: Failed to load configuration file.",
    "app_amd": "app_amd.c: Configuration file amd.conf missing.",
    "app_alarmreceiver": "loader.c: app_alarmreceiver declined to load.",
    "pbx_ael": "loader.c: pbx_ael declined to load.",
    "res_adsi": "loader.c: Module 'res_adsi' has been loaded but may be removed in a future release.",
    "app_adsiprog": "loader.c: Module 'app_adsiprog' has been loaded but may be removed in a future release.",
    "app_getcpeid": "loader.c: Module 'app_getcpeid' has been loaded but may be removed in a future release.",
}


def module_name(value: str) -> str:
    """``chan_pjsip.so`` -> ``chan_pjsip`` (modules.conf accepts both)."""
    value = value.strip()
    return value[:-3] if value.endswith(".so") else value
