"""asterisk-crm-bridge: Asterisk AMI -> CRM webhooks, call history, FastAGI look-ups."""

# The installed distribution's metadata is what `crm-bridge --version` prints; this is the
# fallback for a source tree that is not installed. Keep it equal to pyproject.toml's.
__version__ = "0.1.0"
