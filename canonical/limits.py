"""Input limits: values no real plan or shipment holds, checked wherever records are read."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class InputLimits(BaseModel):
    """Values no real plan or shipment holds. A record beyond them is quarantined where it is
    read, with the limit it broke, so one bad number cannot break detection for every key."""

    model_config = ConfigDict(extra="forbid")

    max_units: float = Field(1e9, gt=0, description="Largest quantity, capacity, load or stock "
                             "(absolute value) a record may carry.")
    max_unit_value: float = Field(1e7, gt=0, description="Largest value or cost per unit.")
    max_days: float = Field(3650, gt=0, description="Longest transit time, in days.")
    earliest: date = Field(date(1990, 1, 1), description="Earliest date or time a record may carry.")
    latest: date = Field(date(2199, 12, 31), description="Latest date or time a record may carry.")
