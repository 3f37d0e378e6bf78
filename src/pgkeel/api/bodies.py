"""The bodies of the authenticated POSTs (/switchover, /pause, /reinit …): strict models, one line per problem.

Strict because a key the server does not act on must never be dropped in silence: a Patroni-style
body's `scheduled_at` once turned a scheduled switchover into an immediate one. Unknown keys and
wrong types are refused (400) naming the key and the accepted ones; Patroni's `candidate` is an
alias of `to` and its `leader` a precondition; `scheduled_at` is refused by name (Patroni's ISO string is
not read: a schedule is `at`, epoch seconds, so no time zone is ever guessed).
The OpenAPI description takes its request schemas from these models.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Patroni's schedule key: refused by name, never dropped (the leader would switch at once).
SCHEDULED = "scheduled_at"
SCHEDULE_REFUSED = "scheduled_at: Patroni's key is not supported; schedule with 'at' (epoch seconds, UTC)"


class SwitchoverBody(BaseModel):
    """Hand leadership from the current leader to `to` (or the best streaming replica)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    to: str | None = Field(default=None, min_length=1, description="Member to hand over to (default: the best).")
    candidate: str | None = Field(default=None, min_length=1, description="Patroni's name for `to`.")
    leader: str | None = Field(
        default=None, min_length=1, description="Refuse (409) unless this member is the leader now (as Patroni)."
    )
    at: float | None = Field(
        default=None, gt=0, description="Carry it out at this time (epoch seconds, UTC), within 7 days; default: now."
    )

    @model_validator(mode="after")
    def _one_target(self) -> SwitchoverBody:
        if self.to is not None and self.candidate is not None:
            raise ValueError("give 'to' or its alias 'candidate', not both")
        return self

    @property
    def target(self) -> str | None:
        return self.to if self.to is not None else self.candidate


class FailoverBody(SwitchoverBody):
    """Promote `to`; with `force` also when no leader holds the lease."""

    to: str | None = Field(default=None, min_length=1, description="Member to promote (`to` or `candidate`).")
    force: bool = Field(default=False, description="Also when no leader holds the lease (may lose commits).")

    @model_validator(mode="after")
    def _needs_target(self) -> FailoverBody:
        if self.target is None:
            raise ValueError("failover needs 'to' (or 'candidate'): the member to promote")
        return self


class PauseBody(BaseModel):
    """Maintenance mode: no automatic failover until `until` (epoch seconds) or for `seconds`, or until resumed."""

    model_config = ConfigDict(extra="forbid", strict=True)

    until: float | None = Field(default=None, gt=0, description="End of the pause, epoch seconds (UTC).")
    seconds: float | None = Field(default=None, gt=0, le=366 * 86400, description="Length of the pause from now.")
    reason: str | None = Field(default=None, max_length=200, description="Shown in status, e.g. a ticket.")
    by: str | None = Field(default=None, max_length=100, description="Who asked (shown in status).")

    @model_validator(mode="after")
    def _one_end(self) -> PauseBody:
        if self.until is not None and self.seconds is not None:
            raise ValueError("give 'until' or 'seconds', not both")
        return self


class ResumeBody(BaseModel):
    """Leave maintenance mode now."""

    model_config = ConfigDict(extra="forbid", strict=True)


class RestartBody(BaseModel):
    """Restart this node's postgres (its agent stops and starts it); the leader of several members only in place."""

    model_config = ConfigDict(extra="forbid", strict=True)

    in_place: bool = Field(
        default=False, description="The leader restarts without handing over: writes stop for the restart."
    )


class ReloadBody(BaseModel):
    """Reload this node's postgresql.conf and pg_hba.conf now."""

    model_config = ConfigDict(extra="forbid", strict=True)


class CancelSwitchoverBody(BaseModel):
    """Remove the pending (e.g. scheduled) switchover request."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ReinitBody(BaseModel):
    """Re-clone this node (a replica) from the leader; its data directory is kept aside, never deleted."""

    model_config = ConfigDict(extra="forbid", strict=True)


class MembershipBody(BaseModel):
    """Scaling: record who the members are now and the k of `ANY k (...)`; every agent uses it from its next loop."""

    model_config = ConfigDict(extra="forbid", strict=True)

    members: list[str] = Field(min_length=1, max_length=99, description="Every member's name, in ordinal order.")
    sync_standbys: int = Field(alias="syncStandbys", ge=0, le=98, description="k of the synchronous set.")

    @model_validator(mode="after")
    def _distinct(self) -> MembershipBody:
        if len(set(self.members)) != len(self.members):
            raise ValueError("members: each name once")
        if len(self.members) % 2 == 0:
            raise ValueError(f"members: {len(self.members)} is even; 2n+1 members (1, 3, 5 ...) survive n failures")
        if self.sync_standbys > len(self.members) - 1:
            raise ValueError(f"syncStandbys: at most members - 1 = {len(self.members) - 1}")
        return self


class BackupBody(BaseModel):
    """An on-demand base backup, queued in the store; the leader's agent runs it (from a standby when it can)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    kind: Literal["full", "diff", "incr", "drill"] = Field(
        default="full", description="pgBackRest backup type, or `drill`: a restore drill of the newest backup."
    )
    by: str | None = Field(default=None, max_length=200, description="Who asked, for the record.")


class FailsafeBody(BaseModel):
    """From the primary, which cannot reach the store: promise not to take the lease for one ttl (peer to peer)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    leader: str = Field(min_length=1, max_length=63, description="The member asking (the last leader).")


BODIES: dict[str, type[BaseModel]] = {
    "/switchover": SwitchoverBody,
    "/failover": FailoverBody,
    "/pause": PauseBody,
    "/resume": ResumeBody,
    "/restart": RestartBody,
    "/reload": ReloadBody,
    "/failsafe": FailsafeBody,
    "/switchover/cancel": CancelSwitchoverBody,
    "/reinit": ReinitBody,
    "/membership": MembershipBody,
    "/backup": BackupBody,
}


class BodyError(ValueError):
    """The body is refused (400); the message names every problem and the accepted keys."""


def parse_body(path: str, body: dict[str, Any]) -> BaseModel:
    model = BODIES[path]
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        accepted = ", ".join(model.model_fields)
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden" and key == SCHEDULED:
                problems.append(SCHEDULE_REFUSED)
            elif error["type"] == "extra_forbidden":
                problems.append(f"unknown key {key!r} (accepted keys: {accepted})")
            elif key:
                problems.append(f"{key}: {error['msg']}")
            else:
                problems.append(str(error["msg"]).removeprefix("Value error, "))
        raise BodyError("; ".join(problems)) from None
