"""Data register declarations of the tables that existed before the privacy center (see register.py).

Conventions used throughout, so that a reader can check a declaration without the code:

* A random row id, an ``org_id`` and technical state (flags, counters, ids of non-personal rows)
  say nothing about a person on their own: ``NOT_PERSONAL`` (erasure ``none``). They still go
  when their row goes.
* A column that names a person (user id, email, number, extension, address) or describes what
  they did takes the category of its row. Rows that are the person's own (their account, their
  sessions, their voicemail) are deleted; rows that the organisation keeps for its books (call
  records) have the party columns blanked (``anonymise``; a NOT NULL column gets an empty
  string) and the rest kept under a documented exception, which the erasure receipt lists.
* Secrets and one-way hashes (passwords, MFA, HA1, tokens) are never exported: they are of no
  use to the person and would weaken their account if the export leaked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringwell.features.privacy.register import Basis, Category, Column, Erasure, Retention, Table

__all__ = ["EXTRA_COLUMNS", "TABLES"]


@dataclass(frozen=True, slots=True)
class _Row:
    """Defaults shared by the personal columns of one table (keeps each declaration to one line)."""

    category: Category
    basis: Basis
    retention: Retention
    erasure: Erasure = Erasure.DELETE
    exception: str | None = None

    def p(self, name: str, purpose: str, *, category: Category | None = None, exported: bool = True,
          erasure: Erasure | None = None, exception: str | None = None, retention: Retention | None = None,
          basis: Basis | None = None) -> Column:
        """A personal column; keyword arguments override the table's defaults."""
        erasure = erasure or self.erasure
        if exception is None and erasure is Erasure.KEEP:
            exception = self.exception
        return Column(name, category or self.category, purpose, basis or self.basis, retention or self.retention,
                      exported, erasure, exception if erasure is Erasure.KEEP else None)

    def n(self, name: str, purpose: str) -> Column:
        """A column that says nothing about a person (never exported, untouched by erasure itself)."""
        return Column(name, Category.NOT_PERSONAL, purpose, self.basis, self.retention, False, Erasure.NONE)


_ID = "the row's random identifier"
_ORG = "which organisation the row belongs to"

# -- accounts ----------------------------------------------------------------------------------

_org = _Row(Category.ACCOUNT, Basis.CONTRACT, Retention.ACCOUNT)
ORGANIZATIONS = Table("organizations", "a customer organisation (for a sole trader its name may be a person's)",
                      "the organisation", (
    _org.n("id", _ID),
    _org.p("name", "the customer's name, shown in the portal and on statements; replaced by "
           "\"closed organization <id>\" when its data is deleted after closure", erasure=Erasure.ANONYMISE),
    _org.p("country", "where the customer is based: decides tax, the applicable law and retention limits"),
    _org.n("currency", "the currency the organisation is billed in"),
    _org.n("kind", "customer or the operator's own organisation"),
    _org.n("low_balance_minor", "the balance below which the organisation is warned"),
    _org.n("voicemail_attach_audio", "whether voicemail emails carry the audio (a setting)"),
    _org.n("voicemail_retention_days", "how long the organisation keeps voicemail (a setting)"),
    _org.n("recording_retention_days", "how long the organisation keeps call recordings (a setting)"),
    _org.n("low_balance_alerted_at", "when the last low-balance warning was sent"),
    _org.n("created_at", "when the organisation signed up"),
))

_user = _Row(Category.ACCOUNT, Basis.CONTRACT, Retention.ACCOUNT)
USERS = Table("users", "a person with a phone extension and, optionally, a portal login", "the user", (
    _user.p("id", "identifies you inside Ringwell"),
    _user.n("org_id", _ORG),
    _user.p("email", "your address at your organisation: voicemail notifications and notices"),
    _user.p("extension", "the short number colleagues dial to reach you"),
    _user.p("ring_timeout", "how long your phones ring before the call goes to voicemail"),
    _user.p("voicemail_email", "whether new voicemail is emailed to you"),
    _user.p("voicemail_enabled", "whether unanswered calls go to your mailbox"),
    _user.p("dnd", "do-not-disturb: calls go straight to your mailbox"),
    _user.p("name", "your name, shown to colleagues and as caller name"),
    _user.p("role", "what you may do in the portal"),
    _user.p("login_email", "the address you sign in to the portal with"),
    _user.p("password_hash", "checks your password at sign-in; only a one-way Argon2id hash is stored",
            exported=False),
    _user.p("email_verified_at", "when you proved the sign-in address is yours"),
    _user.p("mfa_secret", "the shared secret of your authenticator app (encrypted)", exported=False),
    _user.p("mfa_enabled_at", "when you turned on two-factor sign-in"),
    _user.p("phone", "a contact number for notices about your account"),
    _user.p("disabled_at", "when your account was disabled"),
    _user.p("created_at", "when your account was created"),
))

_cred = _Row(Category.ACCOUNT, Basis.CONTRACT, Retention.ACCOUNT)
SIP_CREDENTIALS = Table("sip_credentials", "a SIP account a phone (or the web phone) signs in with",
                        "the user whose phone it is", (
    _cred.n("id", _ID),
    _cred.n("org_id", _ORG),
    _cred.p("user_id", "whose phone account it is"),
    _cred.p("username", "the SIP user name your phone signs in with"),
    _cred.n("realm", "the server's SIP authentication realm"),
    _cred.p("ha1_md5", "checks your phone's password (RFC 2617 digest hash; the password is not stored)",
            exported=False),
    _cred.p("ha1_sha256", "checks your phone's password (RFC 8760 digest hash; the password is not stored)",
            exported=False),
    _cred.n("kind", "a desk phone account or a web phone session"),
    _cred.p("expires_at", "when a web phone account stops working"),
    _cred.p("created_at", "when the phone account was set up"),
    _cred.p("updated_at", "when the phone account last changed"),
))

# -- sign-in and security --------------------------------------------------------------------

_AUDIT_EXCEPTION = ("security record: the audit trail must stay complete and verifiable (hash chain); "
                    "kept until the audit period ends")
_audit = _Row(Category.USAGE, Basis.LEGITIMATE_INTEREST, Retention.AUDIT, Erasure.KEEP, _AUDIT_EXCEPTION)
AUDIT_EVENTS = Table("audit_events", "one security-relevant action: a sign-in, a change, a staff access",
                     "the person who acted, and the organisation whose data it touched", (
    _audit.n("id", _ID),
    _audit.p("at", "when it happened"),
    _audit.p("actor_user_id", "who did it"),
    _audit.n("actor_org_id", "the organisation the actor acted from"),
    _audit.p("actor_role", "the role the actor held when they did it"),
    _audit.n("api_key_id", "the organisation's API key used, if any"),
    _audit.n("org_id", "whose data was touched"),
    _audit.p("action", "what was done (e.g. signed in, changed a setting, read a recording)"),
    _audit.n("target_type", "what kind of record was touched"),
    _audit.p("target_id", "which record was touched (it may be your account)"),
    _audit.p("outcome", "whether it succeeded, was denied or failed"),
    _audit.p("ip", "the network address it came from"),
    _audit.p("user_agent", "the browser or program it came from", category=Category.DEVICE),
    _audit.p("reason", "why staff accessed the data"),
    _audit.p("details", "what changed, in detail (ids, counts and field names; not exported: the details of "
                        "an event you caused can name the colleagues, numbers or records you acted on, and an "
                        "export must not hand you other people's data)", exported=False),
))

_sess = _Row(Category.USAGE, Basis.CONTRACT, Retention.USAGE)
WEB_SESSIONS = Table("web_sessions", "a signed-in browser", "the signed-in user", (
    _sess.n("id", _ID),
    _sess.p("token_hash", "recognises your browser's session cookie; only a hash is stored", exported=False),
    _sess.p("user_id", "who is signed in"),
    _sess.n("org_id", _ORG),
    _sess.p("csrf_token", "protects your forms against cross-site requests", exported=False),
    _sess.p("mfa_pending", "whether the second sign-in step is still owed"),
    _sess.p("created_at", "when you signed in"),
    _sess.p("last_seen_at", "when the session was last used"),
    _sess.p("expires_at", "when the session ends"),
    _sess.p("authenticated_at", "when you last entered your password (sensitive actions ask again)"),
    _sess.p("ip", "the network address you signed in from", basis=Basis.LEGITIMATE_INTEREST),
    _sess.p("user_agent", "the browser you signed in with, so you can recognise your sessions",
            category=Category.DEVICE),
))

_tok = _Row(Category.ACCOUNT, Basis.CONTRACT, Retention.SHORT_LIVED)
EMAIL_TOKENS = Table("email_tokens", "a link emailed to you (verify the address, reset the password)", "the user", (
    _tok.n("id", _ID),
    _tok.p("token_hash", "recognises the emailed link; only a hash is stored", exported=False),
    _tok.p("user_id", "whom the link is for"),
    _tok.n("purpose", "what the link does"),
    _tok.p("email", "the address the link was sent to"),
    _tok.p("created_at", "when it was sent"),
    _tok.p("expires_at", "when it stops working"),
    _tok.p("used_at", "when it was used"),
))

_rec = _Row(Category.ACCOUNT, Basis.CONTRACT, Retention.ACCOUNT)
RECOVERY_CODES = Table("recovery_codes", "a one-time code to sign in without your authenticator app", "the user", (
    _rec.n("id", _ID),
    _rec.p("user_id", "whose code it is"),
    _rec.p("code_hash", "checks the code; only a hash is stored", exported=False),
    _rec.p("used_at", "when the code was used"),
))

_key = _Row(Category.ACCOUNT, Basis.CONTRACT, Retention.CONFIGURATION)
API_KEYS = Table("api_keys", "an organisation's key for the REST API", "the organisation; the user who created it", (
    _key.n("id", _ID),
    _key.n("org_id", _ORG),
    _key.p("created_by", "who created the key (the key stays the organisation's)", erasure=Erasure.ANONYMISE),
    _key.n("name", "the organisation's label for the key"),
    _key.n("prefix", "the visible start of the key, to tell keys apart"),
    _key.n("secret_hash", "checks the key; only a hash is stored"),
    _key.n("scopes", "what the key may do"),
    _key.n("created_at", "when the key was created"),
    _key.n("last_used_at", "when the key was last used"),
    _key.n("revoked_at", "when the key was revoked"),
))

# -- billing ----------------------------------------------------------------------------------

_LEDGER_EXCEPTION = "accounting law: kept for the legal period, without dialled numbers"
_led = _Row(Category.BILLING, Basis.LEGAL_OBLIGATION, Retention.LEDGER, Erasure.KEEP, _LEDGER_EXCEPTION)
LEDGER_ACCOUNTS = Table("ledger_accounts", "an organisation's prepaid balance, or one of the operator's own accounts",
                        "none (the organisation)", (
    _led.n("id", _ID),
    _led.n("key", "which balance it is"),
    _led.n("org_id", _ORG),
    _led.n("name", "the account's name"),
    _led.n("currency", "the account's currency"),
    _led.n("balance_minor", "the organisation's balance"),
    _led.n("reserved_minor", "credit held for calls in progress"),
    _led.n("last_seq", "the number of the organisation's last transaction"),
    _led.n("created_at", "when the account was opened"),
))
LEDGER_TRANSACTIONS = Table("ledger_transactions",
                            "one movement of an organisation's money: a top-up, a call charge, a number's rent",
                            "the organisation; a call charge refers to a call record (not to a number)", (
    _led.n("id", _ID),
    _led.n("org_id", _ORG),
    _led.n("seq", "the order in which the balance moved"),
    _led.p("kind", "what kind of movement it was"),
    _led.p("description", "what the money was for (a call is described without the number dialled)"),
    _led.p("reference", "the call, payment or rented number it was for"),
    _led.p("reason", "why staff adjusted the balance"),
    _led.p("operator", "which staff member adjusted the balance"),
    _led.p("balance_after_minor", "the balance right after"),
    _led.n("cost_minor", "what the call cost the operator (its margin)"),
    _led.n("idempotency_key", "makes a repeated request charge only once"),
    _led.p("created_at", "when the money moved"),
))
LEDGER_POSTINGS = Table("ledger_postings", "one side of a movement of money", "none (the organisation)", (
    _led.n("id", _ID),
    _led.n("transaction_id", "the movement it belongs to"),
    _led.n("account_id", "the balance it changed"),
    _led.n("amount_minor", "how much"),
))
_res = _Row(Category.BILLING, Basis.CONTRACT, Retention.SHORT_LIVED)
CREDIT_RESERVATIONS = Table("credit_reservations", "credit held for a call while it lasts", "none (the organisation)", (
    _res.n("key", "the call the credit is held for"),
    _res.n("org_id", _ORG),
    _res.n("amount_minor", "how much is held"),
    _res.n("node", "the server holding it"),
    _res.n("created_at", "when it was first held"),
    _res.n("updated_at", "when it last changed"),
    _res.n("closed_at", "when it was settled or released"),
    _res.n("transaction_id", "the charge it became"),
))

_PAYMENT_EXCEPTION = "accounting law: proof of payment kept for the legal period (never a full card number)"
_pay = _Row(Category.BILLING, Basis.LEGAL_OBLIGATION, Retention.LEDGER, Erasure.KEEP, _PAYMENT_EXCEPTION)
PAYMENTS = Table("payments", "a top-up paid by card through a payment provider",
                 "the organisation (the card holder may be a person)", (
    _pay.n("id", _ID),
    _pay.n("org_id", _ORG),
    _pay.n("provider", "which payment provider took the payment"),
    _pay.p("provider_id", "the provider's reference for the payment"),
    _pay.p("amount_minor", "how much was paid"),
    _pay.n("currency", "in which currency"),
    _pay.n("status", "pending, succeeded or failed"),
    _pay.p("card_brand", "the card's brand, to tell payments apart"),
    _pay.p("card_last4", "the card's last four digits, to tell payments apart"),
    _pay.p("card_exp_month", "the card's expiry month"),
    _pay.p("card_exp_year", "the card's expiry year"),
    _pay.n("transaction_id", "the ledger movement it became"),
    _pay.p("created_at", "when the payment started"),
    _pay.p("succeeded_at", "when it succeeded"),
))
PAYMENT_EVENTS = Table("payment_events", "a payment provider's notification already handled", "none", (
    _pay.n("id", _ID),
    _pay.n("provider", "which provider sent it"),
    _pay.n("event_id", "the provider's event id (handled once)"),
    _pay.n("type", "what the provider reported"),
    _pay.n("payment_id", "the payment it was about"),
    _pay.n("received_at", "when it arrived"),
))

# -- calls -------------------------------------------------------------------------------------

_CDR_EXCEPTION = ("the organisation's call log and books keep the call (when, how long, what it cost) "
                  "without who made or took it, until the call-record retention ends")
_cdr = _Row(Category.COMMUNICATIONS_METADATA, Basis.CONTRACT, Retention.CALL_RECORDS, Erasure.ANONYMISE)
_KEEP = Erasure.KEEP
CALL_RECORDS = Table("call_records", "one call: who called whom, when, how long, what it cost", "caller or callee", (
    _cdr.n("id", _ID),
    _cdr.n("org_id", _ORG),
    _cdr.p("sip_call_id", "the call's SIP identifier (it may contain a phone's address), to trace faults"),
    _cdr.p("direction", "internal, outbound or inbound", erasure=_KEEP, exception=_CDR_EXCEPTION),
    _cdr.p("caller_user_id", "which user called"),
    _cdr.p("caller_extension", "the extension that called"),
    _cdr.p("caller_number", "the number that called"),
    _cdr.p("callee_user_id", "which user was called"),
    _cdr.p("callee_extension", "the extension that was called"),
    _cdr.p("callee_number", "the number that was dialled"),
    _cdr.p("started_at", "when the call started", erasure=_KEEP, exception=_CDR_EXCEPTION),
    _cdr.p("answered_at", "when it was answered", erasure=_KEEP, exception=_CDR_EXCEPTION),
    _cdr.p("ended_at", "when it ended", erasure=_KEEP, exception=_CDR_EXCEPTION),
    _cdr.n("last_alive_at", "when the server last saw the call alive (to close calls after a crash)"),
    _cdr.p("ring_seconds", "how long it rang", erasure=_KEEP, exception=_CDR_EXCEPTION),
    _cdr.p("talk_seconds", "how long you talked", erasure=_KEEP, exception=_CDR_EXCEPTION),
    _cdr.n("state", "whether the call is still going"),
    _cdr.p("disposition", "answered, busy, no answer, failed", erasure=_KEEP, exception=_CDR_EXCEPTION),
    _cdr.n("hangup_by", "which side hung up (caller, callee or the server)"),
    _cdr.n("sip_status", "the SIP status the call ended with, to trace faults"),
    _cdr.n("sip_reason", "the SIP reason phrase, to trace faults"),
    _cdr.n("codec", "the audio codec used"),
    _cdr.p("media", "per-leg audio quality (includes the network addresses the audio flowed between)"),
    _cdr.n("node", "which server handled the call"),
    _cdr.n("trunk_id", "which carrier connection carried the call"),
    _cdr.n("rate_deck", "which price list the call was rated on"),
    _cdr.p("rate_prefix", "the destination prefix the price was chosen by (not the whole number)",
           category=Category.BILLING, erasure=_KEEP, exception=_CDR_EXCEPTION),
    _cdr.p("price_micros", "the price per minute", category=Category.BILLING, erasure=_KEEP,
           exception=_CDR_EXCEPTION),
    _cdr.p("billable_seconds", "the seconds charged", category=Category.BILLING, erasure=_KEEP,
           exception=_CDR_EXCEPTION),
    _cdr.p("charge_minor", "what the call cost the organisation", category=Category.BILLING, erasure=_KEEP,
           exception=_CDR_EXCEPTION),
    _cdr.n("cost_minor", "what the call cost the operator (its margin)"),
    _cdr.n("currency", "the charge's currency"),
))

_perm = _Row(Category.ACCOUNT, Basis.LEGITIMATE_INTEREST, Retention.CONFIGURATION)
DESTINATION_PERMISSIONS = Table("destination_permissions", "which countries and risk classes an organisation may call",
                                "none", (
    _perm.n("id", _ID),
    _perm.n("org_id", _ORG),
    _perm.n("region", "the country the rule is about"),
    _perm.n("risk", "the risk class the rule is about"),
    _perm.n("allow", "allowed or blocked"),
    _perm.n("created_at", "when the rule was made"),
))
FRAUD_SETTINGS = Table("fraud_settings", "an organisation's limits against toll fraud", "none", (
    _perm.n("org_id", _ORG),
    _perm.n("max_concurrent", "how many outside calls may run at once"),
    _perm.n("max_calls_per_minute", "how many outside calls may start per minute"),
    _perm.n("daily_spend_cap_minor", "how much may be spent per day"),
    _perm.n("max_price_per_minute_micros", "the most a minute may cost"),
    _perm.n("updated_at", "when the limits changed"),
))

# -- numbers -----------------------------------------------------------------------------------

_num = _Row(Category.ACCOUNT, Basis.CONTRACT, Retention.CONFIGURATION)
PHONE_NUMBERS = Table("phone_numbers", "a phone number the operator rents to organisations",
                      "the organisation renting it; the user it rings", (
    _num.n("id", _ID),
    _num.n("e164", "the number (it belongs to the organisation renting it, not to a person)"),
    _num.n("country", "the number's country"),
    _num.n("national_number", "the number in national format"),
    _num.n("type", "local, mobile or toll-free"),
    _num.n("monthly_price_minor", "its monthly rent"),
    _num.n("setup_price_minor", "its setup fee"),
    _num.n("currency", "the prices' currency"),
    _num.n("trunk_id", "the carrier connection it arrives on"),
    _num.n("state", "available, rented or quarantined"),
    _num.n("org_id", "the organisation renting it"),
    _num.p("route_user_id", "the user whose phones it rings (the number stays the organisation's)",
           erasure=Erasure.ANONYMISE, retention=Retention.ACCOUNT),
    _num.n("rented_at", "when it was rented"),
    _num.n("paid_until", "until when the rent is paid"),
    _num.n("renewal_warned_at", "when the organisation was warned that the rent is due"),
    _num.n("quarantine_until", "until when a released number rests before anyone else may rent it"),
    _num.n("created_at", "when the operator added it"),
))

_ver = _Row(Category.ACCOUNT, Basis.LEGITIMATE_INTEREST, Retention.ACCOUNT)
CALLER_ID_VERIFICATIONS = Table("caller_id_verifications",
                                "a check that you own a number you want to show as caller ID", "the user", (
    _ver.n("id", _ID),
    _ver.n("org_id", _ORG),
    _ver.p("user_id", "who asked to use the number"),
    _ver.p("e164", "the number you want to show as caller ID"),
    _ver.p("code_hash", "checks the code we called you with; only a hash is stored", exported=False),
    _ver.p("attempts", "how many wrong codes were entered (to stop guessing)"),
    _ver.p("created_at", "when you asked"),
    _ver.p("expires_at", "when the code stops working"),
    _ver.p("verified_at", "when you proved the number is yours"),
))

# -- rating and carriers: the operator's configuration, nothing about people --------------------

_cfg = _Row(Category.ACCOUNT, Basis.CONTRACT, Retention.CONFIGURATION)
RATE_DECKS = Table("rate_decks", "a price list", "none", (
    _cfg.n("id", _ID),
    _cfg.n("name", "the price list's name"),
    _cfg.n("currency", "its currency"),
    _cfg.n("created_at", "when it was made"),
    _cfg.n("updated_at", "when it last changed"),
))
RATES = Table("rates", "one price of a price list: calls to numbers starting with a prefix", "none", (
    _cfg.n("id", _ID),
    _cfg.n("deck_id", "the price list"),
    _cfg.n("prefix", "the destination prefix"),
    _cfg.n("description", "the destination's name"),
    _cfg.n("price_micros", "the price per minute"),
    _cfg.n("connection_fee_micros", "the fee per answered call"),
    _cfg.n("first_increment", "the first billing increment"),
    _cfg.n("next_increment", "the following billing increments"),
    _cfg.n("effective_from", "when the price applies from"),
))
ORG_RATE_DECKS = Table("org_rate_decks", "which price list an organisation is charged by", "none", (
    _cfg.n("org_id", _ORG),
    _cfg.n("deck_id", "the price list"),
    _cfg.n("assigned_at", "since when"),
))
TRUNKS = Table("trunks", "a connection to a carrier of the phone network", "none", (
    _cfg.n("id", _ID),
    _cfg.n("name", "the connection's name"),
    _cfg.n("host", "the carrier's server"),
    _cfg.n("port", "the carrier's port"),
    _cfg.n("transport", "UDP, TCP or TLS"),
    _cfg.n("username", "the operator's account at the carrier"),
    _cfg.n("password_enc", "the operator's password at the carrier (encrypted)"),
    _cfg.n("register", "whether the server registers with the carrier"),
    _cfg.n("register_expires", "how often it registers"),
    _cfg.n("inbound_addresses", "the addresses the carrier's calls come from"),
    _cfg.n("number_format", "how numbers are written to the carrier"),
    _cfg.n("tech_prefix", "digits the carrier wants before each number"),
    _cfg.n("priority", "which carrier is tried first"),
    _cfg.n("buy_deck", "what the carrier charges the operator"),
    _cfg.n("max_channels", "how many calls it carries at once"),
    _cfg.n("enabled", "whether it is used"),
    _cfg.n("created_at", "when it was added"),
))

# -- recordings, voicemail and their files ----------------------------------------------------

_recd = _Row(Category.CONTENT, Basis.CONTRACT, Retention.MEDIA)
RECORDINGS = Table("recordings", "a recorded call (callers hear that it is recorded)", "caller or callee", (
    _recd.n("id", _ID),
    _recd.n("org_id", _ORG),
    _recd.p("call_record_id", "the call that was recorded", category=Category.COMMUNICATIONS_METADATA),
    _recd.p("caller_user_id", "which user called", category=Category.COMMUNICATIONS_METADATA),
    _recd.p("callee_user_id", "which user was called", category=Category.COMMUNICATIONS_METADATA),
    _recd.n("trigger", "recorded by rule or on demand"),
    _recd.p("started_at", "when recording started", category=Category.COMMUNICATIONS_METADATA),
    _recd.p("ended_at", "when recording ended", category=Category.COMMUNICATIONS_METADATA),
    _recd.p("duration_s", "how long the recording is", category=Category.COMMUNICATIONS_METADATA),
    _recd.p("paused_s", "how long recording was paused", category=Category.COMMUNICATIONS_METADATA),
    _recd.n("channels", "mono or one channel per side"),
    _recd.n("content_type", "the audio format"),
    _recd.p("blob_id", "the recorded audio (an encrypted file)"),
    _recd.n("size", "the file's size"),
    _recd.n("retention_until", "when it is deleted at the latest"),
))
RECORDING_POLICIES = Table("recording_policies", "a rule saying whose calls are recorded",
                           "the organisation, a user or a number", (
    _cfg.n("id", _ID),
    _cfg.n("org_id", _ORG),
    _cfg.p("scope", "whose calls the rule applies to (the organisation, a user or a number)",
           retention=Retention.ACCOUNT),
    _cfg.n("mode", "always, never or on demand"),
    _cfg.n("updated_at", "when the rule changed"),
))
BLOBS = Table("blobs", "an encrypted file: voicemail or recording audio, a transcript, a greeting, hold music",
              "whoever the file's voicemail, recording or greeting belongs to", (
    _recd.p("id", "names the encrypted file holding the audio or transcript"),
    _recd.n("org_id", _ORG),
    _recd.n("key_id", "the organisation key it is encrypted with"),
    _recd.n("kind", "voicemail, recording, transcript, greeting or hold music"),
    _recd.n("content_type", "the file's format"),
    _recd.n("size", "the file's size"),
    _recd.p("created_at", "when it was stored"),
    _recd.n("retention_until", "when it is deleted at the latest"),
))
ORG_DATA_KEYS = Table("org_data_keys", "an organisation's encryption key for its files (itself encrypted)", "none", (
    _cfg.n("id", _ID),
    _cfg.n("org_id", _ORG),
    _cfg.n("wrapped_key", "the key, encrypted under the server's master key; gone once destroyed"),
    _cfg.n("master_key_id", "which master key encrypts it"),
    _cfg.n("created_at", "when it was made"),
    _cfg.n("destroyed_at", "when it was destroyed (its files became unreadable)"),
))

_box = _Row(Category.ACCOUNT, Basis.CONTRACT, Retention.ACCOUNT)
MAILBOXES = Table("mailboxes", "a user's voicemail box settings", "the user", (
    _box.p("user_id", "whose mailbox it is"),
    _box.n("org_id", _ORG),
    _box.p("pin_hash", "checks your mailbox PIN; only a hash is stored", exported=False),
    _box.p("failed_pin_attempts", "wrong PINs in a row (to stop guessing)", category=Category.USAGE,
           basis=Basis.LEGITIMATE_INTEREST),
    _box.p("locked_until", "until when the mailbox is locked after wrong PINs", category=Category.USAGE,
           basis=Basis.LEGITIMATE_INTEREST),
    _box.p("greeting_blob_id", "your recorded greeting (an encrypted file)", category=Category.CONTENT),
    _box.p("updated_at", "when the settings changed"),
))

_vm = _Row(Category.CONTENT, Basis.CONTRACT, Retention.MEDIA)
VOICEMAILS = Table("voicemails", "a voicemail message", "the mailbox owner, and the caller who left it", (
    _vm.n("id", _ID),
    _vm.n("org_id", _ORG),
    _vm.p("user_id", "whose mailbox it is in", category=Category.COMMUNICATIONS_METADATA),
    _vm.p("caller_number", "who left it (their number)", category=Category.COMMUNICATIONS_METADATA),
    _vm.p("caller_name", "who left it (their caller name)", category=Category.COMMUNICATIONS_METADATA),
    _vm.p("call_record_id", "the call it was left on", category=Category.COMMUNICATIONS_METADATA),
    _vm.p("received_at", "when it was left", category=Category.COMMUNICATIONS_METADATA),
    _vm.p("duration_s", "how long it is", category=Category.COMMUNICATIONS_METADATA),
    _vm.p("audio_blob_id", "the message's audio (an encrypted file)"),
    _vm.p("transcript_blob_id", "the message's transcript, made on this server (an encrypted file)"),
    _vm.n("transcript_status", "whether the transcript is ready"),
    _vm.p("folder", "new, saved or deleted"),
    _vm.p("read_at", "when you listened to it"),
    _vm.n("retention_until", "when it is deleted at the latest"),
))
VOICEMAIL_TERMS = Table("voicemail_terms", "the words of a voicemail transcript, to search your messages",
                        "the mailbox owner", (
    _vm.n("voicemail_id", "the message"),
    _vm.p("term", "a word of the transcript (the transcript itself is exported)", exported=False),
    _vm.n("org_id", _ORG),
))

# -- webhooks ----------------------------------------------------------------------------------

_hook = _Row(Category.COMMUNICATIONS_METADATA, Basis.CONTRACT, Retention.USAGE)
WEBHOOK_ENDPOINTS = Table("webhook_endpoints", "where an organisation wants its events sent", "none", (
    _hook.n("id", _ID),
    _hook.n("org_id", _ORG),
    _hook.n("url", "the organisation's address for events"),
    _hook.n("events", "which events it wants"),
    _hook.n("secret", "signs the events (encrypted)"),
    _hook.n("description", "the organisation's label"),
    _hook.n("enabled", "whether events are sent"),
    _hook.n("disabled_reason", "why sending stopped"),
    _hook.n("failing_since", "since when delivery fails"),
    _hook.n("created_at", "when it was added"),
))
WEBHOOK_DELIVERIES = Table("webhook_deliveries", "one event sent to an organisation's own system",
                           "the people the event is about (e.g. the parties of a call)", (
    _hook.n("id", _ID),
    _hook.n("org_id", _ORG),
    _hook.n("endpoint_id", "where it is sent"),
    _hook.n("event_id", "the event"),
    _hook.n("event_type", "what happened"),
    _hook.p("payload", "the event as sent (e.g. a call ended: who called whom), kept to retry and to show the log"),
    _hook.n("status", "pending, delivered or failed"),
    _hook.n("attempts", "how many times it was tried"),
    _hook.n("next_attempt_at", "when it is tried next"),
    _hook.n("created_at", "when the event happened"),
    _hook.n("delivered_at", "when it was delivered"),
    _hook.n("last_status", "the answer of the last try"),
    _hook.n("last_error", "why the last try failed"),
))
WEBHOOK_ATTEMPTS = Table("webhook_attempts", "one try to deliver an event", "none", (
    _hook.n("id", _ID),
    _hook.n("delivery_id", "the event delivered"),
    _hook.n("org_id", _ORG),
    _hook.n("at", "when"),
    _hook.n("status", "the answer"),
    _hook.n("error", "why it failed"),
    _hook.n("duration_ms", "how long it took"),
    _hook.n("manual", "whether a person asked for it"),
))

# -- phone registrations ---------------------------------------------------------------------

_reg = _Row(Category.DEVICE, Basis.CONTRACT, Retention.USAGE)
BINDINGS = Table("bindings", "where a registered phone can be reached now", "the user whose phone it is", (
    _reg.n("id", _ID),
    _reg.n("org_id", _ORG),
    _reg.p("credential_id", "which phone account registered"),
    _reg.p("binding_key", "tells your phones apart (derived from the phone's address or instance id)"),
    _reg.p("contact", "the address your phone asked to be called at"),
    _reg.p("expires_at", "when the registration ends unless renewed"),
    _reg.n("q", "the phone's priority among yours"),
    _reg.p("call_id", "the registration's SIP identifier (it may contain the phone's address)"),
    _reg.n("cseq", "the registration's sequence number"),
    _reg.p("user_agent", "your phone's make and software version"),
    _reg.n("transport", "UDP, TCP, TLS or WebSocket"),
    _reg.p("source_host", "the network address your phone registered from"),
    _reg.p("source_port", "the network port your phone registered from"),
    _reg.p("path", "the proxies between your phone and the server"),
    _reg.p("updated_at", "when your phone last registered"),
))

TABLES: tuple[Table, ...] = (
    ORGANIZATIONS, USERS, SIP_CREDENTIALS, AUDIT_EVENTS, WEB_SESSIONS, EMAIL_TOKENS, RECOVERY_CODES, API_KEYS,
    LEDGER_ACCOUNTS, LEDGER_TRANSACTIONS, LEDGER_POSTINGS, CREDIT_RESERVATIONS, PAYMENTS, PAYMENT_EVENTS,
    CALL_RECORDS, DESTINATION_PERMISSIONS, FRAUD_SETTINGS, PHONE_NUMBERS, CALLER_ID_VERIFICATIONS,
    RATE_DECKS, RATES, ORG_RATE_DECKS, TRUNKS, RECORDINGS, RECORDING_POLICIES, BLOBS, ORG_DATA_KEYS,
    MAILBOXES, VOICEMAILS, VOICEMAIL_TERMS, WEBHOOK_ENDPOINTS, WEBHOOK_DELIVERIES, WEBHOOK_ATTEMPTS, BINDINGS,
)

# Columns this part adds to tables declared elsewhere: table name -> columns.
EXTRA_COLUMNS: dict[str, tuple[Column, ...]] = {}
