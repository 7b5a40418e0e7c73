"""JWT replay protection: each ``jti`` of an issuer is accepted once within the token's lifetime.

``MemoryReplayCache`` serves one process (tests, a single worker). With several workers or instances the
store's shared implementation (``SqlStore.claim_jti``) is used, so a token replayed to another worker is
rejected too.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class ReplayCache(Protocol):
    def claim_jti(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Record ``jti``; True the first time, False when it was already seen and has not expired."""
        ...


class MemoryReplayCache:
    """In-process replay cache; expired entries are purged as new ones arrive."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def claim_jti(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = time.time()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
            previous = self._seen.get((issuer, jti))
            if previous is not None and previous > now:
                return False
            self._seen[(issuer, jti)] = expires_at
            return True
