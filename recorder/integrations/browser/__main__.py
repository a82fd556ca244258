"""``python -m recorder.integrations.browser``: print the Chromium a run would launch
(exit 1, saying how to install one, when there is none)."""

import sys

from ...errors import RecorderError
from .launch import find_chromium

try:
    print(find_chromium())
except RecorderError as error:
    print(error, file=sys.stderr)
    sys.exit(1)
