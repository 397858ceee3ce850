"""Provisioning that Asterisk obeys (see README, "Provisioning")."""
