"""Notification settings: environment variables ``QAQPA_NOTIFY_*`` (pydantic-settings)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.notify.rules import Channel


class NotifySettings(BaseSettings):
    """Where each channel's gateway is (apprise URLs) and how the planner and workers behave."""

    model_config = SettingsConfigDict(env_prefix="QAQPA_NOTIFY_", extra="forbid")

    sms_url: str | None = Field(
        default=None,
        description="apprise URL of the SMS gateway, e.g. json://gateway:9025/sms (the phone "
        "goes in the JSON field 'to', the outbox id in the Idempotency-Key header); None: no SMS",
    )
    email_url: str | None = Field(
        default=None,
        description="apprise mailto:// URL of the SMTP server, e.g. "
        "mailto://127.0.0.1:8025?from=qaqpa@school.kz&mode=insecure; None: no e-mail",
    )
    push_url: str | None = Field(
        default=None,
        description="apprise URL of the push service with {user} for the parent's account "
        "number, e.g. ntfy://push.example.kz/qaqpa-{user}; None: no push",
    )
    resend_interrupted: list[Channel] = Field(
        default=[Channel.SMS],
        description="Channels whose gateway drops a repeated Idempotency-Key: a send "
        "interrupted by a crash is repeated (at-least-once, deduplicated by the gateway); on "
        "the others it is not repeated (at-most-once)",
    )
    workers: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Delivery worker threads (a gateway call waits on the network: many threads)",
    )
    planner_poll_s: float = Field(default=0.2, gt=0, le=60, description="Planner poll interval")
    worker_poll_s: float = Field(default=0.2, gt=0, le=60, description="Idle worker poll interval")
    plan_batch: int = Field(default=500, ge=1, description="Events planned per transaction")
    sms_per_hour: int = Field(
        default=6,
        ge=1,
        le=1000,
        description="Routine SMS (entry, exit, meal, low balance) one guardian gets per rolling "
        "hour at most; more wait and go as one digest. A manual pass is never held",
    )
    claim_batch: int = Field(
        default=2,
        ge=1,
        description="Messages one worker claims at once (few: a slow gateway holds the rest up)",
    )
    max_attempts: int = Field(default=5, ge=1, description="Attempts before a message fails")
    backoff_base_s: float = Field(default=2.0, ge=0, description="First retry delay")
    backoff_cap_s: float = Field(default=300.0, ge=0, description="Longest retry delay")
    send_timeout_s: float = Field(default=10.0, gt=0, description="One gateway call at most")
    lease_s: float = Field(
        default=60.0,
        ge=0,
        description="A message 'sending' for longer than this was interrupted by a crash",
    )
    max_event_age_s: int = Field(
        default=6 * 3600,
        ge=1,
        description="Events older than this when planned (an edge back after days offline) "
        "notify nobody: an old 'entered school' message misleads",
    )
    low_balance_tiyn: int = Field(
        default=50_000, ge=0, description="A canteen balance below this is 'low' (tiyn)"
    )
    fault_kill_planner_before_commit: int = Field(
        default=0, ge=0, description="Fault injection for tests: SIGKILL before the Nth plan commit"
    )
    fault_kill_after_send: int = Field(
        default=0,
        ge=0,
        description="Fault injection for tests: SIGKILL after the Nth send, "
        "before it is marked sent",
    )

    def channel_url(self, channel: Channel) -> str | None:
        return {
            Channel.SMS: self.sms_url,
            Channel.EMAIL: self.email_url,
            Channel.PUSH: self.push_url,
        }[channel]

    def channels(self) -> set[Channel]:
        return {c for c in Channel if self.channel_url(c)}
