"""Webhook, store-settings and delivery-log models at the API and CLI boundary."""

from datetime import datetime
from typing import Annotated

from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    UrlConstraints,
    field_validator,
)

from core.contract import EmailAddress
from server.models import DeliveryStatus
from server.notify.enqueue import DEFAULT_WEBHOOK_KINDS, WebhookKind
from server.notify.preferences import EmailMode, Milestone
from server.schemas import _In

WebhookUrl = Annotated[AnyUrl, UrlConstraints(max_length=500, allowed_schemes=["http", "https"])]


class WebhookIn(_In):
    url: WebhookUrl
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        description="Signs every delivery; omit it to have one generated (shown once).",
    )
    kinds: list[WebhookKind] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_KINDS), min_length=1
    )

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: AnyUrl) -> AnyUrl:
        # They would sit in the database and in every log line that prints the URL.
        if url.username or url.password:
            raise ValueError("must not contain a user name or password; the secret signs")
        return url

    @field_validator("kinds")
    @classmethod
    def _distinct(cls, kinds: list[WebhookKind]) -> list[WebhookKind]:
        return list(dict.fromkeys(kinds))


class WebhookOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    url: str
    kinds: list[str]
    active: bool  # False: removed, or the receiver answered 410 Gone
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="Shown this once; verify X-LensTrack-Signature with it.")


class DeliveryOut(BaseModel):
    id: int
    channel: str
    destination_id: int
    kind: str
    milestone: Milestone | None  # the store's milestone it told, if it was one
    job_number: str
    status: DeliveryStatus
    attempts: int
    response_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None  # None once delivered or failed
    created_at: datetime
    delivered_at: datetime | None


class DeliveryPage(BaseModel):
    total: int
    items: list[DeliveryOut]


class StoreNotifications(_In):
    """A store's choices, as the settings page and API take and show them."""

    notify_email: EmailAddress | None = Field(
        description="Where e-mails go; none: no e-mail (webhooks still get the milestones)."
    )
    milestones: list[Milestone] = Field(max_length=len(Milestone))
    email_mode: EmailMode = Field(
        description="immediate: one e-mail per milestone; digest: one a day at digest_hour."
    )
    digest_hour: StrictInt = Field(ge=0, le=23, description="Hour of the day, lab time.")

    @field_validator("milestones")
    @classmethod
    def _distinct(cls, milestones: list[Milestone]) -> list[Milestone]:
        return list(dict.fromkeys(milestones))


class StoreNotificationsOut(BaseModel):
    store_code: str
    notify_email: str | None
    milestones: list[Milestone]
    email_mode: EmailMode
    digest_hour: int
    can_edit: bool  # the caller may change them (a store manager or lab manager)
