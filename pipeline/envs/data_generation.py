"""Data generation: deterministic generators seeded from the state (sequences, records, ids, dates,
choices).

Every random draw comes from the environment's seeded generator, whose position is kept in the
state (``rng_words``), so a replay from the same state draws exactly the same values; random
results also report the ``seed`` they were drawn with. Nothing reads the clock: dates are only
ever computed from the ISO dates a call is given. Results are plain lists and records meant to
be passed on: generate a sequence, sample from it, then summarise the sample.

Latencies (seconds) model a hosted mock-data service: a computed sequence or a summary is one
short round trip (0.1); a random draw also touches the seeded generator (0.15); a batch of
records is a larger payload (0.3); allocating ids updates a persistent counter (0.25).
"""

from __future__ import annotations

import math
import re
import statistics
from datetime import date, timedelta
from typing import Annotated, Literal

from pydantic import Field, JsonValue

from pipeline.envs.base import Environment, EnvState, SeededState, ToolError, ToolKind, tool
from pipeline.semantics import Sem

_COMPUTE = 0.1
_DRAW = 0.15
_RECORDS = 0.3
_COUNTER = 0.25

MAX_LENGTH = 1_000
MAX_ITEMS = 1_000
MAX_TEXT = 200
MAX_RECORDS = 200
MAX_FIELDS = 20
MAX_RECORD_CELLS = 2_000
MAX_CHOICES = 50
MAX_MAGNITUDE = 10**15
MAX_PREFIXES = 100
MAX_PREFIX = 20
MAX_WIDTH = 12
#: draws refused past this generator position, so rebuilding the generator stays fast
MAX_RNG_WORDS = 1_000_000

Number = int | float
Item = str | int | float
FieldKind = Literal["integer", "number", "choice", "boolean", "date"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.:/#-]*$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class FieldSpec(EnvState):
    """How to generate one field of a record."""

    name: str = Field(description="Field name (a letter, then letters, digits or underscores).")
    kind: FieldKind = Field(description="What to generate: integer, number, choice, boolean, date.")
    low: Number | None = Field(None, description="Smallest value (integer and number fields).")
    high: Number | None = Field(None, description="Largest value (integer and number fields).")
    choices: list[str] | None = Field(None, description="The options of a choice field.")
    start: str | None = Field(None, description="First possible date, YYYY-MM-DD (date fields).")
    end: str | None = Field(None, description="Last possible date, YYYY-MM-DD (date fields).")


class DataGenerationState(SeededState):
    """The generator's seed and position, and the next number of each id prefix."""

    random_seed: int = Field(20240601, ge=-(2**63), le=2**63)
    rng_words: int = Field(0, ge=0, le=2 * MAX_RNG_WORDS)
    id_counters: dict[str, int] = Field(default_factory=dict, max_length=MAX_PREFIXES)


def _shown(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _count(value: int, name: str, most: int = MAX_LENGTH) -> int:
    if not 1 <= value <= most:
        raise ToolError(f"{name} must be between 1 and {most}, got {value}")
    return value


def _finite(value: Number, name: str) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError(f"{name} must be a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ToolError(f"{name} must be at most {MAX_MAGNITUDE} in magnitude")
    return value


def _tidy(value: float) -> Number:
    """Round away float noise (0.30000000000000004 -> 0.3); keep whole floats as floats."""
    return round(value, 10)


def _date(text: str, name: str) -> date:
    if not _ISO_DATE.match(text):
        raise ToolError(f"{name} must be a date written YYYY-MM-DD, got {_shown(text)}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ToolError(f"{name} {text!r} is not a valid date") from None


def _span(start: str, end: str) -> tuple[date, int]:
    first, last = _date(start, "start"), _date(end, "end")
    days = (last - first).days
    if days < 0:
        raise ToolError(f"end {end} is before start {start}")
    return first, days


def _items(items: list[Item], name: str = "items") -> list[Item]:
    if not items:
        raise ToolError(f"{name} is empty")
    if len(items) > MAX_ITEMS:
        raise ToolError(f"{name} holds at most {MAX_ITEMS} values")
    for item in items:
        if isinstance(item, str) and len(item) > MAX_TEXT:
            raise ToolError(f"{name} takes texts of at most {MAX_TEXT} characters")
        if isinstance(item, int | float):
            _finite(item, f"every number in {name}")
    return items


def _check_field(spec: FieldSpec) -> None:
    if not _NAME.match(spec.name):
        raise ToolError(f"field name {_shown(spec.name)} is not a valid name")
    given = {
        key for key in ("low", "high", "choices", "start", "end") if getattr(spec, key) is not None
    }
    needed = {
        "integer": {"low", "high"},
        "number": {"low", "high"},
        "choice": {"choices"},
        "boolean": set(),
        "date": {"start", "end"},
    }[spec.kind]
    if given != needed:
        wanted = ", ".join(sorted(needed)) or "nothing else"
        raise ToolError(f"a {spec.kind} field ({spec.name}) takes {wanted}")
    if spec.low is not None and spec.high is not None:
        _finite(spec.low, f"{spec.name}.low")
        _finite(spec.high, f"{spec.name}.high")
        if spec.kind == "integer" and not (
            isinstance(spec.low, int) and isinstance(spec.high, int)
        ):
            raise ToolError(f"an integer field ({spec.name}) needs whole-number bounds")
        if spec.low > spec.high:
            raise ToolError(f"{spec.name}: low {spec.low} is above high {spec.high}")
    if spec.choices is not None:
        if not 1 <= len(spec.choices) <= MAX_CHOICES:
            raise ToolError(f"{spec.name}: give between 1 and {MAX_CHOICES} choices")
        if any(len(choice) > MAX_TEXT for choice in spec.choices):
            raise ToolError(f"{spec.name}: choices are at most {MAX_TEXT} characters")
    if spec.start is not None and spec.end is not None:
        _span(spec.start, spec.end)


class DataGeneration(Environment[DataGenerationState]):
    name = "data_generation"
    state_model = DataGenerationState

    # ----- helpers --------------------------------------------------------------------
    def _ready_to_draw(self) -> None:
        if self.state.rng_words >= MAX_RNG_WORDS:
            raise ToolError("the generator is exhausted for this task (too many draws)")

    def _drawn(self, result: dict[str, JsonValue]) -> dict[str, JsonValue]:
        result["seed"] = self.state.random_seed
        return result

    # ----- sequences ------------------------------------------------------------------
    @tool(ToolKind.READ, _COMPUTE, returns={"values.*": Sem.NUMBER})
    def arithmetic_sequence(
        self,
        start: Annotated[Number, Sem.NUMBER],
        step: Annotated[Number, Sem.NUMBER],
        length: Annotated[int, Sem.COUNT],
    ) -> dict[str, JsonValue]:
        """Generate an arithmetic sequence: start, start + step, start + 2*step, ...

        Args:
            start: The first value.
            step: The difference between consecutive values.
            length: How many values to generate (1 to 1000).
        """
        _count(length, "length")
        _finite(start, "start")
        _finite(step, "step")
        _finite(start + step * (length - 1), "the last value")
        whole = isinstance(start, int) and isinstance(step, int)
        values: list[JsonValue] = [
            start + step * i if whole else _tidy(start + step * i) for i in range(length)
        ]
        return {"values": values}

    @tool(ToolKind.READ, _COMPUTE, returns={"values.*": Sem.NUMBER})
    def geometric_sequence(
        self,
        start: Annotated[Number, Sem.NUMBER],
        ratio: Annotated[Number, Sem.NUMBER],
        length: Annotated[int, Sem.COUNT],
    ) -> dict[str, JsonValue]:
        """Generate a geometric sequence: start, start * ratio, start * ratio^2, ...

        Args:
            start: The first value.
            ratio: The factor between consecutive values.
            length: How many values to generate (1 to 1000).
        """
        _count(length, "length")
        _finite(start, "start")
        _finite(ratio, "ratio")
        whole = isinstance(start, int) and isinstance(ratio, int)
        values: list[JsonValue] = []
        current: Number = start
        for _ in range(length):
            _finite(current, "every value")
            values.append(current if whole else _tidy(float(current)))
            current = current * ratio
        return {"values": values}

    @tool(ToolKind.READ, _COMPUTE, returns={"values.*": Sem.NUMBER})
    def fibonacci_sequence(
        self,
        length: Annotated[int, Sem.COUNT],
        first: Annotated[int, Sem.NUMBER] = 0,
        second: Annotated[int, Sem.NUMBER] = 1,
    ) -> dict[str, JsonValue]:
        """Generate a Fibonacci-style sequence, each value the sum of the two before it.

        Args:
            length: How many values to generate (1 to 1000).
            first: The first value (0 by default).
            second: The second value (1 by default).
        """
        _count(length, "length")
        _finite(first, "first")
        _finite(second, "second")
        values: list[JsonValue] = []
        a, b = first, second
        for _ in range(length):
            _finite(a, "every value")
            values.append(a)
            a, b = b, a + b
        return {"values": values}

    # ----- random values --------------------------------------------------------------
    @tool(ToolKind.READ, _DRAW, returns={"values.*": Sem.NUMBER, "seed": Sem.SEED})
    def random_integers(
        self,
        count: Annotated[int, Sem.COUNT],
        low: Annotated[int, Sem.NUMBER],
        high: Annotated[int, Sem.NUMBER],
        unique: Annotated[bool, Sem.FLAG] = False,
    ) -> dict[str, JsonValue]:
        """Draw random whole numbers between low and high (both included).

        Args:
            count: How many numbers to draw (1 to 1000).
            low: The smallest possible number.
            high: The largest possible number.
            unique: Whether every number must differ (false by default).
        """
        _count(count, "count")
        _finite(low, "low")
        _finite(high, "high")
        if low > high:
            raise ToolError(f"low {low} is above high {high}")
        if unique and count > high - low + 1:
            raise ToolError(f"only {high - low + 1} distinct numbers lie between {low} and {high}")
        self._ready_to_draw()
        if unique:
            values: list[JsonValue] = list(self.rng.sample(range(low, high + 1), count))
        else:
            values = [self.rng.randint(low, high) for _ in range(count)]
        return self._drawn({"values": values})

    @tool(ToolKind.READ, _DRAW, returns={"values.*": Sem.NUMBER, "seed": Sem.SEED})
    def random_numbers(
        self,
        count: Annotated[int, Sem.COUNT],
        low: Annotated[Number, Sem.NUMBER],
        high: Annotated[Number, Sem.NUMBER],
        decimals: Annotated[int, Sem.COUNT] = 2,
    ) -> dict[str, JsonValue]:
        """Draw random decimal numbers uniformly between low and high, rounded.

        Args:
            count: How many numbers to draw (1 to 1000).
            low: The lower bound.
            high: The upper bound.
            decimals: Decimal places to round each number to (0 to 10, 2 by default).
        """
        _count(count, "count")
        _finite(low, "low")
        _finite(high, "high")
        if low > high:
            raise ToolError(f"low {low} is above high {high}")
        if not 0 <= decimals <= 10:
            raise ToolError("decimals must be between 0 and 10")
        self._ready_to_draw()
        values: list[JsonValue] = [
            round(self.rng.uniform(low, high), decimals) for _ in range(count)
        ]
        return self._drawn({"values": values})

    @tool(
        ToolKind.READ,
        _DRAW,
        returns={"choice": Sem.FIELD_VALUE, "index": Sem.INDEX, "seed": Sem.SEED},
    )
    def random_choice(self, items: Annotated[list[Item], Sem.FIELD_VALUE]) -> dict[str, JsonValue]:
        """Pick one item of a list at random; the result tells its position and the seed.

        Args:
            items: The list to choose from (texts or numbers).
        """
        _items(items)
        self._ready_to_draw()
        index = self.rng.randrange(len(items))
        return self._drawn({"choice": items[index], "index": index})

    @tool(ToolKind.READ, _DRAW, returns={"sample.*": Sem.FIELD_VALUE, "seed": Sem.SEED})
    def sample_items(
        self,
        items: Annotated[list[Item], Sem.FIELD_VALUE],
        count: Annotated[int, Sem.COUNT],
        with_replacement: Annotated[bool, Sem.FLAG] = False,
    ) -> dict[str, JsonValue]:
        """Draw a random sample of items from a list.

        Args:
            items: The list to sample from (texts or numbers).
            count: How many items to draw.
            with_replacement: Whether an item may be drawn more than once (false by default).
        """
        _items(items)
        _count(count, "count")
        if not with_replacement and count > len(items):
            raise ToolError(
                f"cannot draw {count} items without replacement from a list of {len(items)}"
            )
        self._ready_to_draw()
        if with_replacement:
            sample: list[JsonValue] = [items[self.rng.randrange(len(items))] for _ in range(count)]
        else:
            sample = list(self.rng.sample(items, count))
        return self._drawn({"sample": sample})

    @tool(ToolKind.READ, _DRAW, returns={"items.*": Sem.FIELD_VALUE, "seed": Sem.SEED})
    def shuffle_items(self, items: Annotated[list[Item], Sem.FIELD_VALUE]) -> dict[str, JsonValue]:
        """Return the items of a list in a random order.

        Args:
            items: The list to shuffle (texts or numbers).
        """
        shuffled: list[JsonValue] = list(_items(items))
        self._ready_to_draw()
        self.rng.shuffle(shuffled)
        return self._drawn({"items": shuffled})

    # ----- ids ------------------------------------------------------------------------
    @tool(ToolKind.READ, _DRAW, returns={"ids.*": Sem.GENERATED_ID, "seed": Sem.SEED})
    def random_hex_ids(
        self,
        count: Annotated[int, Sem.COUNT],
        length: Annotated[int, Sem.COUNT] = 8,
        prefix: Annotated[str | None, Sem.ID_PREFIX] = None,
    ) -> dict[str, JsonValue]:
        """Draw distinct random hexadecimal ids, optionally with a prefix.

        Args:
            count: How many ids to draw (1 to 1000).
            length: Hex digits per id (4 to 32, 8 by default).
            prefix: Text put before every id (none by default).
        """
        _count(count, "count")
        if not 4 <= length <= 32:
            raise ToolError("length must be between 4 and 32")
        lead = self._prefix(prefix or "")
        if count * 4 > 16**length:
            raise ToolError(f"{count} distinct ids need more than {length} hex digits")
        self._ready_to_draw()
        ids: list[str] = []
        seen: set[str] = set()
        while len(ids) < count:  # terminates: the space is at least 4x the count
            text = f"{lead}{self.rng.getrandbits(4 * length):0{length}x}"
            if text not in seen:
                seen.add(text)
                ids.append(text)
        return self._drawn({"ids": list(ids)})

    @staticmethod
    def _prefix(prefix: str) -> str:
        if len(prefix) > MAX_PREFIX or not _PREFIX.match(prefix):
            raise ToolError(
                f"prefix {_shown(prefix)} must be at most {MAX_PREFIX} letters, digits or "
                "_ . : / # - characters"
            )
        return prefix

    @tool(ToolKind.WRITE, _COUNTER, returns={"ids.*": Sem.GENERATED_ID, "next_number": Sem.INDEX})
    def generate_ids(
        self,
        prefix: Annotated[str, Sem.ID_PREFIX],
        count: Annotated[int, Sem.COUNT],
        width: Annotated[int, Sem.COUNT] = 4,
    ) -> dict[str, JsonValue]:
        """Allocate sequential ids: the prefix and a zero-padded counter that continues across
        calls (a new prefix starts at 1).

        Args:
            prefix: Text put before the number, e.g. 'INV-'; each prefix has its own counter.
            count: How many ids to allocate (1 to 1000).
            width: Digits the number is padded to with zeros (1 to 12, 4 by default).
        """
        self._prefix(prefix)
        _count(count, "count")
        if not 1 <= width <= MAX_WIDTH:
            raise ToolError(f"width must be between 1 and {MAX_WIDTH}")
        if prefix not in self.state.id_counters and len(self.state.id_counters) >= MAX_PREFIXES:
            raise ToolError(f"at most {MAX_PREFIXES} id prefixes are kept")
        first = self.state.id_counters.get(prefix, 1)
        if first + count > MAX_MAGNITUDE:
            raise ToolError("the counter of this prefix is exhausted")
        ids: list[JsonValue] = [f"{prefix}{n:0{width}d}" for n in range(first, first + count)]
        self.state.id_counters[prefix] = first + count
        return {"ids": ids, "next_number": first + count}

    @tool(
        ToolKind.WRITE,
        _COUNTER,
        returns={"previous_number": Sem.INDEX, "next_number": Sem.INDEX},
    )
    def set_id_counter(
        self,
        prefix: Annotated[str, Sem.ID_PREFIX],
        next_number: Annotated[int, Sem.INDEX],
    ) -> dict[str, JsonValue]:
        """Set the number the next id of a prefix gets.

        Args:
            prefix: The id prefix, e.g. 'INV-'.
            next_number: The number of the next id allocated with this prefix (at least 1).
        """
        self._prefix(prefix)
        if not 1 <= next_number <= MAX_MAGNITUDE:
            raise ToolError(f"next_number must be between 1 and {MAX_MAGNITUDE}")
        if prefix not in self.state.id_counters and len(self.state.id_counters) >= MAX_PREFIXES:
            raise ToolError(f"at most {MAX_PREFIXES} id prefixes are kept")
        previous = self.state.id_counters.get(prefix, 1)
        self.state.id_counters[prefix] = next_number
        return {"previous_number": previous, "next_number": next_number}

    # ----- dates ----------------------------------------------------------------------
    @tool(ToolKind.READ, _COMPUTE, returns={"dates.*": Sem.DATE})
    def date_range(
        self,
        start: Annotated[str, Sem.DATE],
        end: Annotated[str, Sem.DATE],
        step_days: Annotated[int, Sem.DURATION] = 1,
    ) -> dict[str, JsonValue]:
        """List the dates from start to end (both included) every step_days days.

        Args:
            start: The first date, YYYY-MM-DD.
            end: The last possible date, YYYY-MM-DD.
            step_days: Days between consecutive dates (1 to 366, 1 by default).
        """
        first, days = _span(start, end)
        if not 1 <= step_days <= 366:
            raise ToolError("step_days must be between 1 and 366")
        if days // step_days + 1 > MAX_LENGTH:
            raise ToolError(f"the range holds more than {MAX_LENGTH} dates; use a larger step")
        dates: list[JsonValue] = [
            (first + timedelta(days=offset)).isoformat() for offset in range(0, days + 1, step_days)
        ]
        return {"dates": dates}

    @tool(ToolKind.READ, _DRAW, returns={"dates.*": Sem.DATE, "seed": Sem.SEED})
    def random_dates(
        self,
        start: Annotated[str, Sem.DATE],
        end: Annotated[str, Sem.DATE],
        count: Annotated[int, Sem.COUNT],
        sort: Annotated[bool, Sem.FLAG] = False,
    ) -> dict[str, JsonValue]:
        """Draw random dates between start and end (both included), as YYYY-MM-DD.

        Args:
            start: The earliest possible date, YYYY-MM-DD.
            end: The latest possible date, YYYY-MM-DD.
            count: How many dates to draw (1 to 1000).
            sort: Whether to return them in calendar order (false by default).
        """
        first, days = _span(start, end)
        _count(count, "count")
        self._ready_to_draw()
        offsets = [self.rng.randint(0, days) for _ in range(count)]
        if sort:
            offsets.sort()
        dates: list[JsonValue] = [(first + timedelta(days=o)).isoformat() for o in offsets]
        return self._drawn({"dates": dates})

    # ----- records --------------------------------------------------------------------
    @tool(
        ToolKind.READ,
        _RECORDS,
        returns={
            "columns.*.*": Sem.FIELD_VALUE,
            "records.*.*": Sem.FIELD_VALUE,
            "seed": Sem.SEED,
        },
    )
    def sample_records(
        self,
        fields: Annotated[list[FieldSpec], Sem.SCHEMA],
        count: Annotated[int, Sem.COUNT],
    ) -> dict[str, JsonValue]:
        """Generate random records from a small schema, with each field's values also as a list.

        Args:
            fields: The fields of a record, in order: each has a name and a kind, integer or
                number (with low and high), choice (with choices), boolean, or date (with start
                and end, YYYY-MM-DD).
            count: How many records to generate (1 to 200; at most 2000 values in all).
        """
        if not 1 <= len(fields) <= MAX_FIELDS:
            raise ToolError(f"give between 1 and {MAX_FIELDS} fields")
        _count(count, "count", MAX_RECORDS)
        if count * len(fields) > MAX_RECORD_CELLS:
            raise ToolError(f"count x fields must stay within {MAX_RECORD_CELLS} values")
        names = [spec.name for spec in fields]
        if len(set(names)) != len(names):
            raise ToolError("field names must be distinct")
        for spec in fields:
            _check_field(spec)
        self._ready_to_draw()
        records: list[JsonValue] = []
        columns: dict[str, list[JsonValue]] = {name: [] for name in names}
        for _ in range(count):
            record: dict[str, JsonValue] = {}
            for spec in fields:
                value = self._field_value(spec)
                record[spec.name] = value
                columns[spec.name].append(value)
            records.append(record)
        # columns first: a value passed on later is traced to its field's list, not to a record
        shown: dict[str, JsonValue] = dict(columns.items())
        return self._drawn({"columns": shown, "records": records})

    def _field_value(self, spec: FieldSpec) -> JsonValue:
        if spec.kind == "integer":
            assert isinstance(spec.low, int) and isinstance(spec.high, int)
            return self.rng.randint(spec.low, spec.high)
        if spec.kind == "number":
            assert spec.low is not None and spec.high is not None
            return round(self.rng.uniform(spec.low, spec.high), 2)
        if spec.kind == "choice":
            assert spec.choices is not None
            return spec.choices[self.rng.randrange(len(spec.choices))]
        if spec.kind == "boolean":
            return self.rng.getrandbits(1) == 1
        assert spec.start is not None and spec.end is not None
        first, days = _span(spec.start, spec.end)
        return (first + timedelta(days=self.rng.randint(0, days))).isoformat()

    # ----- summaries ------------------------------------------------------------------
    @tool(
        ToolKind.READ,
        _COMPUTE,
        returns={
            "count": Sem.COUNT,
            "sum": Sem.NUMBER,
            "mean": Sem.NUMBER,
            "median": Sem.NUMBER,
            "min": Sem.NUMBER,
            "max": Sem.NUMBER,
            "stdev": Sem.NUMBER,
        },
    )
    def summarise_numbers(
        self, values: Annotated[list[Number], Sem.NUMBER]
    ) -> dict[str, JsonValue]:
        """Summarise a list of numbers: count, sum, mean, median, minimum, maximum, spread.

        Args:
            values: The numbers to summarise.
        """
        if not values:
            raise ToolError("values is empty")
        if len(values) > MAX_ITEMS:
            raise ToolError(f"values holds at most {MAX_ITEMS} numbers")
        for value in values:
            _finite(value, "every value")
        whole = all(isinstance(v, int) for v in values)
        total = sum(values) if whole else _tidy(math.fsum(values))
        return {
            "count": len(values),
            "sum": total,
            "mean": round(math.fsum(values) / len(values), 6),
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "stdev": round(statistics.pstdev(values), 6),
        }

    @tool(
        ToolKind.READ,
        _COMPUTE,
        returns={
            "counts.*.value": Sem.FIELD_VALUE,
            "counts.*.count": Sem.COUNT,
            "most_common": Sem.FIELD_VALUE,
            "distinct": Sem.COUNT,
        },
    )
    def count_values(self, items: Annotated[list[Item], Sem.FIELD_VALUE]) -> dict[str, JsonValue]:
        """Count how often each value occurs in a list, most frequent first.

        Args:
            items: The values to count (texts or numbers).
        """
        _items(items)
        counts: dict[Item, int] = {}
        for item in items:
            counts[item] = counts.get(item, 0) + 1
        ordered = sorted(counts.items(), key=lambda pair: -pair[1])  # stable: first seen first
        table: list[JsonValue] = [{"value": value, "count": n} for value, n in ordered]
        return {"counts": table, "most_common": ordered[0][0], "distinct": len(ordered)}
