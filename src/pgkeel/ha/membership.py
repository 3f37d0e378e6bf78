"""Who the members are now: the store's membership record after a scaling, else the document's. Pure.

An agent keeps the document it started with; a scaling `pgkeel apply` records the new members and k in
the store (pgkeel.ha.records.Membership), and every agent uses that from its next loop: the sync set
(`ANY k` of the others), slots for the others (a removed member's slot is stale and dropped), the
candidates of an election, the members a failsafe round asks. Safety through the change comes from
the sync record's transitions (pgkeel.ha.sync), which already order postgres and store updates for any
change of the set or of k; a member not in the membership never takes the lease (pgkeel.ha.election).
"""

from __future__ import annotations

from collections.abc import Sequence

from pgkeel.ha.records import ClusterState
from pgkeel.ha.settings import HASettings


def current_members(configured: Sequence[str], view: ClusterState | None) -> tuple[str, ...]:
    """The recorded membership when there is one, else the configured members."""
    if view is not None and view.membership is not None:
        return view.membership.members
    return tuple(configured)


def known_members(configured: Sequence[str], view: ClusterState | None) -> tuple[str, ...]:
    """Configured and recorded members together: whom a failsafe promise may be given while they differ."""
    return tuple(dict.fromkeys([*configured, *current_members(configured, view)]))


def current_settings(settings: HASettings, view: ClusterState | None) -> HASettings:
    """The agent's settings with the recorded k (syncStandbys) of the current membership."""
    if view is None or view.membership is None or view.membership.sync_standbys == settings.sync_standbys:
        return settings
    return settings.model_copy(update={"sync_standbys": view.membership.sync_standbys})
