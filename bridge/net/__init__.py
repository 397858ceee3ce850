"""Network plumbing shared by the HTTP and FastAGI servers: the capped listener."""

from .listener import CappedListener, IdleProbe, ProtocolFactory, bind_tcp, start_listener

__all__ = ["CappedListener", "IdleProbe", "ProtocolFactory", "bind_tcp", "start_listener"]
