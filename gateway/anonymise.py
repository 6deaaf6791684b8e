"""Forgetting the person: IP truncation, applied before anything is stored.

IPv4 keeps its /24 and IPv6 its /48 (the networks Plausible and Matomo's anonymisation
keep): enough for a network-level record, not enough to point at a household.
"""

from __future__ import annotations

import ipaddress


def truncate_ip(address: str | None) -> str | None:
    """The network of ``address`` as text (``"203.0.113.0/24"``), or None when it is not an IP."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
