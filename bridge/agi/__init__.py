"""Dialplan look-ups over FastAGI (SPEC section 5): caller name, responsible, rating.

Entry point: :func:`start_agi_server`. The rating route takes ratings for calls the
bridge knows (a :data:`KnownCall`) and hands them to a :class:`RatingSink`: the outbox in
the daemon, behind a :class:`BufferedRatingSink` for Postgres outages.
"""

from .answer import NO_CONTACT, Answer, Contact, parse_contact_answer, read_contact_answer
from .breaker import CircuitBreaker
from .call_ids import is_call_id, known_by_any
from .contact import ContactClient, Lookup
from .directory import Directory
from .metrics import AgiCollector
from .ports import KnownCall, RatingSink
from .rating_buffer import BufferedRatingSink
from .server import AgiServer, start_agi_server

__all__ = [
    "NO_CONTACT",
    "AgiCollector",
    "Answer",
    "AgiServer",
    "BufferedRatingSink",
    "CircuitBreaker",
    "Contact",
    "ContactClient",
    "Directory",
    "KnownCall",
    "Lookup",
    "RatingSink",
    "is_call_id",
    "known_by_any",
    "parse_contact_answer",
    "read_contact_answer",
    "start_agi_server",
]
