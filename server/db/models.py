"""Imports every domain's models so that ``Base.metadata`` knows all tables."""

from recordings import models as evidence_models
from server.accounts import models as accounts_models
from server.cases import models as cases_models

__all__ = ["accounts_models", "cases_models", "evidence_models"]
