"""Labels for the values the UI shows: roles, governorates, sectors, audit actions,
and the messages for error codes. Marked with ``N_`` for the catalog; translated
where shown."""

from __future__ import annotations

from typing import Final

from ._i18n import N_

__all__ = ["ACTIONS", "ERRORS", "GOVERNORATES", "PASSWORD_PROBLEMS", "ROLES", "SECTORS"]

ROLES: Final = {
    "admin": N_("Administrator"),
    "coordinator": N_("Coordinator"),
    "case_worker": N_("Case worker"),
    "auditor": N_("Auditor"),
}

#: Iraq's governorates by their OCHA P-codes (the protocol's ``governorate`` field).
GOVERNORATES: Final = {
    "IQG01": N_("Anbar"),
    "IQG02": N_("Basrah"),
    "IQG03": N_("Muthanna"),
    "IQG04": N_("Najaf"),
    "IQG05": N_("Qadissiya"),
    "IQG06": N_("Sulaymaniyah"),
    "IQG07": N_("Babylon"),
    "IQG08": N_("Baghdad"),
    "IQG09": N_("Duhok"),
    "IQG10": N_("Diyala"),
    "IQG11": N_("Erbil"),
    "IQG12": N_("Kerbala"),
    "IQG13": N_("Kirkuk"),
    "IQG14": N_("Missan"),
    "IQG15": N_("Ninewa"),
    "IQG16": N_("Salah al-Din"),
    "IQG17": N_("Thi-Qar"),
    "IQG18": N_("Wassit"),
    "IQG19": N_("Halabja"),
}

SECTORS: Final = {
    "cash": N_("Cash assistance"),
    "disability": N_("Disability inclusion"),
    "education": N_("Education"),
    "food_security": N_("Food security"),
    "gbv": N_("Gender-based violence"),
    "health": N_("Health"),
    "legal_aid": N_("Legal aid"),
    "livelihoods": N_("Livelihoods"),
    "mental_health": N_("Mental health"),
    "protection": N_("Protection"),
    "shelter": N_("Shelter"),
    "wash": N_("Water, sanitation and hygiene"),
}

ACTIONS: Final = {
    "login.success": N_("Signed in"),
    "login.failure": N_("Failed sign-in"),
    "login.lockout": N_("Account locked after failed sign-ins"),
    "session.end": N_("Signed out"),
    "password.change": N_("Password changed"),
    "password.reset": N_("Password reset by an administrator"),
    "password.recover": N_("Password recovered on the server"),
    "account.create": N_("Account created"),
    "account.disable": N_("Account disabled"),
    "account.enable": N_("Account enabled"),
    "account.role": N_("Role changed"),
    "settings.profile": N_("Organisation profile edited"),
    "federation.create": N_("Federation founded"),
    "federation.join": N_("Federation joined"),
    "peer.propose": N_("Node proposed as a peer"),
    "peer.approve": N_("Peer approved"),
    "peer.block": N_("Peer blocked"),
    "peer.unblock": N_("Peer unblocked"),
    "invite.create": N_("Invite created"),
    "invite.accepted": N_("Invite used by a node (awaiting approval)"),
    "blocklist.import": N_("Blocklist imported"),
    "blocklist.remove": N_("Author removed from the blocklist"),
    "feed.confirm_head": N_("Own feed head confirmed by an administrator after a restore"),
    "message.sent": N_("Message sent to a peer organisation"),
    "message.read": N_("Messages from a peer organisation read"),
    "oracle.deal": N_("Pseudonym oracle key dealt (new epoch)"),
    "oracle.import": N_("Pseudonym oracle key share imported"),
    "oracle.evaluate": N_("Pseudonyms evaluated for a peer (count)"),
    "oracle.quota": N_("Pseudonym oracle daily quota changed"),
    "oracle.quota_refused": N_("Pseudonym request refused: daily quota spent"),
    "ataa.household.create": N_("Household registered"),
    "ataa.household.update": N_("Household record edited"),
    "ataa.household.view_pii": N_("Household's personal data viewed"),
    "ataa.household.archive": N_("Household archived"),
    "ataa.household.merge": N_("Duplicate households merged"),
    "ataa.duplicate.dismiss": N_("Duplicate suggestion dismissed"),
    "ataa.datakey.rotate": N_("Household data key rotated"),
    "ataa.scoring.model": N_("Need-scoring model changed"),
    "ataa.queue.settings": N_("Priority queue settings changed"),
    "ataa.import.start": N_("Household import started"),
    "ataa.import.done": N_("Household import finished"),
    "ataa.distribution.create": N_("Distribution planned"),
    "ataa.distribution.pick": N_("Households picked from the queue"),
    "ataa.distribution.include": N_("Household included in a distribution"),
    "ataa.distribution.exclude": N_("Household excluded from a distribution"),
    "ataa.distribution.close": N_("Distribution closed"),
    "ataa.delivery": N_("Delivery recorded"),
    "ataa.delivery.override": N_("Duplicate-assistance warning overridden"),
    "ataa.delivery.publish": N_("Delivery published to the federation"),
    "ataa.delivery.void": N_("Delivery voided"),
}

ERRORS: Final = {
    "BAD_CREDENTIALS": N_("Wrong username or password."),
    "LOCKED": N_("Too many failed attempts. Try again after %(minutes)s minutes."),
    "DISABLED": N_("This account is disabled. Ask an administrator."),
    "FORBIDDEN": N_("Your role does not allow this."),
    "WEAK_PASSWORD": N_("Choose a stronger password."),
    "PASSWORD_CHANGE_REQUIRED": N_("Change your one-time password first."),
    "NOT_FOUND": N_("This page does not exist."),
    "CONFLICT": N_(
        "This conflicts with the current state (for example, a username that is taken, "
        "or the last administrator)."
    ),
    "EXPIRED": N_("Your session has ended. Sign in again."),
    "CSRF": N_("The form expired or came from another site. Reload the page and try again."),
    "INVALID": N_("Some values are not valid."),
    "UNAVAILABLE": N_("The node's database is not answering. Try again shortly."),
    "STORAGE_FULL": N_(
        "The node's disk is full: nothing more can be saved until its operator frees space."
    ),
    "INTERNAL": N_("Something went wrong on the node. The error is in its log."),
    "BAD_REQUEST": N_("The request was not understood."),
    "METHOD_NOT_ALLOWED": N_("This action is not available here."),
    "TOO_LARGE": N_("What was sent is too large."),
    "UNAUTHENTICATED": N_("Sign in first."),
    "MISMATCH": N_("The two new passwords differ."),
}

PASSWORD_PROBLEMS: Final = {
    "TOO_SHORT": N_("The password is too short: use at least %(min)s characters."),
    "TOO_LONG": N_("The password is too long."),
    "SAME_AS_USERNAME": N_("The password must not be the username."),
    "TOO_COMMON": N_("This password is too common; choose another."),
    "UNCHANGED": N_("The new password must differ from the old one."),
}
