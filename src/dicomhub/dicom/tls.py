"""TLS for the DICOM port (PS3.15 B.1, the BCP 195 profile): the server's SSL context.

The handshake runs in the event loop with the ARTIM timeout, so a client that never finishes
it is dropped without holding up anyone else or taking an association slot.  A refused
handshake (no TLS, an unknown certificate) is logged with its reason.
"""

from __future__ import annotations

import logging
import ssl

from dicomhub.config import Settings

LOG = logging.getLogger("dicomhub.dicom")


class _LoggedHandshake(ssl.SSLObject):
    """Logs why a handshake failed (the event loop drops such connections silently)."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as exc:
            LOG.warning("TLS handshake refused: %s", exc.reason or exc)
            raise


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """The context for the DICOM listener, or None when TLS is not configured.

    Raises ``ValueError`` saying which file could not be used and why.
    """
    certificate, key = settings.tls_certificate, settings.tls_private_key
    if certificate is None and key is None:
        if settings.tls_ca_certificates is not None:
            raise ValueError("tls_ca_certificates is set but tls_certificate is not")
        return None
    if certificate is None or key is None:
        raise ValueError("TLS needs both tls_certificate and tls_private_key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.sslobject_class = _LoggedHandshake
    try:
        context.load_cert_chain(certificate, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"cannot use TLS certificate {certificate} with key {key}: {_reason(exc)}"
        ) from exc
    if settings.tls_ca_certificates is not None:
        try:
            context.load_verify_locations(cafile=settings.tls_ca_certificates)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"cannot use TLS CA certificates {settings.tls_ca_certificates}: {_reason(exc)}"
            ) from exc
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _reason(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return getattr(exc, "strerror", None) or str(exc)
