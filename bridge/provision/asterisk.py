"""What provisioning asks Asterisk over AMI, with the shapes Asterisk's source gives the
answers (main/manager.c, main/db.c, main/pbx.c, res/res_pjsip/pjsip_configuration.c,
channels/chan_sip.c):

- `Reload` with `Module:` (action_reload): `Response: Success` "Module Reloaded", or an
  error: "No such module", "Module does not support reload", "A reload is in progress",
  "Module not initialized". res_pjsip and pbx_config reload before answering; chan_sip
  only queues its reload (its monitor thread does it), so what follows is polled.
- `ShowDialPlan` with `Context:` (manager_show_dialplan): `ListDialplan` events
  (Extension, Priority, Application, AppData; IncludeContext for includes), then
  `ShowDialPlanComplete`; "Did not find context <name>" when there is none.
- `PJSIPShowEndpoint` (ami_show_endpoint): an `EndpointDetail` event with `Callerid` and
  `Context`; "Unable to retrieve endpoint <name>" when there is none. `SIPshowpeer`
  (Asterisk 13-20): one response with `Callerid` and `Context`; "Peer <name> not found."
- `DBPut` (Family, Key, Val), `DBDel` (an error when the key is absent: "Database entry not
  found" before Asterisk 16, "Database entry could not be deleted" since), `DBGet` (a list:
  one `DBGetResponse` event with `Val`, then `DBGetComplete`; "Database entry not found"),
  `DBGetTree` (Asterisk 16+: `DBGetTreeResponse` events with the whole key, `/family/key`).
The AMI user needs write permission `system` (Reload, DB*) and `reporting` (ShowDialPlan).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..ami.directory_source import AmiLink, Refused, ask
from ..ami.parser import AmiMessage

WITHIN = 10.0  # seconds one action may take


class AsteriskError(Exception):
    """Asterisk refused or did not answer; `message` says it in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class PhoneSeen:
    callerid: str
    context: str


_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"\s*<([^>]*)>')
_BARE = re.compile(r"<([^>]*)>")


def callerid_parts(value: str) -> tuple[str, str]:
    """(name, number) of a caller ID as Asterisk prints it: `"Ivan" <1001>`, `"" <1001>`
    (chan_sip without a name), `1001` (PJSIP without a name), `<1001>`."""
    text = value.strip()
    found = _QUOTED.fullmatch(text)
    if found is not None:
        return re.sub(r"\\(.)", r"\1", found.group(1)), found.group(2)
    found = _BARE.fullmatch(text)
    if found is not None:
        return "", found.group(1)
    return ("", text) if text.isdigit() else (text, "")


class Asterisk:
    """Provisioning's view of one AMI link; every failure is an AsteriskError (or, when
    the link is lost, ConnectionError)."""

    def __init__(self, link: AmiLink, within: float = WITHIN) -> None:
        self.link = link
        self.within = within

    async def _ask(self, action: dict[str, str]) -> list[AmiMessage]:
        try:
            return await ask(self.link, action, self.within)
        except TimeoutError:
            raise AsteriskError(f"Asterisk did not answer {action['Action']} in time") from None

    async def reload(self, module: str) -> None:
        try:
            await self._ask({"Action": "Reload", "Module": module})
        except Refused as refused:
            raise AsteriskError(f"reload of {module} refused: {refused.message}") from None

    async def dialplan(self, context: str) -> list[AmiMessage] | None:
        """The context's ListDialplan events; None when Asterisk has no such context."""
        try:
            messages = await self._ask({"Action": "ShowDialPlan", "Context": context})
        except Refused as refused:
            if refused.message.lower().startswith("did not find context"):
                return None
            raise AsteriskError(f"ShowDialPlan refused: {refused.message}") from None
        return [m for m in messages if m.get("Event") == "ListDialplan"]

    async def phone(self, tech: str, name: str) -> PhoneSeen | None:
        """The endpoint (PJSIP) or peer (SIP) as Asterisk has it; None when it has none."""
        if tech == "PJSIP":
            action, event = {"Action": "PJSIPShowEndpoint", "Endpoint": name}, "EndpointDetail"
            missing = "unable to retrieve endpoint"
        else:
            action, event = {"Action": "SIPshowpeer", "Peer": name}, ""
            missing = f"peer {name.lower()} not found"
        try:
            messages = await self._ask(action)
        except Refused as refused:
            if refused.message.lower().startswith(missing):
                return None
            raise AsteriskError(f"{action['Action']} refused: {refused.message}") from None
        for m in messages:
            if (m.get("Event") == event if event else "Event" not in m) and "Callerid" in m:
                return PhoneSeen(m.get("Callerid", ""), m.get("Context", ""))
        raise AsteriskError(f"{action['Action']} {name}: no details in the answer")

    # ---------------------------------------------------------------- AstDB

    async def db_put(self, family: str, key: str, value: str) -> None:
        try:
            await self._ask({"Action": "DBPut", "Family": family, "Key": key, "Val": value})
        except Refused as refused:
            raise AsteriskError(f"DBPut {family}/{key} refused: {refused.message}") from None

    async def db_get(self, family: str, key: str) -> str | None:
        try:
            messages = await self._ask({"Action": "DBGet", "Family": family, "Key": key})
        except Refused as refused:
            if "not found" in refused.message.lower():
                return None
            raise AsteriskError(f"DBGet {family}/{key} refused: {refused.message}") from None
        for m in messages:
            if m.get("Event") == "DBGetResponse":
                return m.get("Val", "")
        raise AsteriskError(f"DBGet {family}/{key}: no DBGetResponse in the answer")

    async def db_del(self, family: str, key: str) -> None:
        """Gone afterwards, whether it was there or not."""
        try:
            await self._ask({"Action": "DBDel", "Family": family, "Key": key})
        except Refused as refused:
            if await self.db_get(family, key) is not None:
                raise AsteriskError(f"DBDel {family}/{key} refused: {refused.message}") from None

    async def db_tree(self, family: str) -> dict[str, str] | None:
        """Every key under `family` (`dnd/1001` for family `crm-bridge`) with its value;
        None when this Asterisk has no DBGetTree (before 16)."""
        try:
            messages = await self._ask({"Action": "DBGetTree", "Family": family})
        except Refused as refused:
            if refused.message.lower().startswith("invalid/unknown command"):
                return None
            raise AsteriskError(f"DBGetTree {family} refused: {refused.message}") from None
        prefix = f"/{family}/"
        return {
            m["Key"][len(prefix) :]: m.get("Val", "")
            for m in messages
            if m.get("Event") == "DBGetTreeResponse" and m.get("Key", "").startswith(prefix)
        }
