"""Screenshots of the portal's main pages at desktop and phone widths, to look at the design.

Starts the real HTTP app (a throwaway SQLite database under ``out/portal-screenshots/``, filled
with a demo organization: users, calls over two weeks, numbers, credit, an operator), serves it
on loopback, and has Chromium (Debian's, through Playwright) render each page at 1280 px and
390 px wide. The PNGs go to ``out/portal-screenshots/`` (ignored by git: the directory carries
its own ``.gitignore``). Not a test: run it, then look at the pictures.

    .venv/bin/python scripts/portal-screenshots.py [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import secrets
import shutil
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn
from playwright.async_api import async_playwright
from sqlalchemy import update

from ringwell.features.accounts.models import Organization, OrgKind, User
from ringwell.features.accounts.service import UserSpec
from ringwell.features.auth.passwords import hash_password
from ringwell.features.cdr.models import CallRecord
from ringwell.features.trunks.models import Trunk
from ringwell.pbx.registrar import Binding
from ringwell.server import RingwellServer
from ringwell.settings import Settings
from ringwell.storage.engine import create_engine, migrate
from ringwell.transport.source import Source
from ringwell.web.app import build_app
from ringwell.web.deps import SESSION_COOKIE

log = logging.getLogger("portal-screenshots")

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "portal-screenshots"
WIDTHS = {"desktop": 1280, "phone": 390}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
INVENTORY = """number,country,type,monthly_price,setup_price,trunk
+1 415 555 0100,US,fixed,2.50,1.00,carrier-a
+1 415 555 0101,US,mobile,3.00,0,carrier-a
+1 415 555 0102,US,fixed,2.50,1.00,carrier-a
+1 212 555 0100,US,fixed,2.00,1.50,carrier-a
+1 800 555 0100,US,toll-free,5.00,10.00,
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _user(server: RingwellServer, org: Organization, name: str, email: str, extension: str,
                role: str) -> User:
    created = await server.web.accounts.create_user(org.name, UserSpec(email=email, extension=extension, name=name,
                                                                       role=role))
    async with server.web.sessions() as session, session.begin():
        user = await session.get(User, created.user.id)
        assert user is not None
        user.login_email, user.password_hash = email, hash_password(secrets.token_urlsafe(12))
        user.email_verified_at = datetime.now(UTC)
    return user


async def _seed(server: RingwellServer) -> dict[str, str]:
    """A demo org with people, two weeks of calls, numbers and credit; an operator with staff."""
    web = server.web
    rng = random.Random(5)
    acme = await web.accounts.create_org("Acme Dental Clinic")
    owner = await _user(server, acme, "Maria Keller", "maria@acme-dental.example", "100", "owner")
    staff = [await _user(server, acme, name, f"{name.split()[0].lower()}@acme-dental.example", ext, "member")
             for name, ext in (("Tom Baker", "101"), ("Priya Shah", "102"), ("Lena Wolf", "103"))]
    await web.accounts.create_user(acme.name, UserSpec(email="lobby@acme-dental.example", extension="120",
                                                       name="Lobby phone"))
    async with web.sessions() as session, session.begin():
        session.add(Trunk(name="carrier-a", host="192.0.2.10", port=5060, transport="udp", priority=5, enabled=True,
                          buy_deck="carrier-a-buy"))
        session.add(Trunk(name="carrier-b", host="198.51.100.20", port=5060, transport="tcp", priority=10,
                          enabled=False, register=True))
    await web.rating.import_deck("retail-usd", ["prefix,description,price_per_minute\n", "1,USA,0.010\n",
                                                "44,United Kingdom,0.020\n", "33,France,0.025\n"], "USD")
    await web.rating.assign_deck(acme.id, "retail-usd")
    await web.numbers.import_numbers(INVENTORY.splitlines(keepends=True))
    await web.ledger.adjust(acme.id, 50_000, "Bank transfer, invoice 2026-014", "ops@ringwell.example")
    now = datetime.now(UTC)
    await web.numbers.rent(acme.id, "+14155550100", now - timedelta(days=9))
    await web.numbers.route("+14155550100", "100", org_id=acme.id)
    await web.numbers.rent(acme.id, "+12125550100", now - timedelta(days=3))
    people = [owner, *staff]
    rows = []
    for days_ago in range(14):
        for _ in range(rng.randint(2, 14) if days_ago else 6):
            started = now - timedelta(days=days_ago, minutes=rng.randint(5, 600))
            who = rng.choice(people)
            direction = rng.choice(["outbound", "outbound", "inbound", "internal"])
            answered = rng.random() < 0.75
            talk = float(rng.randint(20, 900)) if answered else None
            charge = (int((talk or 0) / 60 + 1) * 1 + rng.randint(0, 4)) if direction == "outbound" and answered \
                else None
            callee = {"outbound": f"+1415555{rng.randint(1000, 9999)}", "inbound": who.extension,
                      "internal": rng.choice(people).extension}[direction]
            rows.append(CallRecord(
                org_id=acme.id, sip_call_id=secrets.token_hex(8), direction=direction,
                caller_user_id=None if direction == "inbound" else who.id,
                caller_extension=None if direction == "inbound" else who.extension,
                caller_number=f"+1650555{rng.randint(1000, 9999)}" if direction == "inbound" else None,
                callee_user_id=who.id if direction == "inbound" else None,
                callee_extension=who.extension if direction == "inbound" else None, callee_number=callee,
                started_at=started, answered_at=started + timedelta(seconds=4) if answered else None,
                ended_at=started + timedelta(seconds=4 + (talk or 20)), last_alive_at=started, ring_seconds=4.0,
                talk_seconds=talk, state="closed",
                disposition="answered" if answered else rng.choice(["busy", "no-answer", "cancelled", "failed"]),
                charge_minor=charge, currency="USD" if charge else None))
    async with web.sessions() as session, session.begin():
        session.add_all(rows)
    for row in rows:
        if row.charge_minor:
            await web.ledger.try_charge(acme.id, row.charge_minor, "call_charge", f"call to {row.callee_number}",
                                        row.sip_call_id)
    cred = await web.accounts.credential((await web.accounts.users(acme.name))[0][1])
    assert cred is not None
    web.registrar.load([Binding(cred.credential_id, acme.id, cred.username, "k1",
                                f"sip:{cred.username}@192.0.2.50:5062", time.time() + 3600, 1000, "c1", 1,
                                "Yealink T54W 96.86.0.100", Source("udp", "192.0.2.50", 5062))])

    ops = await web.accounts.create_org("Ringwell Operations")
    async with web.sessions() as session, session.begin():
        await session.execute(update(Organization).where(Organization.id == ops.id)
                              .values(kind=OrgKind.OPERATOR.value))
    ops_user = await _user(server, ops, "Olga Ops", "olga@ringwell.example", "900", "owner")
    for index in range(4):
        org = await web.accounts.create_org(f"Customer {index + 1} Ltd")
        await web.ledger.adjust(org.id, rng.randint(0, 20_000), "welcome credit", "ops@ringwell.example")

    tokens = {}
    for key, user in (("owner", owner), ("member", staff[0]), ("operator", ops_user)):
        async with web.sessions() as session, session.begin():
            tokens[key] = await web.web_sessions.create(session, user, mfa_pending=False, ip="127.0.0.1",
                                                        user_agent="screenshots")
    tokens["user_id"] = staff[1].id
    return tokens


PAGES: list[tuple[str, str, str]] = [
    # (who, path, file name); "anon": not logged in
    ("anon", "/login", "login"),
    ("owner", "/settings", "settings"),
    ("owner", "/", "dashboard"),
    ("owner", "/calls", "calls"),
    ("owner", "/numbers", "numbers"),
    ("owner", "/numbers/search", "numbers-search"),
    ("owner", "/numbers/%2B14155550101/rent", "numbers-rent"),
    ("owner", "/users", "users"),
    ("owner", "/users/new", "users-new"),
    ("owner", "/users/{user_id}", "user-detail"),
    ("owner", "/billing", "billing"),
    ("owner", "/billing/receipts/1", "receipt"),
    ("member", "/", "member-dashboard"),
    ("operator", "/operator", "operator-orgs"),
    ("operator", "/operator/trunks", "operator-trunks"),
    ("operator", "/operator/rates", "operator-rates"),
    ("operator", "/operator/numbers", "operator-numbers"),
]


async def main(chromium: str) -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    (OUT / ".gitignore").write_text("*\n")
    url = f"sqlite+aiosqlite:///{OUT / 'demo.db'}"
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    settings = Settings(data_dir=OUT / "data", secret_key=secrets.token_urlsafe(32), database_url=url,
                        bind="127.0.0.1", http_port=_free_port(), public_host="pbx.acme-dental.example")
    settings.data_dir.mkdir()
    server = RingwellServer(settings)
    tokens = await _seed(server)
    app = build_app(lambda: {}, (), server.web)
    http = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.http_port, log_level="warning"))
    serving = asyncio.create_task(http.serve())
    for _ in range(200):  # at most 10 s
        if http.started:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError("the HTTP server did not start within 10 s")
    base = f"http://localhost:{settings.http_port}"
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            for label, width in WIDTHS.items():
                for who, path, name in PAGES:
                    context = await browser.new_context(viewport={"width": width, "height": 900},
                                                        device_scale_factor=1)
                    # The session cookie is __Host- (Secure, no Domain), which CDP will not plant for plain
                    # HTTP: send it as a header instead, as the browser would over HTTPS.
                    if who != "anon":
                        await context.set_extra_http_headers({"Cookie": f"{SESSION_COOKIE}={tokens[who]}"})
                    page = await context.new_page()
                    response = await page.goto(base + path.format(user_id=tokens["user_id"]))
                    status = response.status if response else 0
                    file = OUT / f"{name}-{label}.png"
                    await page.screenshot(path=str(file), full_page=True)
                    # The first screen as well: long pages shrink too much to judge when viewed whole.
                    await page.screenshot(path=str(file.with_name(f"{name}-{label}-top.png")))
                    log.info("%s %s → %d, %s", who, path, status, file.relative_to(ROOT))
                    await context.close()
                # A form that cannot be a GET: the page that shows a new user's SIP password once.
                context = await browser.new_context(viewport={"width": width, "height": 900})
                await context.set_extra_http_headers({"Cookie": f"{SESSION_COOKIE}={tokens['owner']}"})
                page = await context.new_page()
                await page.goto(base + "/users/new")
                await page.fill("#name", f"Sam {label.title()}")
                await page.fill("#email", f"sam-{label}@acme-dental.example")
                await page.fill("#extension", "130" if label == "desktop" else "131")
                await page.uncheck("input[name=portal_access]")
                await page.click("form[action='/users'] button[type=submit]")
                await page.wait_for_load_state()
                await page.screenshot(path=str(OUT / f"user-created-{label}.png"), full_page=True)
                log.info("owner POST /users → %s", OUT.relative_to(ROOT) / f"user-created-{label}.png")
                await context.close()
            await browser.close()
    finally:
        http.should_exit = True
        await asyncio.wait_for(serving, 10)
        await server.engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    asyncio.run(main(parser.parse_args().chromium))
