"""Semantic types: what a tool's parameter or result field *means*, beyond its JSON type.

A JSON number may be a percent change, an amount of money or a tyre pressure; a string may be a
file name, a status message or a password. Generators and checks bind values by meaning: a
value flows from a result field into a parameter only when both carry the same semantic type
(or a real conversion tool turns one unit into the other), see :mod:`pipeline.toolgraph`.

Declared once, beside the signature:

* a parameter: ``fuelAmount: Annotated[float, Sem.VOLUME_GALLONS]`` (for a list parameter the
  type describes each element);
* result fields: ``@tool(ToolKind.READ, 0.3, returns={"fuelLevel": Sem.VOLUME_GALLONS})``, where
  each key is a dotted path into the result and ``*`` stands for any list index or dict key
  (``"matching_lines.*"``, ``"messages.*.sender_id"``); ``""`` is a result that is a bare value.

The vocabulary is deliberately small; ``make tools`` lists every tool with its types and
``docs/semantic-types.md`` explains each one.
"""

from __future__ import annotations

from enum import StrEnum


class Sem(StrEnum):
    """The semantic vocabulary. Values are ``kind`` or ``kind.unit``; the kind says what a value
    is, the unit (where there is one) how it is measured. Only equal types bind."""

    # --- quantities ------------------------------------------------------------------------
    MONEY_USD = "money.usd"  # an amount of money in US dollars
    MONEY = "money"  # an amount of money in a currency named elsewhere in the call or result
    CURRENCY = "currency"  # a currency code such as "USD" or "EUR"
    EXCHANGE_RATE = "exchange_rate"  # units of one currency per unit of another
    PERCENT = "percent"  # a percentage or percent change (5 means 5%)
    COUNT = "count"  # how many items of something (files, messages, rows ...)
    SHARE_COUNT = "count.shares"  # how many shares of a stock
    DISTANCE_KM = "distance.km"
    DISTANCE_MILES = "distance.miles"
    DISTANCE_M = "distance.m"  # short distances, e.g. to the vehicle ahead
    PRESSURE_PSI = "pressure.psi"
    VOLUME_GALLONS = "volume.gallons"
    VOLUME_LITERS = "volume.liters"
    TEMPERATURE_C = "temperature.celsius"
    TEMPERATURE_F = "temperature.fahrenheit"
    SPEED = "speed.kmh"
    WEIGHT_KG = "weight.kg"
    WEIGHT_LB = "weight.lb"
    VOLTAGE = "voltage"
    FORCE = "force"  # a brake force in newtons
    ANGLE_DEGREES = "angle.degrees"  # an angle in degrees (a slope)
    RATIO = "ratio"  # a position or share between 0 and 1 (pedal position, fan speed share)
    LEVEL = "level"  # a setting on an arbitrary scale (fan speed 0-100, humidity)
    NUMBER = "number"  # a pure number with no unit (an operand of arithmetic)
    INDEX = "index"  # a position inside a sequence (0-based unless the doc says otherwise)
    SIZE_BYTES = "size.bytes"  # a size in bytes or characters
    SEED = "seed"  # a random seed
    # --- time ------------------------------------------------------------------------------
    DATE = "date"  # a calendar date ("2024-03-01")
    TIME = "time"  # a time of day ("14:30")
    DATETIME = "datetime"  # a date with a time
    DURATION = "duration"  # a length of time (seconds, days ...)
    YEAR = "year"  # a calendar or fiscal year ("2024")
    # --- files and text --------------------------------------------------------------------
    FILE_NAME = "file_name"
    FOLDER_NAME = "folder_name"
    PATH = "path"  # a path of folders (and possibly a file)
    FILE_CONTENT = "file_content"  # the text inside a file
    TEXT = "text"  # free text written by or for a person (a message, a post, a comment)
    TITLE = "title"  # a short heading (a ticket title, a document title)
    PATTERN = "pattern"  # a search pattern or regular expression
    KEYWORD = "keyword"  # a word or phrase to search for
    TAG = "tag"  # a hashtag or label
    SEPARATOR = "separator"  # a delimiter or padding character
    LINE = "line"  # one line of text or of a log
    # --- people and accounts ---------------------------------------------------------------
    PERSON_NAME = "person_name"  # a person's display name ("Alice")
    USER_NAME = "user_name"  # a login or handle ("alice_w")
    USER_ID = "user_id"  # a system-assigned user id ("USR001")
    CREDENTIAL = "credential"  # a password, token or secret
    EMAIL = "email"
    # --- identifiers of things -------------------------------------------------------------
    ORDER_ID = "order_id"
    BOOKING_ID = "booking_id"
    TICKET_ID = "ticket_id"
    POST_ID = "post_id"
    COMMENT_ID = "comment_id"
    MESSAGE_ID = "message_id"
    CARD_ID = "card_id"  # a payment card's id
    CARD_NUMBER = "card_number"  # the number printed on a payment card ("4111 1111 ...")
    CARD_EXPIRY = "card_expiry"  # a payment card's expiry month ("08/2027")
    ACCOUNT_ID = "account_id"  # a bank or brokerage account's id
    PASSPORT_NUMBER = "passport_number"
    INSURANCE_ID = "insurance_id"
    TRANSACTION_ID = "transaction_id"
    RECORD_ID = "record_id"  # a row or record id in a table
    DOCUMENT_ID = "document_id"  # a stored document's id
    BUFFER_ID = "buffer_id"  # a named text buffer
    GENERATED_ID = "generated_id"  # an id made up by a generator (uuid, code)
    ID_PREFIX = "id_prefix"  # the fixed text that generated ids start with ("INV-")
    # --- markets and places ----------------------------------------------------------------
    STOCK_SYMBOL = "stock_symbol"  # a ticker ("AAPL")
    COMPANY_NAME = "company_name"
    SECTOR = "sector"  # a market sector ("Technology")
    AIRPORT = "airport"  # an IATA airport code ("JFK")
    CITY = "city"
    ZIP_CODE = "zip_code"
    ADDRESS = "address"  # a street address or place name
    COUNTRY = "country"
    # --- structured data -------------------------------------------------------------------
    TABLE_NAME = "table_name"
    COLUMN_NAME = "column_name"
    FIELD_NAME = "field_name"  # a key inside a record or document
    FIELD_VALUE = "field_value"  # a value stored in a record (its meaning depends on the column)
    RECORD = "record"  # a whole record or object
    RECORDS = "records"  # a list or table of records
    JSON_TEXT = "json_text"  # a JSON document as text
    CSV_TEXT = "csv_text"
    KV_TEXT = "kv_text"  # key=value lines as text
    MARKDOWN_TEXT = "markdown_text"
    DATA_TEXT = "data_text"  # a data document as text, in a format named elsewhere in the call
    FORMAT = "format"  # the name of a data format ("json", "csv")
    SCHEMA = "schema"  # a description of fields and their types
    # --- states and choices ----------------------------------------------------------------
    STATUS = "status"  # a state word or status message ("open", "Successfully retweeted")
    OPTION = "option"  # a choice from a fixed set that the tool documents (a door, a mode)
    PRIORITY = "priority"
    FLAG = "flag"  # a yes/no switch
    MESSAGE = "message"  # a tool's own confirmation or error text
    # add new members above this line, grouped with their kind, and describe them in
    # docs/semantic-types.md


#: types whose values are names or ids a person can recognise and that must match exactly
#: (case-sensitively) to count as observed; free text matches more loosely
EXACT_TYPES: frozenset[Sem] = frozenset(
    {
        Sem.FILE_NAME, Sem.FOLDER_NAME, Sem.PATH, Sem.USER_NAME, Sem.USER_ID, Sem.CREDENTIAL,
        Sem.EMAIL, Sem.ORDER_ID, Sem.BOOKING_ID, Sem.TICKET_ID, Sem.POST_ID, Sem.COMMENT_ID,
        Sem.MESSAGE_ID, Sem.CARD_ID, Sem.INSURANCE_ID, Sem.TRANSACTION_ID, Sem.RECORD_ID,
        Sem.DOCUMENT_ID, Sem.BUFFER_ID, Sem.GENERATED_ID, Sem.STOCK_SYMBOL, Sem.AIRPORT,
        Sem.ZIP_CODE, Sem.TABLE_NAME, Sem.COLUMN_NAME, Sem.FIELD_NAME, Sem.CARD_NUMBER,
        Sem.ACCOUNT_ID, Sem.PASSPORT_NUMBER,
    }
)  # fmt: skip

#: names a user gives to things; the ``rename`` operator may replace these (and only these)
RENAMEABLE_TYPES: frozenset[Sem] = frozenset(
    {
        Sem.FILE_NAME, Sem.FOLDER_NAME, Sem.PERSON_NAME, Sem.USER_NAME, Sem.TITLE,
        Sem.TABLE_NAME, Sem.BUFFER_ID, Sem.DOCUMENT_ID,
    }
)  # fmt: skip

#: types a generated sentence may leave as a reference to an earlier step without naming a
#: unit; everything else is named by its meaning
UNIT_FREE_TYPES: frozenset[Sem] = frozenset({Sem.NUMBER, Sem.COUNT, Sem.INDEX})


def describe(sem: Sem) -> str:
    """A short noun phrase for a type, for generated sentences and ``make tools``."""
    return _NOUNS.get(sem, sem.value.replace("_", " ").replace(".", " in "))


_NOUNS: dict[Sem, str] = {
    Sem.MONEY_USD: "amount in dollars",
    Sem.MONEY: "amount",
    Sem.PERCENT: "percentage",
    Sem.SHARE_COUNT: "number of shares",
    Sem.COUNT: "count",
    Sem.DISTANCE_KM: "distance in kilometers",
    Sem.DISTANCE_MILES: "distance in miles",
    Sem.DISTANCE_M: "distance in meters",
    Sem.PRESSURE_PSI: "pressure in PSI",
    Sem.VOLUME_GALLONS: "volume in gallons",
    Sem.VOLUME_LITERS: "volume in liters",
    Sem.TEMPERATURE_C: "temperature in Celsius",
    Sem.TEMPERATURE_F: "temperature in Fahrenheit",
    Sem.SPEED: "speed in km/h",
    Sem.WEIGHT_KG: "weight in kilograms",
    Sem.WEIGHT_LB: "weight in pounds",
    Sem.FILE_NAME: "file name",
    Sem.FOLDER_NAME: "folder name",
    Sem.FILE_CONTENT: "file content",
    Sem.PERSON_NAME: "name",
    Sem.USER_NAME: "user name",
    Sem.USER_ID: "user id",
    Sem.STOCK_SYMBOL: "stock symbol",
    Sem.AIRPORT: "airport code",
    Sem.ZIP_CODE: "zip code",
}


#: (source, target) pairs besides equality where a value of ``source`` may fill a parameter of
#: ``target``: a name is a (relative) path, a piece of text can be sent or written as text, any
#: measured quantity is also a plain number for arithmetic
_ALSO_FEEDS: frozenset[tuple[Sem, Sem]] = frozenset(
    {
        (Sem.FILE_NAME, Sem.PATH), (Sem.FOLDER_NAME, Sem.PATH),
        (Sem.LINE, Sem.TEXT), (Sem.FILE_CONTENT, Sem.TEXT), (Sem.TITLE, Sem.TEXT),
        (Sem.LINE, Sem.FILE_CONTENT), (Sem.TEXT, Sem.FILE_CONTENT),
        (Sem.KEYWORD, Sem.PATTERN),
        # an amount in a currency the call names may be dollars, and dollars are an amount
        (Sem.MONEY, Sem.MONEY_USD), (Sem.MONEY_USD, Sem.MONEY),
        # a document in a format the call names accepts (and is) any concrete format's text
        (Sem.JSON_TEXT, Sem.DATA_TEXT), (Sem.CSV_TEXT, Sem.DATA_TEXT),
        (Sem.KV_TEXT, Sem.DATA_TEXT), (Sem.MARKDOWN_TEXT, Sem.DATA_TEXT),
        (Sem.DATA_TEXT, Sem.JSON_TEXT), (Sem.DATA_TEXT, Sem.CSV_TEXT),
        (Sem.DATA_TEXT, Sem.KV_TEXT), (Sem.DATA_TEXT, Sem.MARKDOWN_TEXT),
    }
)  # fmt: skip

#: kinds of measured quantity: a value of one may be used where a plain number is wanted
_QUANTITY_KINDS = frozenset(
    {
        "money", "percent", "count", "distance", "pressure", "volume", "temperature", "speed",
        "weight", "voltage", "force", "ratio", "level", "index", "size", "exchange_rate",
        "duration", "angle",
    }
)  # fmt: skip


def kind(sem: Sem) -> str:
    """``volume.gallons`` -> ``volume``."""
    return sem.value.split(".", 1)[0]


#: free-form sinks: any value may be written into a message, a file or a stored cell when the
#: question asks for it ("save the figure in usage.txt", "sample three of those dates")
FREE_FORM_TARGETS: frozenset[Sem] = frozenset({Sem.TEXT, Sem.FILE_CONTENT, Sem.FIELD_VALUE})


def feeds(source: Sem | None, target: Sem | None) -> bool:
    """Whether a value of type ``source`` may sensibly fill a parameter of type ``target``.

    Unknown types (``None``) are not judged here; the coverage tests make sure none remain."""
    if source is None or target is None or source is target:
        return True
    if (source, target) in _ALSO_FEEDS or target in FREE_FORM_TARGETS:
        return True
    if target is Sem.NUMBER:
        return kind(source) in _QUANTITY_KINDS or source is Sem.FIELD_VALUE
    return False
