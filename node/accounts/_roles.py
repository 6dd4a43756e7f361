"""Roles and what each may do (the node-core issue's role list).

Roles are not a hierarchy: an admin manages accounts, settings and peers but does not
register households; a coordinator does not manage accounts. Keeping duties apart means
one stolen account cannot do everything. Routes ask :func:`allowed`.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Mapping
from typing import Final

__all__ = ["PERMISSIONS", "Permission", "Role", "allowed"]


class Role(enum.StrEnum):
    """A staff account's role. Values are stored: never change them."""

    ADMIN = "admin"  # accounts, settings, peers
    COORDINATOR = "coordinator"  # programs, messaging, reports
    CASE_WORKER = "case_worker"  # households, deliveries
    AUDITOR = "auditor"  # read-only, including the audit log


class Permission(enum.StrEnum):
    """Something a route may require."""

    MANAGE_ACCOUNTS = "manage_accounts"
    EDIT_SETTINGS = "edit_settings"
    MANAGE_PEERS = "manage_peers"
    MANAGE_PROGRAMS = "manage_programs"
    MESSAGE = "message"
    VIEW_REPORTS = "view_reports"
    EDIT_HOUSEHOLDS = "edit_households"
    RECORD_DELIVERIES = "record_deliveries"
    VIEW_HOUSEHOLDS = "view_households"  # lists, scores, the queue: no PII beyond names
    VIEW_PII = "view_pii"  # a household's full record (audited)
    EDIT_SCORING = "edit_scoring"  # the need-scoring model and the queue's settings
    OVERRIDE_DUPLICATE = "override_duplicate"  # deliver despite another NGO's recent aid
    VIEW_AUDIT_LOG = "view_audit_log"
    VIEW_DASHBOARD = "view_dashboard"


_A, _C, _W, _R = Role.ADMIN, Role.COORDINATOR, Role.CASE_WORKER, Role.AUDITOR

#: Permission -> the roles that hold it. Admins also read the audit log: they answer
#: for the accounts it mostly records (reading it changes nothing; the log itself is
#: append-only for everyone). Auditors read reports and the audit log, and change nothing.
PERMISSIONS: Final[Mapping[Permission, frozenset[Role]]] = types.MappingProxyType(
    {
        Permission.MANAGE_ACCOUNTS: frozenset({_A}),
        Permission.EDIT_SETTINGS: frozenset({_A}),
        Permission.MANAGE_PEERS: frozenset({_A}),
        Permission.MANAGE_PROGRAMS: frozenset({_C}),
        Permission.MESSAGE: frozenset({_C}),
        Permission.VIEW_REPORTS: frozenset({_C, _R}),
        Permission.EDIT_HOUSEHOLDS: frozenset({_W}),
        Permission.RECORD_DELIVERIES: frozenset({_W}),
        Permission.VIEW_HOUSEHOLDS: frozenset({_C, _W}),
        Permission.VIEW_PII: frozenset({_W}),
        Permission.EDIT_SCORING: frozenset({_C}),
        Permission.OVERRIDE_DUPLICATE: frozenset({_C}),
        Permission.VIEW_AUDIT_LOG: frozenset({_A, _R}),
        Permission.VIEW_DASHBOARD: frozenset({_A, _C, _W, _R}),
    }
)


def allowed(role: Role, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission``."""
    return role in PERMISSIONS[permission]
