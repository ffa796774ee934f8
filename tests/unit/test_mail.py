"""Outgoing mail over real SMTP (aiosmtpd on loopback): plain, STARTTLS, implicit TLS, login, failures."""

from __future__ import annotations

import secrets

import pytest

from ringwell.errors import ConfigError
from ringwell.mail import MailError, OutboxMailer, SmtpMailer, mailer_from
from ringwell.settings import Settings, load_settings
from tests.peers.ports import free_port
from tests.peers.smtp import SmtpSink

SENDER = "Ringwell <ringwell@ringwell.test>"


def _settings(tmp_path, **values) -> Settings:
    return Settings(data_dir=tmp_path, secret_key=secrets.token_urlsafe(32), **values)


async def test_plain_smtp_delivers_the_message():
    with SmtpSink() as smtp:
        mailer = SmtpMailer(smtp.host, smtp.port, SENDER, security="none", timeout=5)
        await mailer.send("ann@example.com", "Hello", "Visit https://ringwell.test/x?token=abc now.\n")
        mail = await smtp.wait_for(to="ann@example.com", timeout=5)
    assert mail.subject == "Hello"
    assert mail.rcpt_tos == ("ann@example.com",)
    assert "ringwell@ringwell.test" in mail.mail_from
    assert mail.link("https://ringwell.test/x") == "https://ringwell.test/x?token=abc"
    assert mail.message["Message-ID"] and mail.message["Date"]


async def test_starttls_with_a_private_ca_and_login(tmp_path):
    with SmtpSink(tls="starttls", auth=("relay", "s3cret-pass")) as smtp:
        mailer = mailer_from(_settings(tmp_path, **smtp.settings()))
        assert isinstance(mailer, SmtpMailer)
        await mailer.send("bob@example.com", "Over TLS", "body\n")
        mail = await smtp.wait_for(to="bob@example.com", timeout=5)
        assert smtp.logins == ["relay"]
    assert mail.body.strip() == "body"


async def test_starttls_refuses_a_certificate_it_cannot_verify():
    with SmtpSink(tls="starttls") as smtp:
        # No ca_file: the self-signed certificate is checked against the system's CAs and refused.
        mailer = SmtpMailer(smtp.host, smtp.port, SENDER, security="starttls", timeout=5)
        with pytest.raises(MailError, match="certificate"):
            await mailer.send("eve@example.com", "Nope", "body\n")
        await smtp.assert_none(within=0.1)


async def test_starttls_required_but_not_offered_fails():
    with SmtpSink() as smtp:
        mailer = SmtpMailer(smtp.host, smtp.port, SENDER, security="starttls", timeout=5)
        with pytest.raises(MailError, match="STARTTLS"):
            await mailer.send("eve@example.com", "Nope", "body\n")
        await smtp.assert_none(within=0.1)


async def test_implicit_tls():
    with SmtpSink(tls="tls") as smtp:
        mailer = SmtpMailer(smtp.host, smtp.port, SENDER, security="tls", ca_file=smtp.ca_file, timeout=5)
        await mailer.send("carol@example.com", "Implicit", "body\n")
        assert (await smtp.wait_for(to="carol@example.com", timeout=5)).subject == "Implicit"


async def test_wrong_login_is_a_mail_error():
    with SmtpSink(tls="starttls", auth=("relay", "right")) as smtp:
        mailer = SmtpMailer(smtp.host, smtp.port, SENDER, security="starttls", username="relay", password="wrong",
                            ca_file=smtp.ca_file, timeout=5)
        with pytest.raises(MailError):
            await mailer.send("dan@example.com", "Nope", "body\n")
        await smtp.assert_none(within=0.1)


async def test_nobody_listening_is_a_mail_error():
    mailer = SmtpMailer("127.0.0.1", free_port(), SENDER, security="none", timeout=2)
    with pytest.raises(MailError, match="did not take the message"):
        await mailer.send("x@example.com", "Nope", "body\n")


async def test_without_smtp_host_mail_goes_to_the_outbox(tmp_path):
    settings = _settings(tmp_path)
    mailer = mailer_from(settings)
    assert isinstance(mailer, OutboxMailer)
    await mailer.send("x@example.com", "Kept", "body\n")
    [path] = (tmp_path / "outbox").iterdir()
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"Subject: Kept" in path.read_bytes()


def test_smtp_settings_are_validated(tmp_path):
    env = {"RINGWELL_SECRET_KEY": "k" * 32}
    with pytest.raises(ConfigError, match="smtp_ca_file"):
        load_settings(tmp_path, {**env, "RINGWELL_SMTP_CA_FILE": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="smtp_timeout"):
        load_settings(tmp_path, {**env, "RINGWELL_SMTP_TIMEOUT": "0"})
    with pytest.raises(ConfigError, match="smtp_security"):
        load_settings(tmp_path, {**env, "RINGWELL_SMTP_HOST": "mail.example.com", "RINGWELL_SMTP_SECURITY": "none",
                                 "RINGWELL_SMTP_USERNAME": "u"})
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert load_settings(tmp_path, {**env, "RINGWELL_SMTP_CA_FILE": str(ca)}).smtp_ca_file == str(ca)
