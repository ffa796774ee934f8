"""``ringwell admin create-staff``: an operator login made from the command line, used through the portal."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit

from sqlalchemy import select

from ringwell.cli import main
from ringwell.features.accounts.models import Organization, User


async def test_create_staff_prints_a_set_password_link_that_works(web, capsys):
    settings = web.services.settings
    (settings.data_dir / "ringwell.toml").write_text(
        f'secret_key = "{settings.secret_key}"\ndatabase_url = "{settings.database_url}"\n'
        'public_url = "https://ringwell.test"\n')
    data = str(settings.data_dir)
    argv = ["admin", "create-staff", "--data-dir", data, "--email", "Olga@Example.com", "--role", "support",
            "--name", "Olga Ops"]
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    link = re.search(r"(https://ringwell\.test/password/reset\?token=\S+)", out).group(1)
    # The same address again: refused, nothing printed as a link.
    assert await asyncio.to_thread(main, argv) == 1
    captured = capsys.readouterr()
    assert "already has a login" in captured.err and "token=" not in captured.out
    assert await asyncio.to_thread(main, ["admin", "create-staff", "--data-dir", data, "--email",
                                          "audit@example.com", "--role", "auditor"]) == 0
    async with web.services.sessions() as session:
        orgs = (await session.execute(select(Organization).where(Organization.kind == "operator"))).scalars().all()
        staff = (await session.execute(select(User).where(User.login_email.is_not(None))
                                       .order_by(User.extension))).scalars().all()
    assert [o.name for o in orgs] == ["Operator"]
    assert [(u.login_email, u.role, u.name, u.org_id) for u in staff] == [
        ("olga@example.com", "support", "Olga Ops", orgs[0].id), ("audit@example.com", "auditor", None, orgs[0].id)]

    browser = web.client()
    parts = urlsplit(link)
    form = await browser.get(f"{parts.path}?{parts.query}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    done = await browser.post("/password/reset", data={"csrf_token": token, "token": parse_token(link),
                                                       "password": "olga's passphrase", "password2":
                                                       "olga's passphrase"})
    assert done.status_code == 303
    page = await browser.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    logged = await browser.post("/login", data={"csrf_token": token, "email": "olga@example.com",
                                                "password": "olga's passphrase"})
    assert logged.status_code == 303
    me = (await browser.get("/api/v1/me")).json()
    assert me["staff"] is True and me["role"] == "support" and "operator.orgs.read" in me["permissions"]


def parse_token(link: str) -> str:
    return urlsplit(link).query.split("token=", 1)[1]
