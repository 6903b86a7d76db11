"""Identity providers for federated sign-in (core.ports.IdentityProvider)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authgate.adapters.idp.firebase import FirebaseVerifier
    from authgate.config import Settings


def build_idp(settings: Settings) -> FirebaseVerifier | None:
    """The Firebase ID-token verifier when AUTHGATE_FIREBASE_PROJECT_ID is set, else None."""
    if not settings.firebase_project_id:
        return None
    from authgate.adapters.idp.firebase import FirebaseVerifier

    return FirebaseVerifier(
        settings.firebase_project_id,
        settings.firebase_certs_url,
        timeout=settings.provider_timeout,
        leeway=settings.jwt_leeway,
    )
