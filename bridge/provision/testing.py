"""Asterisk's config side, faked for FakeAmiServer (bridge.devtools.fake_ami): it reads the
rendered files from the config folder when told to reload, as Asterisk would, and answers
the confirmation queries from what it loaded; it keeps an AstDB.

Answers in the shapes of Asterisk's source (see bridge.provision.asterisk): `Reload`,
`ShowDialPlan`, `PJSIPShowEndpoint`, `SIPshowpeer`, `DBPut`, `DBDel`, `DBGet` (a list:
DBGetResponse, DBGetComplete), `DBGetTree`, and `Command` for `database show`. Test
controls: `refuse[module] = message` (the reload answers an error), `frozen` (modules whose
reload answers Success but reads nothing, like a file that is not #included), `helpers`
(whether crm_bridge_dialplan.conf's contexts are loaded), `tree` (False: an Asterisk before
16, without DBGetTree).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..devtools.fake_ami import FakeAmiServer, Headers
from .render import DIALPLAN_FILE, HELPER_CONTEXTS, PJSIP_FILE, SIP_FILE

FILES = {"res_pjsip.so": PJSIP_FILE, "chan_sip.so": SIP_FILE, "pbx_config.so": DIALPLAN_FILE}


def _get(headers: Headers, name: str) -> str:
    name = name.lower()
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _id(headers: Headers) -> str:
    aid = _get(headers, "ActionID")
    return f"ActionID: {aid}\r\n" if aid else ""


def _error(headers: Headers, message: str) -> list[str]:
    return [f"Response: Error\r\n{_id(headers)}Message: {message}\r\n"]


def _success(headers: Headers, message: str) -> list[str]:
    return [f"Response: Success\r\n{_id(headers)}Message: {message}\r\n"]


def _sections(text: str) -> list[tuple[str, dict[str, list[str]]]]:
    sections: list[tuple[str, dict[str, list[str]]]] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        found = re.fullmatch(r"\[([^\]]+)\](?:\([^)]*\))?", line)
        if found:
            sections.append((found.group(1), {}))
        elif sections and "=" in line:
            key, _, value = line.partition("=")
            sections[-1][1].setdefault(key.strip(), []).append(value.lstrip(">").strip())
    return sections


def _merge(name: str, number: str, chan_sip: bool) -> str:
    """ast_callerid_merge as each driver calls it (chan_sip passes "" for no name)."""
    if name or chan_sip:
        return f'"{name}" <{number}>'
    return number


def _split_callerid(value: str) -> tuple[str, str]:
    found = re.fullmatch(r'\s*(?:"([^"]*)"\s*)?<([^>]*)>\s*', value)
    if found:
        return found.group(1) or "", found.group(2)
    return "", value.strip()


@dataclass
class FakeAsteriskConfig:
    config_dir: Path
    modules: set[str] = field(default_factory=lambda: {"res_pjsip.so", "pbx_config.so"})
    helpers: bool = True
    tree: bool = True
    refuse: dict[str, str] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)
    reloads: list[str] = field(default_factory=list)
    astdb: dict[str, str] = field(default_factory=dict)  # "/crm-bridge/dnd/1001" -> "1"
    # what was loaded: endpoint / peer name -> (Callerid as AMI prints it, Context)
    phones: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    # context -> [(extension, priority, application, appdata)]; includes as ("", 0, ...)
    dialplan: dict[str, list[tuple[str, int, str, str]]] = field(default_factory=dict)

    def install(self, server: FakeAmiServer) -> FakeAsteriskConfig:
        for action, responder in (
            ("Reload", self._reload),
            ("ShowDialPlan", self._show_dialplan),
            ("PJSIPShowEndpoint", self._pjsip_endpoint),
            ("SIPshowpeer", self._sip_peer),
            ("DBPut", self._db_put),
            ("DBDel", self._db_del),
            ("DBGet", self._db_get),
            ("DBGetTree", self._db_tree),
            ("Command", self._command),
        ):
            server.respond_with(action, responder)
        return self

    # ------------------------------------------------------------ reloads

    def _reload(self, headers: Headers) -> Iterable[str]:
        module = _get(headers, "Module")
        self.reloads.append(module)
        if module in self.refuse:
            return _error(headers, self.refuse[module])
        if module not in self.modules:
            return _error(headers, "No such module")
        if module not in self.frozen:
            self.load(module)
        return _success(headers, "Module Reloaded")

    def load(self, module: str) -> None:
        path = self.config_dir / FILES[module]
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if module == "pbx_config.so":
            self.dialplan = self._parse_dialplan(text)
        else:
            chan_sip = module == "chan_sip.so"
            wanted = "friend" if chan_sip else "endpoint"
            found = {}
            for name, options in _sections(text):
                if options.get("type", [""])[-1] == wanted:
                    cid = _split_callerid(options.get("callerid", [""])[-1])
                    found[name] = (_merge(*cid, chan_sip), options.get("context", [""])[-1])
            self.phones[module] = found

    def _parse_dialplan(self, text: str) -> dict[str, list[tuple[str, int, str, str]]]:
        contexts: dict[str, list[tuple[str, int, str, str]]] = {}
        if self.helpers:
            contexts.update({c: [("s", 1, "NoOp", "")] for c in HELPER_CONTEXTS})
        current: list[tuple[str, int, str, str]] | None = None
        exten, priority = "", 0
        for raw in text.splitlines():
            line = raw.split(";", 1)[0].strip()
            if not line:
                continue
            found = re.fullmatch(r"\[([^\]]+)\]", line)
            if found:
                current = contexts.setdefault(found.group(1), [])
                continue
            assert current is not None, f"dialplan line outside a context: {raw!r}"
            key, _, value = line.partition("=>")
            key, value = key.strip(), value.strip()
            if key == "include":
                current.append(("", 0, "include", value))
                continue
            if key == "exten":
                exten, prio, app = value.split(",", 2)
                priority = int(prio)
            else:
                assert key == "same", raw
                prio, app = value.split(",", 1)
                priority += 1
            name, _, data = app.partition("(")
            current.append((exten, priority, name, data[:-1] if data.endswith(")") else data))
        return contexts

    # ------------------------------------------------------------ queries

    def _show_dialplan(self, headers: Headers) -> Iterable[str]:
        context = _get(headers, "Context")
        if context not in self.dialplan:
            return _error(headers, f"Did not find context {context}")
        idl = _id(headers)
        extensions = len({i[0] for i in self.dialplan[context] if i[0]})
        items = []
        for exten, prio, app, data in self.dialplan[context]:
            if app == "include":
                fields = (
                    f"Context: {context}\r\nIncludeContext: {data}\r\nRegistrar: pbx_config\r\n"
                )
            else:
                fields = (
                    f"Context: {context}\r\nExtension: {exten}\r\nPriority: {prio}\r\n"
                    f"Application: {app}\r\nAppData: {data}\r\nRegistrar: pbx_config\r\n"
                )
            items.append(f"Event: ListDialplan\r\n{idl}{fields}")
        return [
            f"Response: Success\r\n{idl}EventList: start\r\nMessage: DialPlan list will follow\r\n",
            *items,
            f"Event: ShowDialPlanComplete\r\n{idl}EventList: Complete\r\n"
            f"ListItems: {len(items)}\r\nListExtensions: {extensions}\r\n"
            f"ListPriorities: {len(items)}\r\nListContexts: 1\r\n",
        ]

    def _pjsip_endpoint(self, headers: Headers) -> Iterable[str]:
        name = _get(headers, "Endpoint")
        found = self.phones.get("res_pjsip.so", {}).get(name)
        if found is None:
            return _error(headers, f"Unable to retrieve endpoint {name}")
        idl = _id(headers)
        return [
            f"Response: Success\r\n{idl}EventList: start\r\n"
            "Message: Following are Events for each object associated with the Endpoint\r\n",
            f"Event: EndpointDetail\r\n{idl}ObjectType: endpoint\r\nObjectName: {name}\r\n"
            f"Context: {found[1]}\r\nCallerid: {found[0]}\r\nAors: {name}\r\nAuth: {name}\r\n",
            f"Event: EndpointDetailComplete\r\n{idl}EventList: Complete\r\nListItems: 1\r\n",
        ]

    def _sip_peer(self, headers: Headers) -> Iterable[str]:
        name = _get(headers, "Peer")
        found = self.phones.get("chan_sip.so", {}).get(name)
        if found is None:
            return _error(headers, f"Peer {name} not found.")
        return [
            f"Response: Success\r\n{_id(headers)}Channeltype: SIP\r\nObjectName: {name}\r\n"
            f"Context: {found[1]}\r\nCallerid: {found[0]}\r\nStatus: Unmonitored\r\n"
        ]

    # ------------------------------------------------------------ AstDB (main/db.c)

    def _db_put(self, headers: Headers) -> Iterable[str]:
        family, key = _get(headers, "Family"), _get(headers, "Key")
        if not family or not key:
            return _error(headers, "No family specified" if not family else "No key specified")
        self.astdb[f"/{family}/{key}"] = _get(headers, "Val")
        return _success(headers, "Updated database successfully")

    def _db_del(self, headers: Headers) -> Iterable[str]:
        full = f"/{_get(headers, 'Family')}/{_get(headers, 'Key')}"
        if self.astdb.pop(full, None) is None:
            return _error(headers, "Database entry could not be deleted")
        return _success(headers, "Key deleted successfully")

    def _db_get(self, headers: Headers) -> Iterable[str]:
        family, key = _get(headers, "Family"), _get(headers, "Key")
        value = self.astdb.get(f"/{family}/{key}")
        if value is None:
            return _error(headers, "Database entry not found")
        idl = _id(headers)
        return [
            f"Response: Success\r\n{idl}EventList: start\r\nMessage: Result will follow\r\n",
            f"Event: DBGetResponse\r\nFamily: {family}\r\nKey: {key}\r\nVal: {value}\r\n{idl}",
            f"Event: DBGetComplete\r\n{idl}EventList: Complete\r\nListItems: 1\r\n",
        ]

    def _db_tree(self, headers: Headers) -> Iterable[str]:
        if not self.tree:
            return _error(
                headers,
                "Invalid/unknown command: DBGetTree. Use Action: ListCommands to show "
                "available commands.",
            )
        prefix = f"/{_get(headers, 'Family')}/"
        idl = _id(headers)
        items = [
            f"Event: DBGetTreeResponse\r\nKey: {k}\r\nVal: {v}\r\n{idl}"
            for k, v in sorted(self.astdb.items())
            if k.startswith(prefix)
        ]
        return [
            f"Response: Success\r\n{idl}EventList: start\r\nMessage: Result will follow\r\n",
            *items,
            f"Event: DBGetTreeComplete\r\n{idl}EventList: Complete\r\nListItems: {len(items)}\r\n",
        ]

    def _command(self, headers: Headers) -> Iterable[str]:
        """`database show [family]` as the CLI prints it (action_command's Output lines)."""
        words = _get(headers, "Command").split()
        if words[:2] != ["database", "show"]:
            return _error(headers, "Command blacklisted")
        prefix = f"/{words[2]}/" if len(words) > 2 else "/"
        shown = [f"{k:<50}: {v}" for k, v in sorted(self.astdb.items()) if k.startswith(prefix)]
        shown.append(f"{len(shown)} results found.")
        output = "".join(f"Output: {line}\r\n" for line in shown)
        return [f"Response: Success\r\n{_id(headers)}Message: Command output follows\r\n{output}"]
