"""The carrier trunk's addresses: the placeholder check.

The repository ships ``[carrier]`` with a documentation address (RFC 5737
192.0.2.10), which never routes: until an operator puts the carrier's real
addresses there and runs ``hotline asterisk-config``, no call reaches the hotline.
``hotline check-config`` and ``hotline serve`` say so (``asterisk.carrier_placeholder``).
"""

from __future__ import annotations

import ipaddress

from hotline.logs import get_logger
from hotline.settings import CONTACT_PATTERN, CarrierSettings, Settings

__all__ = ["DOCUMENTATION_NETWORKS", "placeholder_addresses", "warn_placeholder"]

log = get_logger(__name__)

# Address blocks reserved for documentation: RFC 5737 (IPv4), RFC 3849 (IPv6).
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


def _documentation(value: str) -> bool:
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False  # a host name: cannot be a documentation address without DNS
    return any(network.version == doc.version and network.subnet_of(doc) for doc in DOCUMENTATION_NETWORKS)


def placeholder_addresses(carrier: CarrierSettings) -> list[str]:
    """The carrier's match entries and contact host that are documentation addresses."""
    found = [m for m in carrier.match if _documentation(m)]
    contact = CONTACT_PATTERN.fullmatch(carrier.contact)
    host = contact.group("host").strip("[]") if contact else ""
    if host and _documentation(host):
        found.append(carrier.contact)
    return found


def warn_placeholder(settings: Settings) -> list[str]:
    """Log ``asterisk.carrier_placeholder`` while [carrier] holds a documentation
    address; returns those addresses (empty: nothing to say)."""
    found = placeholder_addresses(settings.carrier)
    if found:
        log.warning("asterisk.carrier_placeholder", addresses=found, settings=str(settings.source or ""),
                    hint="put the carrier's SIP addresses in [carrier] match/contact, run "
                         "'hotline asterisk-config' and reload Asterisk; until then no call arrives")
    return found
