"""The letters error tree; every message names the state that refused the request.

::

    LetterError (YunkanError)
     ├── TemplateRenderError       422 template_error (line + message in details)
     ├── SignatureImageError       422 signature_invalid / signature_empty,
     │                             413 signature_too_large
     ├── LetterNotFoundError       404 letter_not_found (also for letters you may not read)
     ├── NotASignerError           403 not_a_signer
     ├── NotYourTurnError          409 not_your_turn
     ├── ConsentRequiredError      422 consent_required
     ├── LetterStateError          409 letter_already_signed / letter_signed /
     │                                 letter_superseded / letter_not_issued / case_closed /
     │                                 case_has_no_applicant
     └── VerificationError         422 not_a_pdf / pdf_damaged / pdf_unsigned,
                                   413 pdf_too_large (server.letters.verification)
"""

from __future__ import annotations

from server.errors import YunkanError


class LetterError(YunkanError):
    status = 400
    code = "letter_error"
    message = "The letter request is not valid"


class LetterNotFoundError(LetterError):
    status = 404
    code = "letter_not_found"
    message = "No such letter"


class NotASignerError(LetterError):
    status = 403
    code = "not_a_signer"
    message = "You are not one of the signers of this letter"


class NotYourTurnError(LetterError):
    status = 409
    code = "not_your_turn"
    message = "Letter %(letter)s must first be signed by %(waiting_for)s"


class LetterStateError(LetterError):
    status = 409
    code = "letter_state"
    message = "Letter %(letter)s cannot be changed in its current state"


class AlreadySignedError(LetterStateError):
    code = "letter_already_signed"
    message = "You have already signed letter %(letter)s"


class LetterCompleteError(LetterStateError):
    code = "letter_signed"
    message = "Letter %(letter)s is already fully signed"


class LetterSupersededError(LetterStateError):
    code = "letter_superseded"
    message = "Letter %(letter)s was replaced by a corrected version"


class LetterNotIssuedError(LetterStateError):
    code = "letter_not_issued"
    message = "Letter %(letter)s has not been issued yet"


class CaseClosedError(LetterStateError):
    code = "case_closed"
    message = "Case %(case)s is closed; its letters cannot be issued or signed"


class ConsentRequiredError(LetterError):
    status = 422
    code = "consent_required"
    message = "Please read the letter to its end and tick the consent box before signing"


class NoApplicantError(LetterStateError):
    code = "case_has_no_applicant"
    message = "Case %(case)s has no applicant to sign"
