"""Pseudonym oracles (DESIGN §5, SPEC §13): this node as an oracle holding a key share,
as a client obtaining pseudonyms from a threshold of oracles, and the key ceremony."""

from ._client import OracleAnswer, PseudonymResult, PseudonymService
from ._config import ActiveConfig, active_config, dealers_of, founder_of
from ._deal import Dealt, deal, import_share
from ._errors import OracleError, OracleErrorCode
from ._server import DEFAULT_DAILY_QUOTA, MAX_BATCH, OracleServer, UsageRow, utc_day
from ._shares import SHARE_FILE_PREFIX, HeldShare, ShareStore, open_share_file, seal_share_file

__all__ = [
    "DEFAULT_DAILY_QUOTA",
    "MAX_BATCH",
    "SHARE_FILE_PREFIX",
    "ActiveConfig",
    "Dealt",
    "HeldShare",
    "OracleAnswer",
    "OracleError",
    "OracleErrorCode",
    "OracleServer",
    "PseudonymResult",
    "PseudonymService",
    "ShareStore",
    "UsageRow",
    "active_config",
    "deal",
    "dealers_of",
    "founder_of",
    "import_share",
    "open_share_file",
    "seal_share_file",
    "utc_day",
]
