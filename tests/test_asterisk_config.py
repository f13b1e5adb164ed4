"""Checks of config/asterisk (the /etc/asterisk of the hotline) and docker-compose.yml.

Each check is a function that returns a list of problems. Every test runs its check on
the real files (expecting no problems) and on a deliberately broken copy (expecting
the breakage to be reported), so a check that silently stopped checking would fail.
"""

from __future__ import annotations

import ast
import dataclasses
import ipaddress
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Callable

import pytest
import yaml

from hotline.asterisk.ami_rights import ACTION_CLASSES, EVENT_CLASSES, needed_read_classes, needed_write_classes
from hotline.asterisk.carrier import placeholder_addresses
from hotline.asterisk.errors import AsteriskConfigError
from hotline.asterisk.generate import (
    CARRIER_FILE,
    GENERATED_FILES,
    ROLE_VARIABLE,
    SUPERVISOR_ROLE,
    render_generated,
    stale_generated,
    write_generated,
)
from hotline.asterisk.modules import (
    APPLICATION_MODULE,
    BUILTIN_MODULES,
    CORE,
    FUNCTION_MODULE,
    MODULES,
    NOISY_MODULES,
    module_name,
)
from hotline.asterisk.parse import Config, ConfError, parse_file, parse_text
from hotline.asterisk.secrets import ami_secret_problem, write_secrets
from hotline.cli import main
from hotline.settings import CarrierSettings, Settings, SettingsError, load_settings, validate
from tests.asterisk_dialplan import (
    Dialplan,
    DialplanRunError,
    Run,
    dialplan,
    dialplan_rows,
    pattern_matches,
    run,
    split_app_args,
)
from tests.conftest import ASTERISK_FIXTURES

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "config" / "asterisk"
COMPOSE_FILE = REPO / "docker-compose.yml"
AMI_SECRET = "test-ami-secret-0123456789"

REQUIRED_MODULES = {
    "pbx_config", "chan_pjsip", "app_queue", "app_mixmonitor", "res_agi", "app_audiosocket",
    "res_audiosocket", "app_chanspy", "cdr_manager", "res_musiconhold",
}
# The product's packages: where the AMI actions it sends and the events it consumes are.
PRODUCT_PACKAGES = ("hotline", "ivr", "agents", "recordings", "asr", "routing", "knowledge", "tickets")
# Where AMI events are consumed (hotline/asterisk only describes them).
EVENT_CONSUMERS = ("hotline", "ivr", "agents", "recordings", "tickets")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(env={})  # the repository's hotline.toml, no environment overrides


@pytest.fixture()
def etc(tmp_path: Path, settings: Settings) -> Path:
    """A copy of config/asterisk as Asterisk would see it: with the secrets that
    `hotline asterisk-secrets` (hotline-init) writes."""
    target = tmp_path / "etc-asterisk"
    shutil.copytree(CONF_DIR, target, ignore=_ignore_local_secrets)
    write_secrets(settings, target / "secrets", {"HOTLINE_AMI_SECRET": AMI_SECRET})
    return target


def _ignore_local_secrets(directory: str, names: list[str]) -> list[str]:
    # A developer's own generated secrets must not leak into (or satisfy) the tests.
    if Path(directory).name == "secrets":
        return [n for n in names if n != ".gitkeep"]
    return []


def load(etc: Path, name: str) -> Config:
    return parse_file(etc / name, config_dir=etc)


def edited(etc: Path, name: str, change: Callable[[str], str]) -> Path:
    """A copy of ``etc`` with ``name`` rewritten by ``change`` (which must change it)."""
    copy = etc.parent / f"{etc.name}-broken-{len(list(etc.parent.iterdir()))}"
    shutil.copytree(etc, copy)
    before = (copy / name).read_text(encoding="utf-8")
    after = change(before)
    assert after != before, f"the edit of {name} did not change anything"
    (copy / name).write_text(after, encoding="utf-8")
    return copy


def sub(pattern: str, repl: str, count: int = 0, flags: int = re.M) -> Callable[[str], str]:
    return lambda text: re.sub(pattern, repl, text, count=count, flags=flags)


# --------------------------------------------------------------------------- parser


def test_parser_templates_repeats_comments_and_includes(tmp_path: Path) -> None:
    (tmp_path / "inc.conf").write_text("secret = from-include\n[other]\nx = 1\n", encoding="utf-8")
    cfg = parse_text(
        "[base](!)\n"
        "a = 1\n"
        "allow = ulaw\n"
        "[mid](!,base)\n"
        "b => 2\n"
        "[leaf](mid)\n"
        "allow = alaw ; trailing comment\n"
        "value = semi\\;colon\n"
        ";-- a block comment\n"
        "hidden = yes\n"
        "--; visible = yes\n"
        ";----------- a ruler line is a plain comment\n"
        "#include inc.conf\n"
        "after = still-leaf\n",
        config_dir=tmp_path,
    )
    leaf = cfg.get("leaf")
    assert leaf.items() == [
        ("a", "1"), ("allow", "ulaw"), ("b", "2"), ("allow", "alaw"), ("value", "semi;colon"),
        ("visible", "yes"), ("secret", "from-include"), ("after", "still-leaf"),
    ]
    assert leaf.get("allow") == "alaw" and leaf.get_all("allow") == ["ulaw", "alaw"]
    assert "hidden" not in leaf
    assert [c.name for c in cfg.objects()] == ["leaf", "other"]
    assert cfg.find("base") == [] and cfg.find("base", templates=True)[0].is_template
    assert cfg.get("other").items() == [("x", "1")]


def test_parser_keeps_repeated_categories_apart() -> None:
    cfg = parse_text("[8001]\ntype = endpoint\n[8001]\ntype = aor\n[8001](+)\nmax_contacts = 2\n")
    assert [c.type for c in cfg.find("8001")] == ["endpoint", "aor"]
    assert cfg.get("8001", type="aor").get("max_contacts") == "2"


@pytest.mark.parametrize(
    "text",
    [
        "[unterminated\na = 1\n",
        "a = 1\n",  # no category
        "[x]\njust words\n",  # no '='
        "[x](missing-template)\n",
        "[x]\n;-- never closed\n",
        "[x]\n#include does-not-exist.conf\n",
        "[x]\n#exec /bin/true\n",
        "[x] trailing\n",
    ],
)
def test_parser_rejects_broken_config(text: str, tmp_path: Path) -> None:
    with pytest.raises(ConfError):
        parse_text(text, config_dir=tmp_path)


def test_parser_tryinclude_may_be_missing(tmp_path: Path) -> None:
    assert parse_text("[x]\n#tryinclude nothing-here.conf\na = 1\n", config_dir=tmp_path).get("x").items() == [("a", "1")]


def test_dialplan_helper() -> None:
    cfg = parse_text(
        "[globals]\nG = 1\n"
        "[ctx]\n"
        "exten => _80XX,1,Dial(PJSIP/${EXTEN},30)\n"
        " same => n(done),Hangup()\n"
        "exten => s,1,Goto(other,s,1)\n"
        "include => more\n"
        "[more]\nexten => _*18XXX,1,ChanSpy(PJSIP/${EXTEN:2},qE)\n"
    )
    dp = dialplan(cfg)
    assert dialplan_rows(cfg)[:2] == [
        ("ctx", "_80XX", "1", "Dial", "PJSIP/${EXTEN},30"),
        ("ctx", "_80XX", "2(done)", "Hangup", ""),
    ]
    assert dp.globals == {"G": "1"}
    assert dp.match("ctx", "8001") == ("ctx", "_80XX")
    assert dp.match("ctx", "*18006") == ("more", "_*18XXX")
    assert dp.match("ctx", "9001") is None
    assert dp.goto_target(dp.step("ctx", "s", 1)) == ("other", "s", 1)
    assert pattern_matches("_[+0-9].", "+8610") and not pattern_matches("_NXX", "123")
    assert split_app_args("a,$[${X} > 1]?l1:l2,f(x,y)") == ["a", "$[${X} > 1]?l1:l2", "f(x,y)"]
    with pytest.raises(ConfError):
        dialplan(parse_text("[ctx]\n same => n,NoOp()\n"))  # same before exten
    with pytest.raises(ConfError):
        dialplan(parse_text("[ctx]\nexten => 1,1,Set(X=1\n"))  # unbalanced


# --------------------------------------------------------------------------- every file


def top_level_files(etc: Path) -> tuple[list[Path], set[Path]]:
    """(files not included by any other, every .conf file)."""
    every = {p.resolve() for p in etc.rglob("*.conf")}
    included: set[Path] = set()
    for path in every:
        for line in path.read_text(encoding="utf-8").splitlines():
            m = re.match(r"\s*#\s*(?:try)?include\s+\"?([^\"]+?)\"?\s*$", line)
            if m:
                included.add((etc / m.group(1)).resolve())
    return sorted(every - included), every


def unparsed_files(etc: Path) -> list[str]:
    tops, every = top_level_files(etc)
    read: set[Path] = set()
    for top in tops:
        read |= {Path(p).resolve() for p in parse_file(top, config_dir=etc).files}
    return sorted(str(p.relative_to(etc.resolve())) for p in every - read)


def test_every_file_parses(etc: Path) -> None:
    tops, every = top_level_files(etc)
    assert len(every) >= 15 and len(tops) < len(every)
    assert unparsed_files(etc) == []
    # A file that Asterisk would reject is noticed.
    broken = edited(etc, "rtp.conf", lambda t: t + "\nrtpend 10199\n")
    with pytest.raises(ConfError):
        unparsed_files(broken)
    # So is an include whose target is missing (e.g. secrets not generated).
    (broken / "rtp.conf").write_text((etc / "rtp.conf").read_text(encoding="utf-8"), encoding="utf-8")
    (broken / "secrets" / "pjsip_auth.conf").unlink()
    with pytest.raises(ConfError):
        unparsed_files(broken)


def test_secrets_folder_is_kept_but_ignored() -> None:
    assert (CONF_DIR / "secrets" / ".gitkeep").exists()
    ignore = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "config/asterisk/secrets/*" in ignore and "!config/asterisk/secrets/.gitkeep" in ignore


# --------------------------------------------------------------------------- generated files


def test_generated_files_are_up_to_date(settings: Settings, tmp_path: Path) -> None:
    for name, text in render_generated(settings).items():
        assert (CONF_DIR / name).read_text(encoding="utf-8") == text, f"{name} is stale: run hotline asterisk-config"
        assert text.startswith(f"; {name}\n; Generated by `hotline asterisk-config` from config/hotline.toml.")
    assert stale_generated(settings, CONF_DIR) == []
    # Drift is noticed: settings with one department fewer no longer match the files.
    fewer = dataclasses.replace(settings, departments=settings.departments[:-1])
    assert sorted(stale_generated(fewer, CONF_DIR)) == ["pjsip_extensions.conf", "queues_departments.conf"]
    # So is a carrier address changed in the settings but not regenerated.
    moved = dataclasses.replace(settings, carrier=CarrierSettings(match=("10.20.30.40",), contact="10.20.30.40"))
    assert stale_generated(moved, CONF_DIR) == [CARRIER_FILE]
    # ... and write_generated brings a directory back in line.
    assert len(write_generated(fewer, tmp_path)) == len(GENERATED_FILES) == 3
    assert stale_generated(fewer, tmp_path) == [] and write_generated(fewer, tmp_path) == []


# --------------------------------------------------------------------------- queues


def queue_problems(cfg: Config, settings: Settings) -> list[str]:
    problems = []
    for cat in cfg.categories:
        if "member" in cat:
            problems.append(f"[{cat.name}] has static members: {cat.get_all('member')}")
    generals = cfg.find("general")
    if len(generals) != 1:
        problems.append(f"{len(generals)} [general] sections")
    for general in generals:
        if general.get("persistentmembers") != "yes":
            problems.append("[general] persistentmembers is not yes")
        if "strategy" in general or general.templates:
            problems.append("a queue named 'general' would be read as app_queue's global settings")
    queues = [c for c in cfg.objects() if c.name != "general"]
    names = [q.name for q in queues]
    wanted = [d.queue for d in settings.departments]
    if sorted(names) != sorted(wanted):
        problems.append(f"queues {sorted(names)} != departments' queues {sorted(wanted)}")
    for q in queues:
        if q.templates != ("hotline-queue",):
            problems.append(f"[{q.name}] does not use the hotline-queue template")
    tpl = cfg.find("hotline-queue", templates=True)
    if len(tpl) != 1 or not tpl[0].is_template:
        return problems + ["no [hotline-queue](!) template"]
    expected = {
        "strategy": "rrmemory", "timeout": "15", "retry": "2", "announce-position": "yes",
        "joinempty": "yes", "leavewhenempty": "no", "musicclass": "default", "ringinuse": "no",
    }
    for key, value in expected.items():
        if tpl[0].get(key) != value:
            problems.append(f"hotline-queue {key} = {tpl[0].get(key)!r}, expected {value!r}")
    if not (tpl[0].get("wrapuptime") or "").isdigit():
        problems.append("hotline-queue has no wrapuptime")
    return problems


def test_one_queue_per_department(etc: Path, settings: Settings) -> None:
    cfg = load(etc, "queues.conf")
    assert queue_problems(cfg, settings) == []
    assert "queues_departments.conf" in {Path(f).name for f in cfg.files}
    assert settings.fallback_queue in cfg.names()
    for broken in (
        edited(etc, "queues_departments.conf", lambda t: t + "member => PJSIP/8001\n"),
        edited(etc, "queues_departments.conf", sub(r"^\[tax\]\(hotline-queue\)\n", "")),
        edited(etc, "queues_departments.conf", lambda t: t + "[general](hotline-queue)\n"),
        edited(etc, "queues.conf", sub(r"^ringinuse = no", "ringinuse = yes")),
    ):
        assert queue_problems(load(broken, "queues.conf"), settings), broken


# --------------------------------------------------------------------------- pjsip


def pjsip_problems(cfg: Config, settings: Settings, auth_file: Config) -> list[str]:
    problems = []
    wanted = sorted(e for d in settings.departments for e in d.extensions)
    if wanted != [f"{n}" for n in range(8001, 8029)]:
        problems.append(f"settings' extensions are not 8001-8028: {wanted}")
    agents = [c for c in cfg.of_type("endpoint") if c.get("context") == "from-agents"]
    names = sorted(c.name for c in agents)
    if names != wanted:
        problems.append(f"agent endpoints {names} != settings' extensions")
    aors = {c.name: c for c in cfg.of_type("aor")}
    auths = {c.name: c for c in cfg.of_type("auth")}
    secret_auths = {c.name for c in auth_file.of_type("auth")}
    passwords = []
    for ep in agents:
        ext = ep.name
        if ep.get("callerid") != f'"坐席{ext}" <{ext}>':
            problems.append(f"{ext}: callerid {ep.get('callerid')!r}")
        if ep.get("direct_media") != "no" or ep.get("language") != "zh":
            problems.append(f"{ext}: direct_media/language")
        if not {"ulaw", "alaw"} <= set((ep.get("allow") or "").split(",")) or ep.get("disallow") != "all":
            problems.append(f"{ext}: codecs")
        if ep.get("allow_transfer") != "yes":
            problems.append(f"{ext}: allow_transfer")
        aor = aors.get(ep.get("aors") or "")
        if aor is None or aor.get("max_contacts") != "2":
            problems.append(f"{ext}: aor {ep.get('aors')!r} missing or max_contacts != 2")
        auth_name = ep.get("auth") or ""
        auth = auths.get(auth_name)
        if auth is None or auth_name not in secret_auths:
            problems.append(f"{ext}: auth {auth_name!r} not defined by the secrets file")
            continue
        if auth.get("username") != ext:
            problems.append(f"{ext}: auth username {auth.get('username')!r}")
        pw = auth.get("password") or ""
        if len(pw) < 20:
            problems.append(f"{ext}: password shorter than 20 characters")
        passwords.append(pw)
    if len(set(passwords)) != len(passwords):
        problems.append("two extensions share a password")
    trunks = [c for c in cfg.of_type("endpoint") if c.get("context") == "from-trunk"]
    identified = {c.get("endpoint") for c in cfg.of_type("identify") if c.get("match")}
    if not trunks or any(t.name not in identified for t in trunks):
        problems.append("no carrier endpoint in from-trunk identified by IP")
    transports = [c for c in cfg.of_type("transport") if c.get("protocol") == "udp"]
    if not any((t.get("bind") or "").endswith(":5060") for t in transports):
        problems.append("no UDP transport on 5060")
    return problems


def test_pjsip_endpoints_match_settings_and_secrets(etc: Path, settings: Settings) -> None:
    auth_file = load(etc, "secrets/pjsip_auth.conf")
    assert pjsip_problems(load(etc, "pjsip.conf"), settings, auth_file) == []
    same_pw = edited(etc, "secrets/pjsip_auth.conf", sub(r"^password = .*$", "password = aaaaaaaaaaaaaaaaaaaaaa"))
    for broken, auth in (
        (edited(etc, "pjsip_extensions.conf", sub(r"^\[8028\]\(agent-endpoint\)\n(?:(?!\[).*\n)*", "")), auth_file),
        (edited(etc, "pjsip_extensions.conf", sub(r"^auth = 8005$", "auth = 8005x")), auth_file),
        (edited(etc, "pjsip.conf", sub(r"^max_contacts = 2$", "max_contacts = 1")), auth_file),
        (same_pw, load(same_pw, "secrets/pjsip_auth.conf")),
    ):
        assert pjsip_problems(load(broken, "pjsip.conf"), settings, auth), broken


# --------------------------------------------------------------------------- the carrier

# A carrier sharing its address with the agents' phones: both behind one NAT or
# border gateway (the address the phones' REGISTERs come from).
SHARED_ADDRESS = "10.20.30.40"


def identify_endpoint(cfg: Config, from_user: str, source: str) -> str | None:
    """The endpoint res_pjsip picks for a request that is not part of a dialog
    (REGISTER, a new INVITE), as in res_pjsip (ast_sip_identify_endpoint: the
    identifiers in [global] endpoint_identifier_order, then the others in
    registration order) with the two identifier modules modules.conf loads:
    ``username`` (res_pjsip_endpoint_identifier_user.c, username_identify: an
    endpoint named like the From user, if its identify_by allows "username"; the
    default identify_by is "username,ip") and ``ip``
    (res_pjsip_endpoint_identifier_ip.c, ip_identify: the first identify section
    whose match holds the source address; the endpoint's identify_by is not
    consulted). ``auth_username`` never matches a first request (no Authorization
    header yet), so it is left out."""
    order = [o.strip() for o in (cfg.get("global", type="global").get("endpoint_identifier_order")
                                 or "ip,username,anonymous").split(",")]
    order += [name for name in ("username", "ip") if name not in order]
    endpoints = {c.name: c for c in cfg.of_type("endpoint")}
    address = ipaddress.ip_address(source)
    for identifier in order:
        if identifier == "username" and from_user in endpoints:
            allowed = (endpoints[from_user].get("identify_by") or "username,ip").replace(" ", "").split(",")
            if "username" in allowed:
                return from_user
        if identifier == "ip":
            for identify in cfg.of_type("identify"):
                if any(address in ipaddress.ip_network(m, strict=False) for m in identify.get_all("match")):
                    return identify.get("endpoint")
    return None


def carrier_problems(cfg: Config, settings: Settings) -> list[str]:
    """Requests from the carrier's addresses reach the right endpoint: the phones'
    REGISTERs their own extension (the registrar looks the extension up among the
    identified endpoint's aors: any other endpoint answers 404), the public calls the
    carrier, whatever caller number they present."""
    problems = []
    extensions = [e for d in settings.departments for e in d.extensions]
    sources = [str(ipaddress.ip_network(m, strict=False).network_address) for m in settings.carrier.match]
    for source in sources:
        for ext in extensions:
            who = identify_endpoint(cfg, ext, source)
            if who != ext:
                problems.append(f"REGISTER of {ext} from {source} is taken as endpoint {who!r}")
        for caller in ("13800138000", "057112345", "anonymous", "carrier"):
            who = identify_endpoint(cfg, caller, source)
            if who != "carrier":
                problems.append(f"INVITE from {caller} at {source} is taken as endpoint {who!r}")
    identifies = [c for c in cfg.of_type("identify") if c.get("endpoint") == "carrier"]
    matched = sorted(m for c in identifies for m in c.get_all("match"))
    if matched != sorted(settings.carrier.match):
        problems.append(f"carrier identify matches {matched}, settings say {sorted(settings.carrier.match)}")
    contact = cfg.get("carrier", type="aor").get("contact")
    if contact != f"sip:{settings.carrier.contact}":
        problems.append(f"carrier aor contact {contact!r}, settings say {settings.carrier.contact!r}")
    return problems


@pytest.fixture()
def shared_carrier(settings: Settings) -> Settings:
    return dataclasses.replace(settings, carrier=CarrierSettings(
        match=(SHARED_ADDRESS, "10.21.0.0/16"), contact=f"{SHARED_ADDRESS}:5060"))


def test_carrier_addresses_are_generated_from_the_settings(etc: Path, shared_carrier: Settings) -> None:
    assert carrier_problems(load(etc, "pjsip.conf"), load_settings(env={})) == []
    write_generated(shared_carrier, etc)
    cfg = load(etc, "pjsip.conf")
    assert "pjsip_carrier.conf" in {Path(f).name for f in cfg.files}
    assert carrier_problems(cfg, shared_carrier) == []
    identify = cfg.get("carrier", type="identify")
    assert identify.get("endpoint") == "carrier" and identify.get_all("match") == [SHARED_ADDRESS, "10.21.0.0/16"]
    assert cfg.get("carrier", type="aor").get("qualify_frequency") == "60"


def test_phones_registering_from_the_carriers_address_are_not_taken_for_the_carrier(
        etc: Path, shared_carrier: Settings) -> None:
    """The REGISTER swallow: with endpoint_identifier_order = ip,username (the old
    pjsip.conf), a carrier on the phones' address took every REGISTER."""
    write_generated(shared_carrier, etc)
    assert carrier_problems(load(etc, "pjsip.conf"), shared_carrier) == []
    # A phone elsewhere, and the real caller of the e2e captures (From 13800138000,
    # identified as endpoint carrier by its address 127.0.0.2 there).
    capture = (ASTERISK_FIXTURES / "e2e" / "serve-killed-during-audiosocket.jsonl").read_text(encoding="utf-8")
    assert "PJSIP/carrier-" in capture and "CallerIDNum: 13800138000" in capture
    local = dataclasses.replace(shared_carrier, carrier=CarrierSettings(match=("127.0.0.2",), contact="127.0.0.2"))
    write_generated(local, etc)
    assert identify_endpoint(load(etc, "pjsip.conf"), "13800138000", "127.0.0.2") == "carrier"
    assert identify_endpoint(load(etc, "pjsip.conf"), "8006", "127.0.0.2") == "8006"
    write_generated(shared_carrier, etc)
    for change in (
        sub(r"^endpoint_identifier_order = username,ip$", "endpoint_identifier_order = ip,username"),  # the old one
        sub(r"^identify_by = username\n", "identify_by = auth_username\n"),  # first REGISTER has no auth
    ):
        broken = edited(etc, "pjsip.conf", change)
        assert carrier_problems(load(broken, "pjsip.conf"), shared_carrier), change


def test_carrier_placeholder_is_reported(settings: Settings, shared_carrier: Settings, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert placeholder_addresses(settings.carrier) == ["192.0.2.10", "192.0.2.10:5060"]
    assert placeholder_addresses(shared_carrier.carrier) == []
    for documentation in ("198.51.100.0/24", "203.0.113.9", "2001:db8::5"):
        assert placeholder_addresses(CarrierSettings(match=(documentation,), contact="sip.carrier.cn")) == [documentation]
    assert placeholder_addresses(CarrierSettings(match=("10.0.0.1",), contact="[2001:db8::1]:5060")) \
        == ["[2001:db8::1]:5060"]
    # `hotline check-config` says it, and says nothing once real addresses are set.
    assert main(["check-config"]) == 0
    assert "asterisk.carrier_placeholder" in capsys.readouterr().err
    real = tmp_path / "hotline.toml"
    real.write_text(carrier_config(SHARED_ADDRESS), encoding="utf-8")
    assert main(["--config", str(real), "check-config"]) == 0
    assert "asterisk.carrier_placeholder" not in capsys.readouterr().err


def carrier_config(address: str) -> str:
    """The repository's hotline.toml with the carrier at ``address``."""
    text = (REPO / "config" / "hotline.toml").read_text(encoding="utf-8")
    changed = text.replace('match = ["192.0.2.10"]', f'match = ["{address}"]').replace(
        'contact = "192.0.2.10:5060"', f'contact = "{address}:5060"')
    assert changed.count(address) == 2
    return changed


def test_carrier_settings_are_validated(tmp_path: Path) -> None:
    text = (REPO / "config" / "hotline.toml").read_text(encoding="utf-8")
    for bad, message in (
        ('match = ["carrier.example.cn"]', "not an IP address"),
        ('match = []', "must be a list"),
        ('contact = "sip:1.2.3.4"', "not host or host:port"),
        ('contact = "1.2.3.4:port"', "not host or host:port"),
    ):
        key = bad.split(" =")[0]
        path = tmp_path / "hotline.toml"
        path.write_text(re.sub(rf"^{key} = .*$", bad, text, count=1, flags=re.M), encoding="utf-8")
        with pytest.raises(SettingsError, match=message):
            load_settings(path, env={})
    path.write_text(text.replace("[carrier]\n", "[carrier]\nregister = true\n"), encoding="utf-8")
    with pytest.raises(SettingsError, match="unknown"):
        load_settings(path, env={})
    # A settings file from before [carrier] existed still loads, with the placeholder.
    path.write_text(re.sub(r"^\[carrier\]\n(?:(?!\[).*\n)*", "", text, flags=re.M), encoding="utf-8")
    assert load_settings(path, env={}).carrier == CarrierSettings()


# --------------------------------------------------------------------------- secrets


def test_write_secrets(tmp_path: Path, settings: Settings) -> None:
    target = tmp_path / "secrets"
    with pytest.raises(AsteriskConfigError):
        write_secrets(settings, target, {"HOTLINE_AMI_SECRET": "abc;def"})
    assert not target.exists() or not any(target.iterdir()), "nothing may be written when refusing"

    first = write_secrets(settings, target, {"HOTLINE_AMI_SECRET": AMI_SECRET})
    assert len(first.new_passwords) == 28 and not first.kept_passwords
    auth = parse_file(target / "pjsip_auth.conf").of_type("auth")
    passwords = {c.name: c.get("password") for c in auth}
    assert sorted(passwords) == sorted(e for d in settings.departments for e in d.extensions)
    assert all(len(p or "") == 20 and (p or "").isalnum() for p in passwords.values())
    assert len(set(passwords.values())) == 28
    assert all(c.get("username") == c.name for c in auth)
    manager = (target / "manager_secret.conf").read_text(encoding="utf-8")
    assert f"\nsecret = {AMI_SECRET}\n" in manager
    assert (target / "ami_secret").read_text(encoding="utf-8") == AMI_SECRET + "\n"
    for name in ("pjsip_auth.conf", "manager_secret.conf", "ami_secret"):
        assert stat.S_IMODE(os.stat(target / name).st_mode) == 0o640

    # Existing passwords are kept; a missing extension gets one; the AMI secret follows env.
    text = (target / "pjsip_auth.conf").read_text(encoding="utf-8")
    text = re.sub(r"\n\[8028\]\n(?:(?!\[).*\n)*", "\n", text)
    (target / "pjsip_auth.conf").write_text(text, encoding="utf-8")
    second = write_secrets(settings, target, {"HOTLINE_AMI_SECRET": "another-secret-0123456789"})
    assert second.new_passwords == ["8028"] and len(second.kept_passwords) == 27
    again = {c.name: c.get("password") for c in parse_file(target / "pjsip_auth.conf").of_type("auth")}
    assert {k: v for k, v in again.items() if k != "8028"} == {k: v for k, v in passwords.items() if k != "8028"}
    assert again["8028"] != passwords["8028"]
    assert "secret = another-secret-0123456789\n" in (target / "manager_secret.conf").read_text(encoding="utf-8")
    third = write_secrets(settings, target, {"HOTLINE_AMI_SECRET": "another-secret-0123456789"})
    assert third.written == [] and third.new_passwords == []


@pytest.mark.parametrize("weak", ["dev-only-change-me", "s3cret", "Dev-Only-Change-Me", "short-but-random"[:15]])
def test_write_secrets_refuses_a_weak_ami_secret_outside_development(tmp_path: Path, settings: Settings,
                                                                     weak: str) -> None:
    target = tmp_path / "secrets"
    with pytest.raises(AsteriskConfigError, match=r"HOTLINE_AMI_SECRET (is a published default|is shorter than 16)"):
        write_secrets(settings, target, {"HOTLINE_AMI_SECRET": weak})
    assert not target.exists() or not any(target.iterdir()), "nothing may be written when refusing"
    # Only an explicit development mode writes it (and says so in the log).
    development = settings.with_overrides(service={"development": True})
    result = write_secrets(development, target, {"HOTLINE_AMI_SECRET": weak})
    assert f"\nsecret = {weak}\n" in (target / "manager_secret.conf").read_text(encoding="utf-8")
    assert len(result.new_passwords) == 28
    # Never an empty one: none given means a generated one, even in development mode.
    write_secrets(development, tmp_path / "other", {"HOTLINE_AMI_SECRET": ""})
    assert ami_secret_problem((tmp_path / "other" / "ami_secret").read_text(encoding="utf-8").strip()) is None


def test_without_a_secret_one_is_generated_once_and_the_service_reads_it(tmp_path: Path, settings: Settings) -> None:
    """`docker compose up` on a fresh clone: hotline-init gets no HOTLINE_AMI_SECRET,
    generates a random one, keeps it on later runs, and hotline serve reads it
    through HOTLINE_AMI_SECRET_FILE (compose mounts the folder read-only)."""
    target = tmp_path / "secrets"
    write_secrets(settings, target, {})
    generated = (target / "ami_secret").read_text(encoding="utf-8").strip()
    assert len(generated) == 48 and ami_secret_problem(generated) is None
    assert f"\nsecret = {generated}\n" in (target / "manager_secret.conf").read_text(encoding="utf-8")
    again = write_secrets(settings, target, {"HOTLINE_AMI_SECRET": ""})
    assert again.written == [] and (target / "ami_secret").read_text(encoding="utf-8").strip() == generated
    service = load_settings(env={"HOTLINE_AMI_SECRET": "", "HOTLINE_AMI_SECRET_FILE": str(target / "ami_secret")})
    assert service.ami.secret == generated
    given = load_settings(env={"HOTLINE_AMI_SECRET": "given-secret-0123456789",
                               "HOTLINE_AMI_SECRET_FILE": str(target / "ami_secret")})
    assert given.ami.secret == "given-secret-0123456789"
    with pytest.raises(SettingsError, match="HOTLINE_AMI_SECRET_FILE"):
        load_settings(env={"HOTLINE_AMI_SECRET_FILE": str(tmp_path / "missing")})


# --------------------------------------------------------------------------- dialplan


def _index(steps: list, app: str, args_pred: Callable[[str], bool] = lambda a: True) -> int:
    for i, s in enumerate(steps):
        if s.app.lower() == app.lower() and args_pred(s.args):
            return i
    return -1


def dialplan_problems(dp: Dialplan, settings: Settings) -> list[str]:
    problems = []
    number = settings.service.public_number
    for ctx in ("from-trunk", "from-agents"):
        steps = dp.route(ctx, number)
        if not steps or steps[0].app != "Goto" or dp.goto_target(steps[0]) != ("hotline", "s", 1):
            problems.append(f"{number} in {ctx} does not go to hotline,s,1")
    s = dp.extension("hotline", "s")
    answer = _index(s, "Answer")
    mix = _index(s, "MixMonitor")
    agi = _index(s, "AGI", lambda a: a == "agi:async")
    if min(answer, mix, agi) < 0 or not answer < mix < agi:
        problems.append("hotline,s must Answer, then MixMonitor, then AGI(agi:async)")
    if mix >= 0:
        argv = s[mix].argv
        if len(argv) > 1 and "b" in re.sub(r"\([^)]*\)", "", argv[1]):
            problems.append("MixMonitor has the b option (abandoned calls would not be recorded)")
        if not argv or not argv[0].startswith(settings.recordings.asterisk_dir.rstrip("/") + "/"):
            problems.append("MixMonitor does not write under recordings.asterisk_dir")
    max_age = dp.globals.get("HOTLINE_HEARTBEAT_MAX_AGE", "")
    if not (max_age.isdigit() and int(max_age) >= 3 * settings.ami.ping_interval):
        problems.append(f"HOTLINE_HEARTBEAT_MAX_AGE {max_age!r} is not a few ping intervals")
    guard = "".join(st.args for st in dp.extension("hotline-bridge", "s"))
    if settings.ami.heartbeat_variable not in guard or "HOTLINE_HEARTBEAT_MAX_AGE" not in guard:
        problems.append("[hotline-bridge] does not compare the heartbeat with HOTLINE_HEARTBEAT_MAX_AGE")
    try:
        fb = s.index(dp.step("hotline", "s", "fallback"))
    except KeyError:
        return problems + ["no fallback label in hotline,s"]
    if fb <= agi or s[fb].app != "Set" or s[fb].args != "TIMEOUT(absolute)=0":
        problems.append("fallback must come after the AGI and clear TIMEOUT(absolute)")
    # A call, simulated: with a live bridge the menu runs (bounded in time); without it
    # the caller goes straight to the fallback queue. Either way a caller whose agent hung
    # up (QUEUESTATUS=CONTINUE) reaches the survey, which needs the bridge too.
    for bridge, queue_status in (("up", ""), ("down", ""), ("up", "CONTINUE"), ("down", "CONTINUE")):
        try:
            call = hotline_call(dp, settings, bridge, queue_status)
        except DialplanRunError as exc:
            problems.append(f"bridge {bridge}, QUEUESTATUS {queue_status!r}: {exc}")
            continue
        menu = call.index("AGI", "agi:async")
        if (bridge == "up") != (menu >= 0):
            problems.append(f"bridge {bridge}: the menu {'is skipped' if menu < 0 else 'runs'}")
        if menu >= 0 and not any(e.app == "Set" and re.fullmatch(r"TIMEOUT\(absolute\)=[1-9]\d*", e.args)
                                 for e in call.executed[:menu]):
            problems.append("no Set(TIMEOUT(absolute)=N) before the menu's AGI")
        queued = call.index("Queue", settings.fallback_queue)
        if not queue_status and (queued < 0 or call.executed[queued].args != f"{settings.fallback_queue},c"):
            problems.append(f"bridge {bridge}: the caller is not queued in {settings.fallback_queue} with option c")
        if not call.hung_up:
            problems.append(f"bridge {bridge}, QUEUESTATUS {queue_status!r}: the call does not end with Hangup")
        asked = any(e.app == "AGI" and e.args == "agi:async,survey" for e in call.executed)
        if queue_status and asked != (bridge == "up"):
            problems.append(f"bridge {bridge}: the survey after the agent hung up {'runs' if asked else 'is skipped'}")
        if not queue_status and asked:
            problems.append(f"bridge {bridge}: a survey without an answered call")
    t = dp.extension("hotline", "T")
    if not t or t[-1].app != "Goto" or dp.goto_target(t[-1]) != ("hotline", "s", "fallback"):
        problems.append("no T extension going to s,fallback")
    if t and not any(st.app == "Log" and st.argv[0] == "WARNING" for st in t):
        problems.append("the T extension does not log a warning")
    # Agents call each other (the supervisor codes: supervisor_problems).
    dial = dp.route("from-agents", "8001")
    if not dial or (dial[0].app, dial[0].args) != ("Dial", "PJSIP/${EXTEN},30"):
        problems.append("8001 from-agents is not Dial(PJSIP/${EXTEN},30)")
    return problems


EPOCH = 1795313795


def hotline_call(dp: Dialplan, settings: Settings, bridge: str, queue_status: str = "",
                 context: str = "hotline", exten: str = "s", variables: dict[str, str] | None = None) -> Run:
    """A caller's way through the dialplan from ``context,exten``: the bridge's
    heartbeat fresh (``up``) or 100 s old (``down``); ``queue_status``: what Queue()
    leaves in QUEUESTATUS (CONTINUE: the agent hung up)."""
    heartbeat = str(EPOCH - 5 if bridge == "up" else EPOCH - 100)

    def global_(name: str) -> str:
        assert name == settings.ami.heartbeat_variable, name
        return heartbeat

    return run(dp, context, exten, variables={"EPOCH": str(EPOCH), "UNIQUEID": "1.1", "QUEUESTATUS": queue_status,
                                              **dp.globals, **(variables or {})},
               functions={"GLOBAL": global_, "STRFTIME": lambda _: "2026/11/22",
                          "CALLERID": lambda _: "13800138000"})


def test_dialplan(etc: Path, settings: Settings) -> None:
    assert settings.fallback_queue == "general_queue"  # the name spelled out in extensions.conf
    assert dialplan_problems(dialplan(load(etc, "extensions.conf")), settings) == []
    mix = r"^( same => n,MixMonitor\(.*)\.wav\)$"
    for change in (
        sub(mix, r"\1.wav,b)"),  # records only while bridged
        sub(r"^ same => n,(Set\(HOTLINE_HEARTBEAT_AGE|GotoIf).*\n", ""),  # no guard
        sub(r"^ same => n\(menu\),Set\(TIMEOUT.*\n", " same => n(menu),NoOp()\n"),  # no bound
        sub(r"^exten => T,.*\n same => .*\n", ""),  # no T extension
        sub(r"Queue\(general_queue,c\)", "Queue(general,c)"),
        sub(r"Queue\(general_queue,c\)", "Queue(general_queue)"),      # the agent's hangup ends the call
        sub(r'\?hotline-survey,s,1\)', "?fallback)"),                  # no survey
        sub(r"^ same => n,Gosub\(hotline-bridge,s,1\)\n", "", count=1),   # the menu without the check
        sub(r"^(exten => 2512345),1,Goto\(hotline,s,1\)", r"\1,1,Goto(hotline,s,2)", count=1),
        # AGI before MixMonitor: the menu would not be recorded
        sub(r"^( same => n,MixMonitor.*\n)((?:.*\n)*?)( same => n,AGI\(agi:async\)\n)", r"\3\1\2"),
    ):
        broken = dialplan(load(edited(etc, "extensions.conf", change), "extensions.conf"))
        assert dialplan_problems(broken, settings), change


def _argss(call: Run, app: str) -> list[str]:
    return [e.args for e in call.executed if e.app.lower() == app.lower()]


def telephony_problems(etc: Path, settings: Settings) -> list[str]:
    """The tickets' contexts: app_queue's exit key to the callback offer, and where
    the hotline's own calls go once answered (tickets/calls.py CONTEXTS)."""
    from tickets.calls import CONTEXTS

    problems = []
    dp = dialplan(load(etc, "extensions.conf"))
    queues = load(etc, "queues.conf")
    template = queues.find("hotline-queue", templates=True)[0]
    exit_context = template.get("context") or ""
    digits = [e for e in dp.extensions(exit_context) if len(e) == 1 and e.isdigit()]
    if digits != ["1"]:
        problems.append(f"queues.conf context {exit_context!r}: exit digits {digits}, not just 1")
    for purpose, context in CONTEXTS.items():
        if "s" not in dp.extensions(context):
            problems.append(f"no extension s in {context} (the {purpose} Originate's target)")
    if problems:
        return problems
    # The exit key with the bridge alive: the offer, bounded, with the queue named.
    up = hotline_call(dp, settings, "up", context=exit_context, exten="1", variables={"QUEUENAME": "tax"})
    offer = [a for a in _argss(up, "AGI") if a.startswith("agi:async,callback")]
    if offer != ["agi:async,callback,tax"]:
        problems.append(f"the exit key does not run the offer for the caller's queue: {_argss(up, 'AGI')}")
    elif not any(re.fullmatch(r"TIMEOUT\(absolute\)=[1-9]\d*", a) for a in _argss(up, "Set")):
        problems.append("the callback offer is not bounded by TIMEOUT(absolute)")
    # ...and without it (or when the offer ends otherwise): told, and back in the queue.
    for variables in ({"QUEUENAME": "tax"}, {"QUEUENAME": ""}):
        down = hotline_call(dp, settings, "down", context=exit_context, exten="1", variables=variables)
        queue = variables["QUEUENAME"] or settings.fallback_queue
        if _argss(down, "AGI") or _argss(down, "Queue") != [f"{queue},c"] or not _argss(down, "Playback"):
            problems.append(f"bridge down, queue {queue!r}: {down.apps}")
    # A callback: recorded before anything is said, then the agent, then the queue.
    for agent, dialled in (("8006", ["PJSIP/8006,30,g"]), ("", [])):
        call = hotline_call(dp, settings, "up", context=CONTEXTS["callback"],
                            variables={"HOTLINE_AGENT": agent, "HOTLINE_QUEUE": "social_security",
                                       "HOTLINE_CALL_NUMBER": "13800138000"})
        if call.index("MixMonitor") < 0 or call.index("MixMonitor") > min(call.index("Playback"), call.index("Queue")):
            problems.append("the callback is not recorded from its start")
        if _argss(call, "Dial") != dialled or _argss(call, "Queue") != ["social_security,c"]:
            problems.append(f"callback with agent {agent!r}: {call.apps}")
    # 回访: recorded, then the survey about the ticket, only with a live bridge.
    for bridge in ("up", "down"):
        call = hotline_call(dp, settings, bridge, context=CONTEXTS["follow_up"], variables={"HOTLINE_TICKET": "7"})
        survey = call.index("AGI", "agi:async")
        if not 0 <= call.index("MixMonitor") < (survey if survey >= 0 else len(call.executed)):
            problems.append("the follow-up call is not recorded")
        if (bridge == "up") != (_argss(call, "AGI") == ["agi:async,follow_up,7"]) or not call.hung_up:
            problems.append(f"follow-up call, bridge {bridge}: {call.apps}")
    return problems


def test_the_callback_offer_and_the_hotlines_own_calls_in_the_dialplan(etc: Path, settings: Settings) -> None:
    assert telephony_problems(etc, settings) == []
    for name, change in (
        ("queues.conf", sub(r"^context = hotline-callback\n", "")),
        ("extensions.conf", lambda t: t.replace("[hotline-callback]\n", "[hotline-callback]\nexten => 2,1,Hangup()\n")),
        ("extensions.conf", sub(r"AGI\(agi:async,callback,\$\{HOTLINE_QUEUE\}\)", "AGI(agi:async,callback)")),
        ("extensions.conf", sub(r"^( same => n\(offer\)),Set\(TIMEOUT\(absolute\)=180\)", r"\1,NoOp()")),
        ("extensions.conf", sub(r"^ same => n\(back\),Playback\(hotline/callback-unavailable\)\n",
                                " same => n(back),NoOp()\n")),
        ("extensions.conf", sub(r"^\[hotline-callback-out\]\nexten => s,1,Set\(CALL_ID=\$\{UNIQUEID\}\)\n"
                                r" same => n,MixMonitor\(.*\)\n", "[hotline-callback-out]\nexten => s,1,NoOp()\n")),
        ("extensions.conf", sub(r"Dial\(PJSIP/\$\{HOTLINE_AGENT\},30,g\)", "Dial(PJSIP/${HOTLINE_AGENT},30)")),
        ("extensions.conf", sub(r"AGI\(agi:async,follow_up,\$\{HOTLINE_TICKET\}\)", "AGI(agi:async,follow_up)")),
        ("extensions.conf", sub(r"^\[hotline-follow-up\]", "[hotline-followup]")),
    ):
        assert telephony_problems(edited(etc, name, change), settings), (name, change)


# --------------------------------------------------------------------------- supervisor codes

SPY_CODES = (("*1", "listen", ""), ("*2", "whisper", "w"), ("*3", "barge", "B"))


def endpoint_variables(pjsip: Config, endpoint: str) -> dict[str, str]:
    """The channel variables a call from ``endpoint`` starts with: its set_var lines."""
    variables = {}
    for line in pjsip.get(endpoint, type="endpoint").get_all("set_var"):
        name, _, value = line.partition("=")
        variables[name.strip()] = value.strip()
    return variables


def dial_from(etc: Path | tuple[Config, Dialplan], endpoint: str, number: str) -> Run:
    """What the dialplan does when the phone of ``endpoint`` dials ``number``: its
    context and channel variables from pjsip.conf (with the generated endpoints),
    CHANNEL(endpoint) its name, run through extensions.conf. ``etc`` is the folder or
    its parsed (pjsip.conf, dialplan)."""
    pjsip, dp = (load(etc, "pjsip.conf"), dialplan(load(etc, "extensions.conf"))) if isinstance(etc, Path) else etc
    ep = pjsip.get(endpoint, type="endpoint")

    def channel(item: str) -> str:
        if item != "endpoint":
            raise AssertionError(f"CHANNEL({item}) is not simulated")
        return endpoint

    return run(dp, ep.get("context") or "", number,
               variables=endpoint_variables(pjsip, endpoint), functions={"CHANNEL": channel})


def supervisor_problems(etc: Path, settings: Settings) -> list[str]:
    problems = []
    pjsip, dp = load(etc, "pjsip.conf"), dialplan(load(etc, "extensions.conf"))
    agents = sorted(c.name for c in pjsip.of_type("endpoint") if c.get("context") == "from-agents")
    roles = {ext: endpoint_variables(pjsip, ext).get(ROLE_VARIABLE) for ext in agents}
    # The generated endpoints agree with the settings: the supervisors, and only they.
    marked = sorted(ext for ext, role in roles.items() if role == SUPERVISOR_ROLE)
    if marked != sorted(settings.supervisors):
        problems.append(f"endpoints with {ROLE_VARIABLE}={SUPERVISOR_ROLE} {marked} != supervisors "
                        f"{sorted(settings.supervisors)}")
    others = [ext for ext, role in roles.items() if role not in (None, SUPERVISOR_ROLE)]
    if others:
        problems.append(f"endpoints with another {ROLE_VARIABLE}: {others}")
    if not settings.supervisors or len(settings.supervisors) == len(agents):
        return problems + ["the check needs at least one supervisor and one other agent"]
    target = next(ext for ext in agents if ext not in settings.supervisors)
    for code, mode, option in SPY_CODES:
        number = f"{code}{target}"
        for ext in agents:
            result = dial_from((pjsip, dp), ext, number)
            spied = result.index("ChanSpy")
            if roles[ext] != SUPERVISOR_ROLE:
                # Refused: no ChanSpy, a NOTICE line, something to hear, hung up.
                if spied >= 0:
                    problems.append(f"{ext} (not a supervisor) reaches ChanSpy with {number}")
                if result.index("Log", "NOTICE") < 0:
                    problems.append(f"{ext} dialling {number}: the refusal is not logged")
                if result.index("Playtones") < 0 and result.index("Playback") < 0:
                    problems.append(f"{ext} dialling {number}: hears no refusal")
                if not result.hung_up:
                    problems.append(f"{ext} dialling {number}: not hung up after the refusal")
                continue
            # A supervisor: UserEvent HotlineSpy (who, whom, how) and a NOTICE line, then ChanSpy.
            if spied < 0:
                problems.append(f"supervisor {ext} does not reach ChanSpy with {number}")
                continue
            argv = result.executed[spied].argv
            options = argv[1] if len(argv) > 1 else ""
            if argv[0] != f"PJSIP/{target}":
                problems.append(f"{number}: ChanSpy({argv[0]}) is not PJSIP/{target}")
            if not {"q", "E"} <= set(options) or (option and option not in options) or (
                    not option and set(options) & {"w", "B"}):
                problems.append(f"{number}: ChanSpy options {options!r} for {mode}")
            audit = result.index("UserEvent", "HotlineSpy")
            if not 0 <= audit < spied:
                problems.append(f"{number} from {ext}: no UserEvent(HotlineSpy) before ChanSpy")
            else:
                headers = result.executed[audit].argv[1:]
                wanted = [f"Spyer: {ext}", f"Target: {target}", f"Mode: {mode}"]
                if sorted(headers) != sorted(wanted):
                    problems.append(f"{number} from {ext}: UserEvent headers {headers} != {wanted}")
            notice = result.index("Log", "NOTICE")
            if not 0 <= notice < spied or ext not in result.executed[notice].args:
                problems.append(f"{number} from {ext}: no NOTICE naming the supervisor before ChanSpy")
    # A supervisor code reaches ChanSpy only through the check: every ChanSpy in the
    # dialplan is in an extension that starts with the Gosub into it.
    for step in dp.steps:
        if step.app == "ChanSpy":
            first = dp.extension(step.context, step.exten)[0]
            if first.app != "Gosub" or not first.args.startswith("hotline-supervisor,"):
                problems.append(f"{step.context},{step.exten} reaches ChanSpy without the supervisor check")
    return problems


def test_supervisor_codes_are_for_supervisors_only_and_logged(etc: Path, settings: Settings) -> None:
    assert settings.supervisors == ("8025",)
    assert supervisor_problems(etc, settings) == []
    refused = dial_from(etc, "8001", "*18006")
    assert refused.apps == ["Gosub", "GotoIf", "Log", "UserEvent", "Progress", "Playtones", "Wait", "Hangup"]
    assert refused.executed[2].args == "NOTICE,Supervisor code refused: endpoint 8001 is not a supervisor (listen on 8006)"
    allowed = dial_from(etc, "8025", "*28006")
    assert allowed.apps == ["Gosub", "GotoIf", "UserEvent", "Log", "Return", "ChanSpy", "Hangup"]
    assert allowed.executed[2].args == "HotlineSpy,Spyer: 8025,Target: 8006,Mode: whisper"
    assert allowed.executed[5].args == "PJSIP/8006,qEw"
    for name, change in (
        ("extensions.conf", sub(r"^exten => s,1,GotoIf\(.*\n", "exten => s,1,NoOp()\n")),  # no check
        ("extensions.conf", sub(r'"supervisor"\]', '"supervisor" | 1]')),  # a check that passes everyone
        ("extensions.conf", sub(r"^ same => n\(allowed\),UserEvent\(HotlineSpy,.*\n", " same => n(allowed),NoOp()\n")),
        ("extensions.conf", sub(r"^ same => n,Log\(NOTICE,Supervisor \$.*\n", "")),
        ("extensions.conf", sub(r"Mode: \$\{ARG1\}\)\n same => n,Log\(NOTICE,Supervisor", "Mode: listen)\n same => n,Log(NOTICE,Supervisor")),
        ("extensions.conf", sub(r"^exten => _\*28XXX,1,Gosub\(.*\n same => ", "exten => _*28XXX,1,")),  # whisper unchecked
        ("extensions.conf", sub(r"qEw\)", "qE)")),
        ("extensions.conf", lambda t: t + "\n[from-agents](+)\nexten => _*98XXX,1,ChanSpy(PJSIP/${EXTEN:2},q)\n"),
        ("pjsip_extensions.conf", sub(r'^(callerid = "坐席8001" <8001>\n)', r"\1set_var = HOTLINE_ROLE=supervisor\n")),
        ("pjsip_extensions.conf", sub(r"^set_var = HOTLINE_ROLE=supervisor\n", "")),
    ):
        broken = edited(etc, name, change)
        assert supervisor_problems(broken, settings), (name, change)


def test_supervisors_setting_is_validated(settings: Settings, tmp_path: Path) -> None:
    for supervisors, message in (
        (("9999",), "not extensions of any department"),
        (("8025", "8025"), "twice"),
    ):
        with pytest.raises(SettingsError, match=message):
            validate(dataclasses.replace(settings, supervisors=supervisors))
    text = (REPO / "config" / "hotline.toml").read_text(encoding="utf-8")
    for line in ('supervisors = "8025"', "supervisors = [8025]"):
        bad = tmp_path / "hotline.toml"
        bad.write_text(text.replace('supervisors = ["8025"]', line), encoding="utf-8")
        with pytest.raises(SettingsError, match="list of extensions"):
            load_settings(bad, env={})
    # Without the key nobody is a supervisor, and the generated endpoints say so.
    none = tmp_path / "none.toml"
    none.write_text(text.replace('supervisors = ["8025"]', ""), encoding="utf-8")
    nobody = load_settings(none, env={})
    assert nobody.supervisors == ()
    assert "set_var" not in render_generated(nobody)["pjsip_extensions.conf"]
    assert render_generated(settings)["pjsip_extensions.conf"].count("set_var = HOTLINE_ROLE=supervisor\n") == 1


# --------------------------------------------------------------------------- manager


def _python_files(packages: tuple[str, ...], skip: tuple[str, ...] = ()) -> list[Path]:
    files = []
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            if not any(relative.startswith(s) for s in skip):
                files.append(path)
    return files


def actions_in_code(packages: tuple[str, ...] = PRODUCT_PACKAGES) -> dict[str, list[str]]:
    """Every AMI action the product sends: the "Action" value of each dict literal
    (``{"Action": "Setvar", ...}``, ``dict(Action=...)``), action -> files. An action
    whose name is not a literal is reported as ``<computed>``: a right cannot be
    checked for it."""
    found: dict[str, list[str]] = {}
    for path in _python_files(packages):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            values = []
            if isinstance(node, ast.Dict):
                values = [v for k, v in zip(node.keys, node.values)
                          if isinstance(k, ast.Constant) and k.value == "Action"]
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
                values = [kw.value for kw in node.keywords if kw.arg == "Action"]
            for value in values:
                name = value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else "<computed>"
                found.setdefault(name, []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def events_in_code(packages: tuple[str, ...] = EVENT_CONSUMERS) -> dict[str, list[str]]:
    """The AMI events the product consumes: every string literal that is an event's
    name, as Asterisk spells it or lower-cased as the code compares it (subscriptions,
    the call tracker's handler table, the Shutdown check). event -> files."""
    names = {name: name for name in EVENT_CLASSES} | {name.lower(): name for name in EVENT_CLASSES}
    found: dict[str, list[str]] = {}
    for path in _python_files(packages, skip=("hotline/asterisk/",)):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.setdefault(names[node.value], []).append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def _rights(user, key: str) -> set[str]:
    return {r for r in (user.get(key) or "").replace(" ", "").split(",") if r}


def manager_problems(cfg: Config, settings: Settings, secret: str, actions: set[str], events: set[str]) -> list[str]:
    problems = []
    general = cfg.get("general")
    for key, value in (("enabled", "yes"), ("port", "5038"), ("bindaddr", "127.0.0.1"), ("timestampevents", "yes")):
        if general.get(key) != value:
            problems.append(f"[general] {key} = {general.get(key)!r}")
    users = cfg.find(settings.ami.username)
    if len(users) != 1:
        return problems + [f"no [{settings.ami.username}] user"]
    user = users[0]
    secrets = [line for line in user.lines if line.key == "secret"]
    if len(secrets) != 1 or not str(secrets[0].path).endswith("secrets/manager_secret.conf"):
        problems.append("the secret does not come from #include secrets/manager_secret.conf")
    elif secrets[0].value != secret:
        problems.append("the included secret is not HOTLINE_AMI_SECRET")
    if user.get_all("deny") != ["0.0.0.0/0.0.0.0"] or user.get_all("permit") != ["127.0.0.1/255.255.255.255"]:
        problems.append("AMI user is not deny all / permit 127.0.0.1 only")
    unknown = sorted(a for a in actions if a not in ACTION_CLASSES)
    if unknown:
        return problems + [f"actions with no known class (add them to hotline/asterisk/ami_rights.py): {unknown}"]
    read, write = _rights(user, "read"), _rights(user, "write")
    need_write, need_read = needed_write_classes(actions), needed_read_classes(events)
    for kind, granted, needed in (("write", write, need_write), ("read", read, need_read)):
        if "all" in granted:
            problems.append(f"{kind} = all")
        for cls in sorted(set(needed) - granted):
            problems.append(f"{kind} lacks {cls}, needed by {', '.join(needed[cls])}")
        for cls in sorted(granted - set(needed) - {"all"}):
            problems.append(f"{kind} grants {cls}, which nothing in the code needs")
    # Each granted class says in the comment above its line which action or event needs it.
    reasons = _rights_comments(Path(cfg.files[0]))
    for kind, needed in (("write", need_write), ("read", need_read)):
        for cls, users_of in needed.items():
            if not re.search(rf"^;\s+{cls}\s+- .*\b{re.escape(users_of[0])}\b", reasons[kind], re.M):
                problems.append(f"no comment in manager.conf says why {kind} needs {cls} ({users_of[0]})")
    return problems


def _rights_comments(path: Path) -> dict[str, str]:
    """The comment lines under "; read:" / "; write:" up to their "not granted" part."""
    sections: dict[str, list[str]] = {"read": [], "write": []}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith(";"):
            current = None
        elif re.match(r";\s*(read|write):", line):
            current = re.match(r";\s*(read|write):", line).group(1)
        elif re.match(r";\s*not granted", line):
            current = None
        elif current:
            sections[current].append(line)
    return {kind: "\n".join(lines) for kind, lines in sections.items()}


def test_the_code_sends_and_consumes_what_the_scan_finds() -> None:
    """The scans behind the rights check find the real traffic (a scan that found
    nothing would let every right look unneeded, or needed)."""
    actions = actions_in_code()
    assert "<computed>" not in actions, actions.get("<computed>")
    assert {"Login", "Logoff", "Ping", "Setvar", "CoreShowChannels", "QueueStatus", "AGI"} <= set(actions)
    events = events_in_code()
    assert {"Newchannel", "Hangup", "VarSet", "AsyncAGIStart", "AsyncAGIExec", "Cdr",
            "QueueMemberStatus", "AgentConnect", "Shutdown"} <= set(events)
    assert "DTMFBegin" not in events and "UserEvent" in events        # the supervisor codes' audit


def test_event_classes_agree_with_the_captures() -> None:
    """hotline/asterisk/ami_rights.py's event classes are what Asterisk 22.10.1 put in
    the Privilege header of every event it sent in the captures."""
    seen: dict[str, set[str]] = {}
    for path in sorted(ASTERISK_FIXTURES.glob("*.ami")):
        event = None
        for line in path.read_bytes().decode("utf-8").replace("\r", "").splitlines():
            if line.startswith("Event: "):
                event = line[len("Event: "):]
            elif line.startswith("Privilege: ") and event:
                seen.setdefault(event, set()).add(line[len("Privilege: "):].split(",")[0])
            elif not line:
                event = None
    assert len(seen) > 40
    assert {e: c for e, c in seen.items() if len(c) != 1} == {}
    assert sorted(e for e in seen if e not in EVENT_CLASSES) == []
    assert {e: EVENT_CLASSES[e] for e in seen if {EVENT_CLASSES[e]} != seen[e]} == {}


def test_manager_grants_exactly_the_rights_the_code_needs(etc: Path, settings: Settings) -> None:
    actions, events = set(actions_in_code()), set(events_in_code())
    assert manager_problems(load(etc, "manager.conf"), settings, AMI_SECRET, actions, events) == []
    # Today that is: write call (Setvar, Redirect), reporting (CoreShowChannels), agent
    # (QueueAdd/QueueRemove/QueuePause), agi (AGI), originate (the tickets' callbacks and
    # 回访 calls); read system, call, agent, dialplan, agi, cdr, user (the supervisor codes'
    # UserEvents). Never system, command or config writes, never the callers' DTMF.
    user = load(etc, "manager.conf").get(settings.ami.username)
    assert _rights(user, "write") == {"call", "reporting", "agent", "agi", "originate"}
    assert _rights(user, "read") == {"system", "call", "agent", "dialplan", "agi", "cdr", "user"}
    assert "Originate" in actions and "OriginateResponse" in events
    for change in (
        sub(r"^write = (.*)$", r"write = \1,user"),  # a right nothing needs
        sub(r"^write = (.*),originate$", r"write = \1"),  # callbacks would be refused
        sub(r"^;   originate - Originate.*\n", ""),  # a class without its reason
        sub(r"^write = (.*)$", r"write = \1,system"),
        sub(r"^write = (.*),agi,", r"write = \1,"),  # AGI would be refused
        sub(r"^write = call,", "write = "),  # the heartbeat Setvar would be refused
        sub(r"^write = ", "write = all,"),
        sub(r"^read = (.*)$", r"read = \1,dtmf"),  # the callers' key presses
        sub(r"^read = (.*),cdr,", r"read = \1,"),  # no Cdr events
        sub(r"^read = (.*)agi,", r"read = \1"),
        sub(r"^;   reporting - CoreShowChannels.*\n", ""),  # a class without its reason
        sub(r"^#include secrets/manager_secret.conf$", "secret = inline"),
        sub(r"^deny = .*\n", ""),
        sub(r"^\[hotline\]$", "[someone-else]"),
    ):
        broken = edited(etc, "manager.conf", change)
        assert manager_problems(load(broken, "manager.conf"), settings, AMI_SECRET, actions, events), change
    # A new action in the code without its right in manager.conf is noticed too.
    cfg = load(etc, "manager.conf")
    assert manager_problems(cfg, settings, AMI_SECRET, actions | {"UserEvent"}, events)[0] == (
        "write lacks user, needed by UserEvent")
    without_agent = load(edited(etc, "manager.conf", sub(r"^write = (.*),agent,", r"write = \1,")), "manager.conf")
    assert manager_problems(without_agent, settings, AMI_SECRET, actions, events)[0] == (
        "write lacks agent, needed by QueueAdd, QueuePause, QueueRemove")
    assert manager_problems(cfg, settings, AMI_SECRET, actions | {"Getvar"}, events) == []  # call covers it
    assert manager_problems(cfg, settings, AMI_SECRET, actions, events - {"UserEvent"})[0] == (
        "read grants user, which nothing in the code needs")
    without_user = load(edited(etc, "manager.conf", sub(r"^read = (.*),user$", r"read = \1")), "manager.conf")
    assert manager_problems(without_user, settings, AMI_SECRET, actions, events)[0] == (
        "read lacks user, needed by UserEvent")
    assert manager_problems(cfg, settings, AMI_SECRET, actions - {"AGI"}, events)[0] == (
        "write grants agi, which nothing in the code needs")
    assert "no known class" in manager_problems(cfg, settings, AMI_SECRET, actions | {"FooBar"}, events)[0]


def test_needed_classes_prefer_the_least_powerful() -> None:
    assert needed_write_classes(["CoreShowChannels"]) == {"reporting": ["CoreShowChannels"]}
    assert needed_write_classes(["CoreShowChannels", "MixMonitor"]) == {"system": ["MixMonitor", "CoreShowChannels"]}
    assert needed_write_classes(["Hangup"]) == {"call": ["Hangup"]}
    assert needed_write_classes(["Login", "Ping", "QueueStatus"]) == {}
    with pytest.raises(KeyError):
        needed_write_classes(["NoSuchAction"])


# --------------------------------------------------------------------------- modules


def loaded_modules(cfg: Config) -> tuple[set[str], set[str], set[str]]:
    """(every module modules.conf loads, the "require"d ones, the "noload"ed ones)."""
    modules = cfg.get("modules")
    required = {module_name(m) for m in modules.get_all("require")}
    loaded = {module_name(m) for m in modules.get_all("load")} | required
    return loaded, required, {module_name(m) for m in modules.get_all("noload")}


def _closure(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen or name in BUILTIN_MODULES:
            continue
        seen.add(name)
        todo.extend(MODULES[name].requires if name in MODULES else ())
    return seen


def module_problems(cfg: Config) -> list[str]:
    loaded, required, noload = loaded_modules(cfg)
    modules = cfg.get("modules")
    problems = []
    if modules.get("autoload") != "no":
        problems.append("autoload is not no: every module on disk would load")
    if REQUIRED_MODULES - required:
        problems.append(f"not required: {sorted(REQUIRED_MODULES - required)}")
    if noload:
        problems.append(f"noload lines are pointless with autoload = no: {sorted(noload)}")
    if loaded - set(MODULES):
        problems.append(f"loaded but not in hotline/asterisk/modules.py: {sorted(loaded - set(MODULES))}")
    if set(MODULES) - loaded:
        problems.append(f"in hotline/asterisk/modules.py but not loaded: {sorted(set(MODULES) - loaded)}")
    for name in sorted(loaded & set(MODULES)):
        missing = [r for r in MODULES[name].requires if r not in loaded and r not in BUILTIN_MODULES]
        if missing:
            problems.append(f"{name} requires {missing}, which are not loaded: it would fail to load")
    if loaded & set(NOISY_MODULES):
        problems.append(f"noisy modules loaded: {sorted(loaded & set(NOISY_MODULES))}")
    # A required module that fails stops Asterisk: every module it needs must have
    # had its requirements read from the sources, not guessed.
    for name in sorted(required):
        unread = sorted(m for m in _closure(name) if m in MODULES and not MODULES[m].read)
        if unread:
            problems.append(f"{name} is required but depends on modules not read from the sources: {unread}")
    return problems


def test_modules(etc: Path) -> None:
    assert module_problems(load(etc, "modules.conf")) == []
    for change in (
        sub(r"^require = app_chanspy\.so.*\n", ""),
        sub(r"^autoload = no$", "autoload = yes"),
        sub(r"^load = res_sorcery_astdb\.so.*\n", ""),  # res_pjsip requires it
        sub(r"^load = res_speech\.so.*\n", ""),  # res_agi requires it
        lambda t: t + "load = app_voicemail.so\n",  # logs an error at every start
        lambda t: t + "load = res_ari.so\n",
        lambda t: t + "load = app_followme.so\n",  # not in the table
        sub(r"^load = codec_alaw\.so.*\n", ""),  # in the table but not loaded
    ):
        assert module_problems(load(edited(etc, "modules.conf", change), "modules.conf")), change
    # Requiring a module whose dependencies were not read from the sources is refused.
    assert module_problems(load(edited(etc, "modules.conf", sub(r"^load = app_dial\.so", "require = app_dial.so")),
                                "modules.conf")) == []
    assert module_problems(load(edited(etc, "modules.conf", sub(r"^load = func_global\.so", "require = func_global.so")),
                                "modules.conf"))


def applications_and_functions(dp: Dialplan) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Applications and dialplan functions extensions.conf uses: name -> where."""
    apps: dict[str, list[str]] = {}
    funcs: dict[str, list[str]] = {}
    for step in dp.steps:
        where = f"{step.context},{step.exten},{step.priority}"
        apps.setdefault(step.app.lower(), []).append(where)
        for name in re.findall(r"([A-Z][A-Z_]*)\(", step.args):
            funcs.setdefault(name, []).append(where)
    return apps, funcs


def agi_uses_in_code() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Applications the voice menu runs with AGI ``EXEC`` and functions it sets or
    reads with ``SET VARIABLE`` / ``GET VARIABLE``, from the code's string literals
    (f-string parts included)."""
    apps: dict[str, list[str]] = {}
    funcs: dict[str, list[str]] = {}
    for path in _python_files(("ivr", "asr", "tickets")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                for name in re.findall(r"^EXEC (\w+)", node.value):
                    apps.setdefault(name.lower(), []).append(where)
                for name in re.findall(r"^[SG]ET VARIABLE ([A-Z][A-Z_]*)\(", node.value):
                    funcs.setdefault(name, []).append(where)
    return apps, funcs


def provider_problems(cfg: Config, dp: Dialplan) -> list[str]:
    loaded, _, _ = loaded_modules(cfg)
    problems = []
    dp_apps, dp_funcs = applications_and_functions(dp)
    code_apps, code_funcs = agi_uses_in_code()
    for kind, table, uses in (("application", APPLICATION_MODULE, dp_apps | code_apps),
                              ("function", FUNCTION_MODULE, dp_funcs | code_funcs)):
        for name, where in sorted(uses.items()):
            module = table.get(name)
            if module is None:
                problems.append(f"{kind} {name} ({where[0]}) is not in hotline/asterisk/modules.py")
            elif module != CORE and module not in loaded:
                problems.append(f"{kind} {name} ({where[0]}) needs {module}, which is not loaded")
    return problems


def test_every_application_and_function_has_its_module_loaded(etc: Path) -> None:
    cfg, dp = load(etc, "modules.conf"), dialplan(load(etc, "extensions.conf"))
    apps, funcs = applications_and_functions(dp)
    code_apps, code_funcs = agi_uses_in_code()
    assert {"queue", "mixmonitor", "agi", "chanspy", "log", "gosub"} <= set(apps)
    assert {"CALLERID", "STRFTIME", "GLOBAL", "TIMEOUT", "CHANNEL"} <= set(funcs)
    assert set(code_apps) >= {"audiosocket", "queue"} and {"TIMEOUT", "QUEUE_MEMBER"} <= set(code_funcs)
    assert provider_problems(cfg, dp) == []
    for broken_conf, broken_plan in (
        ("modules.conf", sub(r"^load = app_verbose\.so.*\n", "")),  # Log() has no module
        ("modules.conf", sub(r"^load = func_strings\.so.*\n", "")),  # STRFTIME
        ("modules.conf", sub(r"^require = app_audiosocket\.so.*\n", "")),  # the menu's EXEC
        ("modules.conf", sub(r"^load = app_playback\.so.*\n", "")),  # the callback offer's Playback()
        ("extensions.conf", lambda t: t + "exten => 9,1,Read(X,hello)\n"),  # app_read: not in the table
        ("extensions.conf", lambda t: t + "exten => 9,1,Set(X=${SHELL(id)})\n"),  # unknown function
    ):
        broken = edited(etc, broken_conf, broken_plan)
        assert provider_problems(load(broken, "modules.conf"), dialplan(load(broken, "extensions.conf"))), broken_plan


def test_builtin_modules_have_their_config_files(etc: Path) -> None:
    """The built-in modules that logged "Unable to load config file" in the capture's
    start-up (acl, udptl, ccss; cel had its file there) and res_pjproject find theirs."""
    for name in ("acl.conf", "udptl.conf", "ccss.conf", "cel.conf", "pjproject.conf"):
        assert (etc / name).is_file(), name
        load(etc, name)
    assert load(etc, "cel.conf").get("general").get("enable") == "no"


def test_other_files(etc: Path) -> None:
    rtp = load(etc, "rtp.conf").get("general")
    assert (rtp.get("rtpstart"), rtp.get("rtpend")) == ("10000", "10199")
    assert load(etc, "cdr_manager.conf").get("general").get("enabled") == "yes"
    assert load(etc, "cdr.conf").get("general").get("enable") == "yes"
    assert load(etc, "indications.conf").get("general").get("country") == "cn"
    assert load(etc, "musiconhold.conf").get("default").get("mode") == "files"


# --------------------------------------------------------------------------- logging


def logger_problems(cfg: Config) -> list[str]:
    """Nothing persistent records the callers' key presses or the verbose/AGI trace;
    the security events are kept in a file."""
    problems = []
    channels = {}
    for line in cfg.get("logfiles").lines:
        levels = [lv.strip() for lv in re.sub(r"^\[\w+\]", "", line.value).split(",") if lv.strip()]
        channels[line.key] = levels
    for name, levels in channels.items():
        bare = {re.sub(r"\(.*\)$", "", lv) for lv in levels}
        if "*" in bare:
            problems.append(f"{name} logs every level (*)")
        if "dtmf" in bare:
            problems.append(f"{name} records DTMF (the callers' key presses)")
        if {"verbose", "debug", "trace"} & bare:
            problems.append(f"{name} records {sorted({'verbose', 'debug', 'trace'} & bare)}")
    files = {n: lv for n, lv in channels.items() if n != "console" and not n.startswith("syslog")}
    if not any("security" in lv for lv in files.values()):
        problems.append("no log file keeps the security events")
    if not any({"notice", "warning", "error"} <= set(lv) for lv in files.values()):
        problems.append("no log file keeps notice, warning and error")
    return problems


def test_logger_keeps_no_key_presses_and_keeps_security_events(etc: Path) -> None:
    assert logger_problems(load(etc, "logger.conf")) == []
    for change in (
        sub(r"^messages.log => notice,warning,error$", "messages.log => notice,warning,error,dtmf"),
        sub(r"^messages.log => .*$", "full.log => notice,warning,error,verbose,dtmf"),  # the old full.log
        lambda t: t + "debug.log => verbose(3)\n",
        sub(r"^console => .*$", "console => notice,warning,error,verbose"),
        sub(r"^security.log => security\n", ""),
        lambda t: t + "everything.log => *\n",
    ):
        assert logger_problems(load(edited(etc, "logger.conf", change), "logger.conf")), change


# --------------------------------------------------------------------------- TLS option


def enable_optional_tls(text: str) -> str:
    """pjsip.conf with its "BEGIN optional TLS" blocks uncommented, as the README says."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith("; BEGIN optional TLS"):
            inside = True
        elif line.startswith("; END optional TLS"):
            inside = False
        elif inside and line.startswith(";") and not line.startswith("; ") and line.strip() != ";":
            line = line[1:]
        out.append(line)
    return "".join(out)


def tls_problems(cfg: Config, settings: Settings) -> list[str]:
    problems = []
    tls = [c for c in cfg.of_type("transport") if c.get("protocol") == "tls"]
    if len(tls) != 1:
        return [f"{len(tls)} TLS transports"]
    transport = tls[0]
    if not (transport.get("bind") or "").endswith(":5061"):
        problems.append(f"TLS transport binds {transport.get('bind')!r}, not port 5061")
    for key in ("cert_file", "priv_key_file"):
        path = transport.get(key) or ""
        # /etc/asterisk is this repository, mounted read-only: keys never go there.
        if not path.startswith("/") or path.startswith("/etc/asterisk/"):
            problems.append(f"{key} = {path!r} is not an absolute path outside /etc/asterisk")
    if (transport.get("method") or "") not in ("tlsv1_2", "tlsv1_3"):
        problems.append(f"TLS method {transport.get('method')!r}")
    for ext in sorted(e for d in settings.departments for e in d.extensions):
        ep = cfg.get(ext, type="endpoint")
        if ep.get("transport") != transport.name or ep.get("media_encryption") != "sdes" \
                or ep.get("media_encryption_optimistic") != "no":
            problems.append(f"{ext}: transport {ep.get('transport')!r}, media_encryption "
                            f"{ep.get('media_encryption')!r} (sdes keys need the TLS transport)")
            break
    carrier = [c for c in cfg.of_type("endpoint") if c.get("context") == "from-trunk"]
    if any(c.get("transport") != "transport-udp" for c in carrier):
        problems.append("the carrier left transport-udp")
    return problems


def test_tls_and_srtp_are_a_documented_option_that_parses(etc: Path, settings: Settings) -> None:
    # Off as shipped: the agents stay on UDP, nothing listens on 5061.
    shipped = load(etc, "pjsip.conf")
    assert [c.name for c in shipped.of_type("transport")] == ["transport-udp"]
    assert shipped.get("8001", type="endpoint").get("media_encryption") is None
    # Uncommented as the comments (and the README) say, it is a complete configuration.
    text = (etc / "pjsip.conf").read_text(encoding="utf-8")
    assert text.count("; BEGIN optional TLS") == 2 and enable_optional_tls(text) != text
    on = edited(etc, "pjsip.conf", enable_optional_tls)
    assert tls_problems(load(on, "pjsip.conf"), settings) == []
    assert pjsip_problems(load(on, "pjsip.conf"), settings, load(on, "secrets/pjsip_auth.conf")) == []
    for change in (
        sub(r"^;media_encryption = sdes\n", ""),  # TLS without SRTP
        sub(r"^;transport = transport-tls\n", ""),  # SDES keys over UDP
        sub(r"^;cert_file = .*$", ";cert_file = /etc/asterisk/keys/asterisk.crt"),
        sub(r"^;bind = 0.0.0.0:5061$", ";bind = 0.0.0.0:5060"),
    ):
        broken = edited(etc, "pjsip.conf", lambda t, c=change: enable_optional_tls(c(t)))
        assert tls_problems(load(broken, "pjsip.conf"), settings), change


# --------------------------------------------------------------------------- docker


def _mounts(service: dict) -> list[tuple[str, str, bool]]:
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((str(v.get("source")), str(v.get("target")), bool(v.get("read_only"))))
        else:
            parts = str(v).split(":")
            out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


def compose_problems(doc: dict, settings: Settings) -> list[str]:
    problems = []
    services = doc.get("services") or {}
    missing = {"postgres", "hotline-init", "asterisk", "hotline"} - set(services)
    if missing:
        return [f"missing services {sorted(missing)}"]
    volumes = set((doc.get("volumes") or {}).keys())
    pg, init, ast, app = (services[n] for n in ("postgres", "hotline-init", "asterisk", "hotline"))

    if not str(pg.get("image", "")).startswith("postgres:16"):
        problems.append("postgres is not postgres:16")
    if "pg_isready" not in " ".join(map(str, (pg.get("healthcheck") or {}).get("test") or [])):
        problems.append("postgres has no pg_isready healthcheck")
    if not any(src in volumes and dst == "/var/lib/postgresql/data" for src, dst, _ in _mounts(pg)):
        problems.append("postgres data is not on a named volume")

    if _command(init)[-3:] != ["asterisk-secrets", "--dir", "/etc/asterisk/secrets"]:
        problems.append(f"hotline-init command {_command(init)}")
    if ("./config/asterisk/secrets", "/etc/asterisk/secrets", False) not in _mounts(init):
        problems.append("hotline-init does not write into ./config/asterisk/secrets")
    if "HOTLINE_AMI_SECRET" not in _env(init):
        problems.append("hotline-init gets no HOTLINE_AMI_SECRET")

    image = str(ast.get("image", ""))
    if not re.fullmatch(r"[\w./-]+:22\.\d+\.\d+[\w.-]*", image):
        problems.append(f"asterisk image {image!r} is not a pinned Asterisk 22 tag")
    if ast.get("network_mode") != "host" or app.get("network_mode") != "host":
        problems.append("asterisk and hotline must use network_mode: host")
    ast_mounts, app_mounts = _mounts(ast), _mounts(app)
    if ("./config/asterisk", "/etc/asterisk", True) not in ast_mounts:
        problems.append("./config/asterisk is not mounted read-only at /etc/asterisk")
    rec_ast = [src for src, dst, _ in ast_mounts if dst == settings.recordings.asterisk_dir]
    rec_app = [(src, ro) for src, dst, ro in app_mounts if dst == settings.recordings.local_dir]
    if len(rec_ast) != 1 or rec_ast[0] not in volumes:
        problems.append(f"asterisk has no named volume at recordings.asterisk_dir {settings.recordings.asterisk_dir}")
    elif rec_app != [(rec_ast[0], True)]:
        problems.append(f"hotline does not mount the same volume read-only at recordings.local_dir {settings.recordings.local_dir}")
    logs_ast = [src for src, dst, _ in ast_mounts if dst == "/var/log/asterisk"]
    logs_app = [(src, dst, ro) for src, dst, ro in app_mounts if logs_ast and src == logs_ast[0]]
    for name, path in (("queue_log", settings.reconcile.queue_log), ("cdr_csv", settings.reconcile.cdr_csv)):
        if path and not any(ro and Path(path).is_relative_to(dst) for _, dst, ro in logs_app):
            problems.append(f"hotline does not see Asterisk's log volume read-only at reconcile.{name} {path}")
    dep = (ast.get("depends_on") or {}).get("hotline-init") if isinstance(ast.get("depends_on"), dict) else None
    if not dep or dep.get("condition") != "service_completed_successfully":
        problems.append("asterisk does not wait for hotline-init to complete successfully")

    cmd = _command(app)
    if "serve" not in cmd or "--migrate" not in cmd:
        problems.append(f"hotline command {cmd}")
    env = _env(app)
    if "127.0.0.1:5432" not in env.get("HOTLINE_DATABASE_URL", ""):
        problems.append("HOTLINE_DATABASE_URL does not point at 127.0.0.1:5432")
    if "HOTLINE_AMI_SECRET" not in env.get("HOTLINE_AMI_SECRET", ""):
        problems.append("HOTLINE_AMI_SECRET is not taken from the environment")
    # The AMI secret has no default (a default in a public file is public): it is
    # given in the environment, or empty, and then hotline-init generates one that the
    # service reads from the secrets folder. No service runs in development mode.
    for name, service in services.items():
        service_env = _env(service)
        secret = service_env.get("HOTLINE_AMI_SECRET")
        if secret is not None and not re.fullmatch(r"\$\{HOTLINE_AMI_SECRET(:-|:\?[^}]+)?\}", secret):
            problems.append(f"{name}: HOTLINE_AMI_SECRET {secret!r} has a default")
        if "HOTLINE_DEVELOPMENT" in service_env:
            problems.append(f"{name}: HOTLINE_DEVELOPMENT in docker-compose.yml")
    secret_file = env.get("HOTLINE_AMI_SECRET_FILE", "")
    secret_mounts = [dst for src, dst, ro in app_mounts if src == "./config/asterisk/secrets" and ro]
    if not any(secret_file == f"{dst}/ami_secret" for dst in secret_mounts):
        problems.append("hotline does not read the generated ami_secret from a read-only secrets mount")
    if env.get("HOTLINE_LOG_FORMAT") != "json":
        problems.append("HOTLINE_LOG_FORMAT is not json")
    if not any(p.startswith("127.0.0.1:5432:") for p in map(str, pg.get("ports") or [])):
        problems.append("postgres is not published on 127.0.0.1:5432")
    return problems


def test_docker_compose(settings: Settings) -> None:
    doc = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert compose_problems(doc, settings) == []
    app_rec = f"recordings:{settings.recordings.local_dir}:ro"
    breakages: list[Callable[[dict], None]] = [
        lambda d: d["services"]["hotline"]["volumes"].remove(app_rec),
        lambda d: d["services"]["hotline"]["volumes"].__setitem__(
            d["services"]["hotline"]["volumes"].index(app_rec), f"other:{settings.recordings.local_dir}:ro"),
        lambda d: d["services"]["asterisk"].__setitem__("image", "andrius/asterisk:latest"),
        lambda d: d["services"]["asterisk"].pop("depends_on"),
        lambda d: d["services"]["asterisk"]["volumes"].__setitem__(0, "./config/asterisk:/etc/asterisk"),
        lambda d: d["services"]["hotline"].pop("network_mode"),
        lambda d: d.pop("volumes"),
        lambda d: d["services"].pop("hotline-init"),
        lambda d: d["services"]["hotline"]["environment"].__setitem__(
            "HOTLINE_AMI_SECRET", "${HOTLINE_AMI_SECRET:-dev-only-change-me}"),
        lambda d: d["services"]["hotline-init"]["environment"].__setitem__(
            "HOTLINE_AMI_SECRET", "${HOTLINE_AMI_SECRET:-changeme}"),
        lambda d: d["services"]["hotline"]["environment"].pop("HOTLINE_AMI_SECRET_FILE"),
        lambda d: d["services"]["hotline"]["volumes"].remove("./config/asterisk/secrets:/etc/hotline/secrets:ro"),
        lambda d: d["services"]["hotline"]["environment"].__setitem__("HOTLINE_DEVELOPMENT", "1"),
        lambda d: d["services"]["hotline"]["volumes"].remove("asterisk-logs:/var/log/asterisk:ro"),
        lambda d: d["services"]["hotline"]["volumes"].__setitem__(
            d["services"]["hotline"]["volumes"].index("asterisk-logs:/var/log/asterisk:ro"),
            "asterisk-logs:/var/log/asterisk"),
    ]
    for breakage in breakages:
        broken = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
        breakage(broken)
        assert compose_problems(broken, settings), breakage


def test_dockerfile() -> None:
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim-bookworm$", text, re.M)
    assert re.search(r"^RUN pip install \.", text, re.M)
    assert re.search(r'^ENTRYPOINT \["hotline"\]$', text, re.M)
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "config/asterisk/secrets" in ignored and ".venv" in ignored


def test_dockerfile_fetches_and_verifies_the_speech_model() -> None:
    """The image gets the Mandarin model at build time, checked with the project's
    checksums, and the service finds it where the build put it."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    model = re.search(r"^ARG VOSK_MODEL=(\S+)$", text, re.M)[1]
    assert (REPO / "asr" / "engine" / "checksums" / f"{model}.sha256").exists()
    assert "COPY asr/engine/checksums/${VOSK_MODEL}.sha256 /tmp/model.sha256" in text
    assert re.search(r"sha256sum -c /tmp/model\.sha256", text)
    assert re.search(r"HOTLINE_ASR_MODEL_PATH=/opt/models/\$\{VOSK_MODEL\}", text)
    assert "COPY --from=speech-model /opt/models /opt/models" in text
    assert re.search(r"apt-get install .*espeak-ng sox", text)
    settings = load_settings(env={})
    assert Path(settings.asr.model_checksums).name == f"{model}.sha256"
    sums = (REPO / "asr" / "engine" / "checksums" / f"{model}.sha256").read_text().split()
    assert sums[1::2] == ["am/final.mdl", "graph/HCLr.fst", "graph/Gr.fst", "ivector/final.ie"]


def persisted_record_problems(etc: Path, settings: Settings) -> list[str]:
    """Asterisk must write what the catch-up (ivr/calls/catch_up.py) reads, where it
    reads it and in the format its parsers expect (ivr/calls/asterisk_logs.py)."""
    problems = []
    logdir = load(etc, "asterisk.conf").get("directories").get("astlogdir", "/var/log/asterisk")
    cdr = load(etc, "cdr.conf")
    if (cdr.get("general").get("enable") or "yes").lower() not in ("yes", "true", "1", "on"):
        problems.append("cdr.conf: CDRs are disabled")
    csv = cdr.find("csv")
    for option in ("usegmtime", "loguniqueid", "loguserfield"):
        if not csv or (csv[0].get(option) or "no").lower() not in ("yes", "true", "1", "on"):
            problems.append(f"cdr.conf [csv] {option} is not yes: Master.csv would not be what the catch-up parses")
    if settings.reconcile.cdr_csv != f"{logdir}/cdr-csv/Master.csv":
        problems.append(f"reconcile.cdr_csv {settings.reconcile.cdr_csv} is not {logdir}/cdr-csv/Master.csv")
    general = load(etc, "logger.conf").find("general")
    queue_log = (general[0].get("queue_log") if general else None) or "yes"
    name = (general[0].get("queue_log_name") if general else None) or "queue_log"
    if queue_log.lower() not in ("yes", "true", "1", "on"):
        problems.append("logger.conf: queue_log is off")
    if settings.reconcile.queue_log != f"{logdir}/{name}":
        problems.append(f"reconcile.queue_log {settings.reconcile.queue_log} is not {logdir}/{name}")
    return problems


def test_asterisk_writes_the_records_the_catch_up_reads(etc: Path, settings: Settings) -> None:
    assert persisted_record_problems(etc, settings) == []
    for name, change in (("cdr.conf", sub(r"^loguniqueid = yes", "loguniqueid = no")),
                         ("cdr.conf", sub(r"^usegmtime = yes\n", "")),
                         ("logger.conf", sub(r"^\[general\]$", "[general]\nqueue_log = no")),
                         ("logger.conf", sub(r"^\[general\]$", "[general]\nqueue_log_name = qlog"))):
        assert persisted_record_problems(edited(etc, name, change), settings), (name, change)
