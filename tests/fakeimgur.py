"""The fake hosts now live in the package; this re-export keeps the older tests working."""

from imgdrop.testserver import *  # noqa: F403
