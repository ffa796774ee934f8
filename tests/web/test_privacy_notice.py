"""The public privacy notice (``/privacy``) and the machine-readable register (``GET /api/v1/privacy/register``),
both generated from the data register with this server's retention periods (issue 8)."""

from __future__ import annotations

import pytest

import ringwell.storage.models  # noqa: F401  (every table on Base.metadata)
from ringwell.features.privacy import catalog_core
from ringwell.features.privacy.catalog import REGISTER
from ringwell.features.privacy.notice import CATEGORY_WORDS
from ringwell.storage.base import Base
from tests.web.test_portal_pages import text

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # no database involved


@pytest.fixture
def web_settings() -> dict[str, object]:
    return {"usage_retention_days": 180}  # an operator's own period shows on the page


async def test_the_notice_needs_no_login_and_covers_every_category(web):
    response = await web.client().get("/privacy")
    assert response.status_code == 200
    page = text(response)
    for title, _summary in CATEGORY_WORDS.values():
        assert title in page
    # How long, from the retention policy: the defaults, and the operator's own usage period.
    assert "call records: 12 months" in page
    assert "the financial ledger, for the legal accounting period: 7 years" in page
    assert "sign-ins, sessions, phone registrations and event deliveries: 6 months" in page
    # The exceptions a deletion leaves, with the reason.
    assert "accounting law: kept for the legal period, without dialled numbers" in page
    assert "security record: the audit trail must stay complete and verifiable" in page
    # Purposes in plain words, legal bases, what the export holds.
    assert "the number that was dialled" in page
    assert "required by law" in page and "GDPR art. 6(1)(b)" in page
    # Secrets are declared but their purposes say no more than a hash is kept.
    assert "only a one-way Argon2id hash is stored" in page
    assert 'href="/api/v1/privacy/register"' in response.text


async def test_the_footer_links_to_the_notice(web):
    page = (await web.client().get("/login")).text
    assert '<a href="/privacy">Privacy</a>' in page


async def test_the_register_json_has_every_table_and_column(web):
    response = await web.client().get("/api/v1/privacy/register")
    assert response.status_code == 200
    document = response.json()
    # Exactly the register (whose completeness against the models tests/unit/test_data_register.py checks),
    # and with it every table and column that existed before the privacy center.
    assert set(document["tables"]) == set(REGISTER)
    for core in catalog_core.TABLES:
        model = Base.metadata.tables[core.name]
        assert {c.name for c in model.columns} <= set(document["tables"][core.name]["columns"]), core.name
    number = document["tables"]["call_records"]["columns"]["callee_number"]
    assert number == {"category": "communications_metadata", "purpose": "the number that was dialled",
                      "basis": "contract", "retention": "call_records", "exported": True, "erasure": "anonymise",
                      "exception": None}
    assert document["tables"]["users"]["columns"]["password_hash"]["exported"] is False
    assert document["retention"]["usage"] == {
        "days": 180, "text": "sign-ins, sessions, phone registrations and event deliveries: 6 months"}
    assert document["retention"]["configuration"]["days"] is None
