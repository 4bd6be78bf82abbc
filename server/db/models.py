"""Imports every domain's models so that ``Base.metadata`` knows all tables."""

from recordings import checkpoints as checkpoint_models
from recordings import models as evidence_models
from server.accounts import models as accounts_models
from server.booking import models as booking_models
from server.cases import models as cases_models
from server.letters import models as letters_models
from server.supervision import card_models as supervision_card_models
from server.supervision import models as supervision_models
from server.supervision import rating_models

__all__ = [
    "accounts_models",
    "booking_models",
    "cases_models",
    "checkpoint_models",
    "evidence_models",
    "letters_models",
    "rating_models",
    "supervision_card_models",
    "supervision_models",
]
