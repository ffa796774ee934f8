"""Errors of the fraud slice (stable ``error_id`` values).

A call the policy refuses is not an error: ``policy.decide`` returns a ``Refused`` value.
These are for input that cannot be acted on.
"""

from __future__ import annotations

from ringwell.errors import Invalid

__all__ = ["InvalidFraudSetting", "UnparseableNumber"]


class UnparseableNumber(Invalid):
    """What a phone dialled cannot be a phone number (the call is answered 484 Address Incomplete)."""

    error_id = "unparseable_number"


class InvalidFraudSetting(Invalid):
    """A destination rule or a cap the operator gave is not acceptable."""

    error_id = "invalid_fraud_setting"
