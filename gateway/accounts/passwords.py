"""scrypt password hashes, stored as ``scrypt$N$r$p$salt$hash`` (base64) so the cost can be raised later.

scrypt from the standard library (``hashlib.scrypt``, OpenSSL): memory-hard, so a stolen
database is slow to attack on GPUs; a random 16-byte salt per password; constant-time compare.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from concurrent.futures import ThreadPoolExecutor

#: 2**15 iterations x 8 x 1: about 32 MB and 50-100 ms per hash on a server core (OWASP's minimum is 2**17/8/1
#: for interactive logins with more memory; this keeps a 2-core box responsive under login bursts).
COST = 2**15
BLOCK_SIZE = 8
PARALLELISM = 1
MIN_LENGTH = 10
MAX_LENGTH = 1024
_KEY_LENGTH = 32


class PasswordError(ValueError):
    """A password that may not be set (too short, too long)."""


def check_new_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"the password must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"the password must be at most {MAX_LENGTH} characters long")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    derived = _derive(password, salt, COST, BLOCK_SIZE, PARALLELISM)
    return "$".join(["scrypt", str(COST), str(BLOCK_SIZE), str(PARALLELISM), _b64(salt), _b64(derived)])


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches; False for a wrong password or a malformed stored hash."""
    try:
        scheme, cost, block, parallel, salt, expected = stored.split("$")
        if scheme != "scrypt" or len(password) > MAX_LENGTH:
            return False
        derived = _derive(password, base64.b64decode(salt), int(cost), int(block), int(parallel))
        return hmac.compare_digest(derived, base64.b64decode(expected))
    except (ValueError, TypeError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with other parameters than today's (rehash at the next login)."""
    parts = stored.split("$")
    return len(parts) != 6 or parts[:4] != ["scrypt", str(COST), str(BLOCK_SIZE), str(PARALLELISM)]


class PasswordHasher:
    """scrypt off the event loop, at most ``concurrency`` hashes at once in this process.

    Each hash holds COST x BLOCK_SIZE x 128 bytes (32 MB) while it runs, so the bound is a memory
    bound: 30 concurrent logins on asyncio's shared thread pool took a server from 164 to 352 MB.
    Its own executor is the bound (a semaphore around ``asyncio.to_thread`` would be released by a
    cancelled request while its thread still hashes); logins past it queue, and the login throttle
    limits how many one client can queue. ``create_app`` makes one per app; ``close`` at shutdown.
    """

    def __init__(self, *, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="scrypt")

    async def verify(self, password: str, stored: str) -> bool:
        return await asyncio.get_running_loop().run_in_executor(self._executor, verify_password, password, stored)

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._executor, hash_password, password)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _derive(password: str, salt: bytes, cost: int, block: int, parallel: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=cost, r=block, p=parallel, maxmem=256 * 1024 * 1024, dklen=_KEY_LENGTH
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
