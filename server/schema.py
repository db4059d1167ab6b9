"""Every table of the server, for Alembic and for tests: importing this registers all models."""

from __future__ import annotations

from server import models
from server.accounts import models as accounts_models
from server.audit import models as audit_models
from server.canteen import models as canteen_models
from server.cards import models as cards_models
from server.consents import models as consents_models
from server.notify import models as notify_models
from server.people import models as people_models
from server.policy import models as policy_models
from server.roster import models as roster_models
from server.vouchers import models as vouchers_models

Base = models.Base

__all__ = [
    "Base",
    "accounts_models",
    "audit_models",
    "canteen_models",
    "cards_models",
    "consents_models",
    "models",
    "notify_models",
    "people_models",
    "policy_models",
    "roster_models",
    "vouchers_models",
]
