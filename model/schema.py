"""Names, units and bounds shared by every layer (the bottom layer: imports nothing of ``model``).

Soil moisture is volumetric, in m3 m-3 (CF ``units``); products are clipped to the physical
range :data:`SM_CLIP` before they are written or shown.
"""

from __future__ import annotations

#: CF units of volumetric soil moisture
SM_UNITS = "m3 m-3"

#: physical bounds applied to every model output (m3 m-3)
SM_CLIP = (0.0, 0.7)
