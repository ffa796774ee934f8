"""Errors of the webhooks slice (stable ``error_id`` values).

```
DomainError
├── NotFound → WebhookEndpointNotFound, WebhookDeliveryNotFound
├── Invalid  → InvalidWebhookUrl, InvalidWebhookEvents, InvalidWebhookData, InvalidWebhookCursor
└── Conflict → WebhookEndpointDisabled, TooManyWebhookEndpoints
```
"""

from __future__ import annotations

from ringwell.errors import Conflict, Invalid, NotFound

__all__ = [
    "InvalidWebhookCursor",
    "InvalidWebhookData",
    "InvalidWebhookEvents",
    "InvalidWebhookUrl",
    "TooManyWebhookEndpoints",
    "WebhookDeliveryNotFound",
    "WebhookEndpointDisabled",
    "WebhookEndpointNotFound",
]


class WebhookEndpointNotFound(NotFound):
    """No such endpoint in this organization (also: another organization's)."""

    error_id = "webhook_endpoint_not_found"


class WebhookDeliveryNotFound(NotFound):
    error_id = "webhook_delivery_not_found"


class InvalidWebhookUrl(Invalid):
    """Not an http(s) URL, or its host is not a public address (see ``webhook_allow_private``)."""

    error_id = "invalid_webhook_url"


class InvalidWebhookEvents(Invalid):
    error_id = "invalid_webhook_events"


class InvalidWebhookData(Invalid):
    error_id = "invalid_webhook_data"


class InvalidWebhookCursor(Invalid):
    error_id = "invalid_cursor"


class WebhookEndpointDisabled(Conflict):
    """A test event for a disabled endpoint: enable it first."""

    error_id = "webhook_endpoint_disabled"


class TooManyWebhookEndpoints(Conflict):
    error_id = "webhook_endpoint_limit"
