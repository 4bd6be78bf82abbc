"""The letters error tree; every message names the state that refused the request.

::

    LetterError (YunkanError)
     ├── TemplateRenderError       422 template_error (line + message in details)
     ├── SignatureImageError       422 signature_invalid / signature_too_large (413) /
     │                                 signature_empty
     ├── LetterNotFoundError       404 letter_not_found
     ├── NotYourTurnError          403 not_your_turn / not_a_signer
     ├── LetterStateError          409 letter_already_signed / letter_superseded /
     │                                 case_closed / consent_required
     └── VerificationError         422/413 (server.letters.verification)
"""

from __future__ import annotations

from server.errors import YunkanError


class LetterError(YunkanError):
    status = 400
    code = "letter_error"
    message = "The letter request is not valid"
