"""Whether the Hugging Face Hub can be reached, asked once per process and never retried.

Unreachable, `datasets` and `huggingface_hub` retry each request with backoff (about 25 s and a dozen log
lines per dataset) before they fail with a ConnectionError that names no way out. So the first load asks the
Hub once, with a short timeout; if it does not answer, both libraries are put in offline mode, as
HF_HUB_OFFLINE=1 would have (which is honoured without asking): a dataset in the local cache still loads at
once, any other fails at once with HubUnreachable, which names what was being loaded and the flag that gives a
local copy.
"""

from __future__ import annotations

import functools
import os
import sys
import urllib.error
import urllib.request

from ..errors import UserError

PROBE_TIMEOUT = 3.0  # seconds: a Hub that has not answered by then is treated as unreachable


class HubUnreachable(UserError):
    """The Hub is out of reach (or offline mode is on) and what was asked for is not in the local cache."""

    def __init__(self, what: str, why: str, flag: str):
        self.what, self.why, self.flag = what, why, flag
        super().__init__(f"cannot load {what}: {why}, and it is not in the local cache; give a local copy with {flag}")


def all_unreachable(errors: list[HubUnreachable], flags: list[str], tail: str = "") -> UserError:
    """One error for several loads that each need a local copy: every one named, every flag given."""
    return UserError(f"cannot load {', '.join(e.what for e in errors)}: {errors[0].why}, and not in the local "
                     f"cache; give local copies with {' '.join(flags)}{tail}")


def endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


@functools.cache
def hub_offline() -> str | None:
    """Why the Hub is out of reach (offline mode, or the network's answer), or None when it answers."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or "datasets.config" in sys.modules and sys.modules["datasets.config"].HF_HUB_OFFLINE:
        return "offline mode is on (HF_HUB_OFFLINE=1)"
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint(), method="HEAD"), timeout=PROBE_TIMEOUT).close()
        return None
    except urllib.error.HTTPError:
        return None  # it answered, if only with an error: it is there
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
    go_offline()
    return f"the Hub ({endpoint()}) cannot be reached ({reason})"


def go_offline() -> None:
    """Offline mode from here on, in this process (both libraries read their flag at each call) and its children."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    if "datasets.config" in sys.modules:
        sys.modules["datasets.config"].HF_HUB_OFFLINE = True
