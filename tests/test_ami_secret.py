"""The AMI secret: `hotline serve` and `hotline asterisk-secrets` refuse a weak or
published one (the old compose default dev-only-change-me, empty, short) unless
development mode is explicit (HOTLINE_DEVELOPMENT=1 or [service] development = true)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline import cli
from hotline.asterisk.secrets import MIN_AMI_SECRET_LENGTH, ami_secret_problem
from hotline.cli import main
from hotline.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
GOOD_SECRET = "9f2c4e7a1b3d5f60a8c2e4b6d8f01357"  # like `openssl rand -hex 16`


@pytest.fixture
def served(monkeypatch):
    """Stands in for the real service: records each start instead of serving (so a
    check that lets a weak secret through fails here instead of hanging)."""
    starts: list[dict] = []

    async def fake_serve(settings, run_migrations, web_only):
        starts.append({"secret": settings.ami.secret, "web_only": web_only,
                       "development": settings.service.development})

    monkeypatch.setattr(cli, "_serve", fake_serve)
    monkeypatch.delenv("HOTLINE_DEVELOPMENT", raising=False)
    monkeypatch.delenv("HOTLINE_CONFIG", raising=False)
    return starts


@pytest.mark.parametrize("secret", ["dev-only-change-me", "", "   ", "s3cret", "CHANGEME", "short-secret-15"])
def test_serve_refuses_a_weak_ami_secret(served, monkeypatch, capsys, secret):
    monkeypatch.setenv("HOTLINE_AMI_SECRET", secret)
    with pytest.raises(SystemExit) as stopped:
        main(["serve"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and "HOTLINE_AMI_SECRET" in err and "HOTLINE_DEVELOPMENT=1" in err
    assert secret.strip() == "" or secret not in err  # the secret itself is never printed
    assert served == []


def test_serve_starts_with_a_strong_secret(served, monkeypatch):
    monkeypatch.setenv("HOTLINE_AMI_SECRET", GOOD_SECRET)
    assert main(["serve"]) == 0
    assert served == [{"secret": GOOD_SECRET, "web_only": False, "development": False}]


def test_a_web_only_process_never_logs_in_to_ami(served, monkeypatch):
    monkeypatch.setenv("HOTLINE_AMI_SECRET", "dev-only-change-me")
    assert main(["serve", "--web-only"]) == 0
    assert served == [{"secret": "dev-only-change-me", "web_only": True, "development": False}]


@pytest.mark.parametrize("flag", ["1", "true", "YES", "on"])
def test_development_mode_from_the_environment_allows_it_with_a_warning(served, monkeypatch, capsys, flag):
    monkeypatch.setenv("HOTLINE_AMI_SECRET", "dev-only-change-me")
    monkeypatch.setenv("HOTLINE_DEVELOPMENT", flag)
    assert main(["serve"]) == 0
    assert served == [{"secret": "dev-only-change-me", "web_only": False, "development": True}]
    assert "hotline.development_mode.weak_ami_secret" in capsys.readouterr().err


def test_development_mode_from_the_settings_file(served, monkeypatch, tmp_path):
    text = (REPO / "config" / "hotline.toml").read_text(encoding="utf-8")
    assert "\ndevelopment = false\n" in text  # shipped off
    dev = tmp_path / "hotline.toml"
    dev.write_text(text.replace("\ndevelopment = false\n", "\ndevelopment = true\n"), encoding="utf-8")
    monkeypatch.setenv("HOTLINE_AMI_SECRET", "")
    assert main(["--config", str(dev), "serve"]) == 0
    assert served[0]["development"] is True
    # ... and HOTLINE_DEVELOPMENT=0 overrides the file.
    monkeypatch.setenv("HOTLINE_DEVELOPMENT", "0")
    with pytest.raises(SystemExit):
        main(["--config", str(dev), "serve"])
    assert len(served) == 1


def test_development_mode_must_be_a_clear_yes_or_no(served, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HOTLINE_AMI_SECRET", GOOD_SECRET)
    monkeypatch.setenv("HOTLINE_DEVELOPMENT", "maybe")
    assert main(["serve"]) == 2
    assert "HOTLINE_DEVELOPMENT='maybe' is not a valid boolean" in capsys.readouterr().err
    monkeypatch.delenv("HOTLINE_DEVELOPMENT")
    text = (REPO / "config" / "hotline.toml").read_text(encoding="utf-8")
    bad = tmp_path / "hotline.toml"
    bad.write_text(text.replace("\ndevelopment = false\n", '\ndevelopment = "yes"\n'), encoding="utf-8")
    assert main(["--config", str(bad), "serve"]) == 2
    assert "service.development must be true or false" in capsys.readouterr().err
    assert served == []
    assert load_settings(env={}).service.development is False


def test_asterisk_secrets_refuses_the_published_default(served, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HOTLINE_AMI_SECRET", "dev-only-change-me")
    monkeypatch.delenv("HOTLINE_SECRETS_OWNER", raising=False)
    target = tmp_path / "secrets"
    assert main(["asterisk-secrets", "--dir", str(target)]) == 2
    assert "published default" in capsys.readouterr().err
    assert not target.exists() or not any(target.iterdir())
    monkeypatch.setenv("HOTLINE_DEVELOPMENT", "1")
    assert main(["asterisk-secrets", "--dir", str(target)]) == 0
    assert "secret = dev-only-change-me\n" in (target / "manager_secret.conf").read_text(encoding="utf-8")
    assert "asterisk.secrets.weak_ami_secret_written" in capsys.readouterr().err


def test_what_counts_as_weak():
    assert ami_secret_problem("") == "is empty"
    assert "published" in ami_secret_problem("dev-only-change-me")
    assert "published" in ami_secret_problem(" Dev-Only-Change-Me ")
    assert ami_secret_problem("a" * (MIN_AMI_SECRET_LENGTH - 1)) == "is shorter than 16 characters"
    assert ami_secret_problem("a" * MIN_AMI_SECRET_LENGTH) is None
    assert ami_secret_problem(GOOD_SECRET) is None
