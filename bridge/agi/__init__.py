"""Dialplan look-ups over FastAGI (SPEC section 5): caller name, responsible, rating.

Entry point: :func:`start_agi_server`. The rating route hands ratings to a
:class:`RatingSink` (the outbox in the daemon, :class:`DirectRatingSink` without it).
"""

from .answer import NO_CONTACT, Answer, Contact, parse_contact_answer, read_contact_answer
from .breaker import CircuitBreaker
from .contact import ContactClient, Lookup
from .direct_rating import DirectRatingSink
from .directory import Directory
from .metrics import AgiCollector
from .ports import RatingSink
from .server import AgiServer, start_agi_server

__all__ = [
    "NO_CONTACT",
    "AgiCollector",
    "Answer",
    "AgiServer",
    "CircuitBreaker",
    "Contact",
    "ContactClient",
    "DirectRatingSink",
    "Directory",
    "Lookup",
    "RatingSink",
    "parse_contact_answer",
    "read_contact_answer",
    "start_agi_server",
]
