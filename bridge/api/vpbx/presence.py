"""Employees' registration status, `with=status` of `users` and `users/{login}` (6.1, 6.2).

`online` while Asterisk can reach the employee's phone (its device state, AMI
`DeviceStateList`), `offline` when it cannot (not registered, failing its qualify) or the
employee has no phone, `unknown` while Asterisk cannot be asked (a standby bridge, the AMI
link down, res_manager_devicestate not loaded): "offline" would be a guess a CRM routes by.
"""

from __future__ import annotations

from ...ami.directory_source import Refused, online_phones
from ...observability.logs import get_logger
from ...store.directory import User
from ...tracker.channels import ChannelClassifier
from ..params import Params
from ..services import Services

log = get_logger("bridge.api")
ASK_WITHIN = 3.0  # seconds: a list of employees does not wait long for Asterisk


def wanted(p: Params) -> bool:
    return "status" in p.strings("with")


async def online(s: Services) -> set[str] | None:
    """The extensions whose phone is online; None when Asterisk cannot say."""
    ami = s.ami()
    if ami is None:
        return None
    pbx = s.settings.pbx
    classify = ChannelClassifier(list(pbx.trunks), list(pbx.extensions)).classify
    try:
        return await online_phones(ami, classify, ASK_WITHIN)
    except Refused as refused:
        log.warning("registration_status_refused", answer=refused.message)
    except (TimeoutError, ConnectionError):
        log.warning("registration_status_unanswered")
    return None


def status(u: User, phones: set[str] | None) -> str:
    if phones is None:
        return "unknown"
    return "online" if u.ext and u.ext in phones else "offline"
