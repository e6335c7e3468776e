"""Tests of `realtime/`. (Until every test imports `tests.live`, the socket kit is re-exported.)"""

from tests.live import *  # noqa: F403
from tests.live import RECEIVE_TIMEOUT_S as RECEIVE_TIMEOUT_S
