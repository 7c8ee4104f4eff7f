"""Interop fixtures: the mailseal CLI as a subprocess, each real peer set up the way the recipes
in /work/shared/interop do it, and byte-level MIME helpers.

The peers work on raw CMS (gpgsm, NSS cmsutil) or on S/MIME (openssl). Mailseal-made messages are
taken apart here with bytes operations only: the signed entity is cut out of the file exactly as
it sits between the boundaries (re-serialising it with ``email`` would change bytes).
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes

from tests_support import Ident  # noqa: F401  (re-exported for type hints only)
