"""The base of every JSON request body: unknown fields refused, types strict (``"yes"`` is not a boolean, ``"8"``
not a number), and every string valid Unicode (JSON may spell a lone surrogate, ``"\\udcff"``, which no tokenizer
or file can take)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _unicode(cls, value: Any) -> Any:
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("holds a lone surrogate, which is not Unicode text") from None
        return value
