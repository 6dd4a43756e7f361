"""Reference geography: Iraq's governorates and districts by OCHA P-code.

>>> area("IQG15Q05").name_en
'Al-Mosul'
>>> district_in("IQG15Q05", "IQG15")
True

Lookups of unknown codes raise :class:`GeoError` with ``GeoErrorCode.UNKNOWN_PCODE``.
Where the data comes from and how to update it: ``docs/geodata.md``.
"""

from ._iraq import (
    Area,
    GeoError,
    GeoErrorCode,
    area,
    district_in,
    districts,
    governorates,
    is_district,
    normalize_pcode,
)

__all__ = [
    "Area",
    "GeoError",
    "GeoErrorCode",
    "area",
    "district_in",
    "districts",
    "governorates",
    "is_district",
    "normalize_pcode",
]
