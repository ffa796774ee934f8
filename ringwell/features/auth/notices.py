"""The texts of the account emails: links to follow and notices of changes.

A change notice goes to the address the account had *before* the change and never names the
new value (email address, phone number): whoever reads the old mailbox learns that something
changed and what to do if it was not them, nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Notice"]

_SIGNATURE = "\n-- \nRingwell\n"
_NOT_YOU = ("If this was not you, reset your password now at {portal}/password/forgot and tell the owner of "
            "your organization.")


@dataclass(frozen=True, slots=True)
class Notice:
    subject: str
    body: str

    @classmethod
    def verify(cls, link: str, hours: int) -> Notice:
        return cls("Confirm your email address", (
            "Welcome to Ringwell.\n\nTo confirm your email address and finish creating your account, open this "
            f"link (it works for {hours} hours):\n\n{link}\n\nIf you did not sign up, ignore this message."
        ) + _SIGNATURE)

    @classmethod
    def signup_existing(cls, portal: str) -> Notice:
        return cls("Someone tried to sign up with your address", (
            "Someone tried to create a new Ringwell account with this email address, which already has one.\n\n"
            f"If it was you, log in at {portal}/login, or reset your password at {portal}/password/forgot.\n"
            "If it was not you, you need not do anything: nothing was changed."
        ) + _SIGNATURE)

    @classmethod
    def reset(cls, link: str, minutes: int) -> Notice:
        return cls("Reset your password", (
            f"To choose a new password, open this link (it works once, for {minutes} minutes):\n\n{link}\n\n"
            "If you did not ask for this, ignore this message: your password stays as it is."
        ) + _SIGNATURE)

    @classmethod
    def invite(cls, link: str, org_name: str, hours: int) -> Notice:
        return cls(f"You are invited to {org_name} on Ringwell", (
            f"An administrator of {org_name} gave you a login to its Ringwell phone system.\n\n"
            f"Choose your password here (the link works once, for {hours} hours):\n\n{link}\n"
        ) + _SIGNATURE)

    @classmethod
    def password_changed(cls, portal: str, *, reset: bool) -> Notice:
        how = "reset with a link sent to this address" if reset else "changed"
        return cls("Your password was changed", (
            f"The password of your Ringwell account was {how}. Every other session was logged out.\n\n"
            + _NOT_YOU.format(portal=portal)
        ) + _SIGNATURE)

    @classmethod
    def email_change_requested(cls, portal: str) -> Notice:
        return cls("A change of your login email was requested", (
            "Someone logged in to your Ringwell account asked to change its email address. The new address "
            "has to be confirmed before it takes effect; until then you log in with this one.\n\n"
            + _NOT_YOU.format(portal=portal)
        ) + _SIGNATURE)

    @classmethod
    def email_changed(cls, portal: str) -> Notice:
        return cls("Your login email was changed", (
            "The email address of your Ringwell account was changed: this address no longer logs in and will "
            "receive no more messages about the account.\n\n" + _NOT_YOU.format(portal=portal)
        ) + _SIGNATURE)

    @classmethod
    def confirm_new_email(cls, link: str, hours: int) -> Notice:
        return cls("Confirm your new email address", (
            "To make this the email address of your Ringwell login, open this link "
            f"(it works once, for {hours} hours):\n\n{link}\n\nIf you did not ask for this, ignore this message."
        ) + _SIGNATURE)

    @classmethod
    def email_in_use(cls, portal: str) -> Notice:
        return cls("Your address was given for another Ringwell login", (
            "Someone asked to use this email address for a Ringwell login, but it already has one, so nothing "
            f"was changed.\n\nYour own login is untouched; log in at {portal}/login."
        ) + _SIGNATURE)

    @classmethod
    def phone_changed(cls, portal: str, *, removed: bool) -> Notice:
        what = "removed" if removed else "changed"
        return cls("Your phone number was changed", (
            f"The contact phone number of your Ringwell account was {what}.\n\n" + _NOT_YOU.format(portal=portal)
        ) + _SIGNATURE)

    @classmethod
    def mfa_changed(cls, portal: str, *, enabled: bool) -> Notice:
        what = "turned on" if enabled else "turned off"
        return cls(f"Two-step verification was {what}", (
            f"Two-step verification (authenticator app codes) was {what} for your Ringwell account.\n\n"
            + _NOT_YOU.format(portal=portal)
        ) + _SIGNATURE)

    @classmethod
    def recovery_code_used(cls, portal: str, left: int) -> Notice:
        return cls("A recovery code was used to log in", (
            f"One of your recovery codes was used to log in to your Ringwell account; {left} are left. "
            f"You can make new ones under Settings → Security at {portal}/settings/security.\n\n"
            + _NOT_YOU.format(portal=portal)
        ) + _SIGNATURE)
