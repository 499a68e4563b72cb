"""Type stubs of the native module (the analysis crates); use the functions of ``mb_stats``."""

from os import PathLike
from typing import Any, List, Optional, Tuple, Union

#: The default number of bootstrap replicates (the command line's and experiment files' too).
DEFAULT_NBOOT: int

#: One column of a long table: (name, (kind, values)), kind "float", "int" or "text".
Column = Tuple[str, Tuple[str, List[Any]]]

class Results:
    """A results table checked against schema v1, held in Rust."""

    def __len__(self) -> int: ...
    @property
    def metadata(self) -> List[Tuple[str, str]]:
        """The footer metadata."""
    def __arrow_c_stream__(self, requested_schema: Optional[object] = None) -> object:
        """The table as an Arrow C stream capsule."""

def read_parquet(path: Union[str, PathLike[str]]) -> Results:
    """Reads and checks a results table from a Parquet file."""

def import_lm_eval(paths: List[str], settings: dict) -> Tuple[Results, str]:
    """Imports lm-evaluation-harness samples: the table and what was checked."""

def from_arrow(stream: object, source: str) -> Results:
    """Takes a table from an Arrow C stream capsule; messages start with ``source``."""

def bootstrap(results: Results, settings: dict, samples: bool) -> Tuple[List[Column], str, Optional[List[Column]]]:
    """Summary columns, the printed report, and the replicates when ``samples``."""

def seeds(results: Results, settings: dict) -> Tuple[List[Column], str]:
    """Per-seed conclusions."""

def curve(results: Results, settings: dict) -> Tuple[List[Column], str]:
    """Learning curves over steps."""

def variance(results: Results, settings: dict) -> Tuple[List[Column], str]:
    """Variance components."""

def power(results: Results, settings: dict) -> Tuple[List[Column], str]:
    """Power by study size."""
