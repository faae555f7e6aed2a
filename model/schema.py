"""Names, units and bounds shared by every layer (the bottom layer: imports nothing of ``model``).

Soil moisture is volumetric, in m3 m-3 (CF ``units``); products are clipped to the physical
range :data:`SM_CLIP` before they are written or shown.
"""

from __future__ import annotations

#: CF units of volumetric soil moisture
SM_UNITS = "m3 m-3"

#: CF standard name of volumetric soil moisture
SM_STANDARD_NAME = "volume_fraction_of_condensed_water_in_soil"

#: physical bounds applied to every model output (m3 m-3)
SM_CLIP = (0.0, 0.7)


def sm_attrs(long_name: str, **more) -> dict:
    """CF attributes of a volumetric soil-moisture variable (units, standard name, long name,
    then ``more``): one definition for every writer and view."""
    return {"units": SM_UNITS, "standard_name": SM_STANDARD_NAME, "long_name": long_name, **more}
