"""API shapes of legal holds and retention reports (operator console)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ringwell.features.privacy.models_holds import LegalHold, RetentionRun

__all__ = ["ClassCountOut", "LegalHoldIn", "LegalHoldList", "LegalHoldOut", "RetentionRunList", "RetentionRunOut"]


class LegalHoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org_id: str = Field(max_length=36)
    user_id: str | None = Field(None, max_length=36, description="the person held; null: the whole organization")
    reason: str = Field(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]*$",
                        description="why (the case, the order): kept with the hold")


class LegalHoldOut(BaseModel):
    id: str
    org_id: str
    user_id: str | None
    reason: str
    created_by: str | None
    created_at: datetime
    released_at: datetime | None
    released_by: str | None
    active: bool

    @classmethod
    def of(cls, hold: LegalHold) -> LegalHoldOut:
        return cls(id=hold.id, org_id=hold.org_id, user_id=hold.user_id, reason=hold.reason,
                   created_by=hold.created_by, created_at=hold.created_at, released_at=hold.released_at,
                   released_by=hold.released_by, active=hold.released_at is None)


class LegalHoldList(BaseModel):
    items: list[LegalHoldOut]


class ClassCountOut(BaseModel):
    purged: int = Field(description="deleted (ledger_descriptions: dialled numbers scrubbed)")
    held: int = Field(description="due, but kept because a legal hold covers it")


class RetentionRunOut(BaseModel):
    id: str
    started_at: datetime
    finished_at: datetime
    dry_run: bool
    counts: dict[str, ClassCountOut]

    @classmethod
    def of(cls, run: RetentionRun) -> RetentionRunOut:
        return cls(id=run.id, started_at=run.started_at, finished_at=run.finished_at, dry_run=run.dry_run,
                   counts={name: ClassCountOut(purged=int(c.get("purged", 0)), held=int(c.get("held", 0)))
                           for name, c in run.counts.items()})


class RetentionRunList(BaseModel):
    items: list[RetentionRunOut]
