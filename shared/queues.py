"""Queue names: one enum, the single source for routing and for the workers' -Q options."""

from enum import StrEnum


class Queue(StrEnum):
    EXTRACT = "extract"
    ARCHIVE = "archive"
    TRANSFORM = "transform"
    CLASSIFY = "classify"
    PUBLISH = "publish"
