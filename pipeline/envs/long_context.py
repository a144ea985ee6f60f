"""Extra content upstream BFCL's simulators load for the ``long_context`` category.

Facts of upstream's simulator (commit 6ea5797), read off its recorded states and call results
for the 150 long-context tasks (``reference_states_long_context.jsonl``); each rule held for
every task. The content itself is data, in ``data/long_context.json``; how each environment uses
it (see also docs/conformance.md):

- filesystem (state, when built from an upstream config): every file whose name is not in
  :data:`FILES_KEPT_SHORT` gets :data:`FILE_CONTENT_EXTENSION` appended; every directory
  without subdirectories gets the empty files :data:`EXTRA_FILE_NAMES` appended, in order;
- travel (state): :data:`CREDIT_CARD_EXTENSION` and :data:`BOOKING_RECORD_EXTENSION` are
  appended after the configured cards and bookings; (results) ``get_flight_cost`` quotes
  :data:`FLIGHT_COST_LIST` (upstream's economy base fares in its own route order, each times
  the class and date factors of the quoted flight) and ``book_flight`` returns the whole
  booking record;
- vehicle (results): ``check_tire_pressure`` returns :data:`CAR_STATUS_METADATA` as
  ``car_info`` and ``displayCarStatus`` adds it first as ``metadata``; ``activateParkingBrake``
  adds :data:`PARKING_BRAKE_INSTRUCTION` first as ``parkingBrakeInstruction``;
  ``estimate_distance`` adds :data:`INTERMEDIARY_CITIES` as ``intermediaryCities``;
- trading (results): ``get_stock_info`` answers ``MA(5)`` and ``MA(20)`` with
  :data:`MOVING_AVERAGE_5` and :data:`MOVING_AVERAGE_20`; ``get_available_stocks`` appends
  :data:`AVAILABLE_STOCKS_EXTENSION` (observed for Technology only, whose four symbols the list
  repeats first); ``get_order_details`` adds ``metadata``: :data:`ORDER_METADATA_TEMPLATE` with
  ``<SYMBOL>`` replaced by the order's symbol; ``get_watchlist`` answers with a bare list, the
  watch list followed by :data:`WATCH_LIST_EXTENSION`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

_DATA: Final[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "long_context.json").read_text(encoding="utf-8")
)

FILES_KEPT_SHORT: Final[frozenset[str]] = frozenset(_DATA["files_kept_short"])
FILE_CONTENT_EXTENSION: Final[str] = _DATA["file_content_extension"]
EXTRA_FILE_NAMES: Final[tuple[str, ...]] = tuple(_DATA["extra_file_names"])
CREDIT_CARD_EXTENSION: Final[dict[str, dict[str, str | int | float]]] = _DATA[
    "credit_card_extension"
]
BOOKING_RECORD_EXTENSION: Final[dict[str, dict[str, str | int | float]]] = _DATA[
    "booking_record_extension"
]
FLIGHT_COST_LIST: Final[tuple[int, ...]] = tuple(_DATA["flight_cost_list"])
CAR_STATUS_METADATA: Final[str] = _DATA["car_status_metadata"]
PARKING_BRAKE_INSTRUCTION: Final[str] = _DATA["parking_brake_instruction"]
INTERMEDIARY_CITIES: Final[tuple[str, ...]] = tuple(_DATA["intermediary_cities"])
MOVING_AVERAGE_5: Final[tuple[float, ...]] = tuple(_DATA["moving_average_5"])
MOVING_AVERAGE_20: Final[tuple[float, ...]] = tuple(_DATA["moving_average_20"])
AVAILABLE_STOCKS_EXTENSION: Final[tuple[str, ...]] = tuple(_DATA["available_stocks_extension"])
ORDER_METADATA_TEMPLATE: Final[dict[str, str]] = _DATA["order_metadata_template"]
WATCH_LIST_EXTENSION: Final[tuple[str, ...]] = tuple(_DATA["watch_list_extension"])
