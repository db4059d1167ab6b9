"""Every table of the server, for Alembic and for tests: importing this registers all models."""

from __future__ import annotations

from server import models
from server.accounts import models as accounts_models
from server.audit import models as audit_models
from server.badges import models as badges_models
from server.canteen import models as canteen_models
from server.cardfee import models as cardfee_models
from server.cards import models as cards_models
from server.consents import models as consents_models
from server.duty import models as duty_models
from server.equipment import models as equipment_models
from server.gifted import models as gifted_models
from server.notify import models as notify_models
from server.people import models as people_models
from server.policy import models as policy_models
from server.retention import models as retention_models
from server.rollups import models as rollups_models
from server.roster import models as roster_models
from server.staffpins import models as staffpins_models
from server.sync import cardmove as cardmove_models
from server.trustees import models as trustees_models
from server.tutoring import models as tutoring_models
from server.vouchers import models as vouchers_models

Base = models.Base

__all__ = [
    "Base",
    "accounts_models",
    "audit_models",
    "badges_models",
    "canteen_models",
    "cardfee_models",
    "cardmove_models",
    "cards_models",
    "consents_models",
    "duty_models",
    "equipment_models",
    "gifted_models",
    "models",
    "notify_models",
    "people_models",
    "policy_models",
    "retention_models",
    "rollups_models",
    "roster_models",
    "staffpins_models",
    "trustees_models",
    "tutoring_models",
    "vouchers_models",
]
